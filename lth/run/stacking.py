"""Which lotteries one stack can train (``stack_key``, ``incompatibility``), torch-free: a stacked
sweep (``lth.run.sweeper``) groups its jobs with these before any job imports torch. ``lth.run.stack``
documents what the members of a stack may differ in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Keys (and the keys under them) in which the members of a stack may differ.
MAY_DIFFER = (
    "seed",
    "optim",
    "prune.rate",
    "prune.output_rate",
    "prune.conv_rate",
    "prune.rates",
    "prune.levels",
    "prune.scope",
    "prune.criterion",
    "init",
    "data.label_noise",
    "model.init",
    "paths",
    "train.replicates",
    "hydra",
)
SHARED = ("optim.name",)  # under a MAY_DIFFER key, yet in the stack key
OUTPUT_DIR = "${paths.output_dir}"


def _may_differ(key: str, flops: bool) -> bool:
    if key in SHARED or any(key.startswith(f"{s}.") for s in SHARED):
        return False
    if flops and (key == "prune" or key.startswith("prune.")):
        return False
    return any(key == k or key.startswith(f"{k}.") for k in MAY_DIFFER)


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value


def _resolved(cfg: DictConfig) -> dict[str, Any]:
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    return container


def stack_key(cfg: DictConfig) -> tuple[tuple[str, Any], ...]:
    """What every member of a stack shares: ``cfg``'s resolved values but those a member may have of its
    own (``MAY_DIFFER``), as sorted ``(dotted key, value)`` pairs (values as JSON), a path in its own
    output directory written from ``${paths.output_dir}`` on."""
    flat: dict[str, Any] = {}
    _flatten(_resolved(cfg), "", flat)
    out = str(cfg.paths.output_dir) if "paths" in cfg and "output_dir" in cfg.paths else None
    flops = flat.get("train.budget") == "flops"
    key = []
    for name in sorted(flat):
        if _may_differ(name, flops):
            continue
        value = flat[name]
        if out and isinstance(value, str) and (value == out or value.startswith(out.rstrip("/") + "/")):
            value = OUTPUT_DIR + value[len(out) :]  # a path in the member's own directory
        key.append((name, json.dumps(value, sort_keys=True, default=str)))
    return tuple(key)


def incompatibility(configs: Sequence[DictConfig]) -> str | None:
    """Why ``configs`` cannot be the members of one stack, in one line naming the first key that
    differs (``model.hidden differs: [256, 128] vs [64]``), or None if they can."""
    if not configs:
        return "a stack needs at least one member"
    first = dict(stack_key(configs[0]))
    for cfg in configs[1:]:
        other = dict(stack_key(cfg))
        for name in sorted(first.keys() | other.keys()):
            if first.get(name) != other.get(name):
                a, b = first.get(name, "(absent)"), other.get(name, "(absent)")
                return f"{name} differs: {a} vs {b}"
    if len(configs) > 1:
        if any(cfg.train.budget == "flops" for cfg in configs):
            prune = configs[0].prune
            if not (prune.scope == "layer" or (prune.levels == 0 and prune.get("at_init") is None)):
                return (
                    f"train.budget=flops with prune.scope={prune.scope}: each member would keep its own "
                    "count per tensor, so its own level lengths (flops stacks need prune.scope=layer)"
                )
        if configs[0].prune.get("learned"):
            optims = [_resolved(cfg)["optim"] for cfg in configs]
            if any(o != optims[0] for o in optims):
                return "optim differs: networks side by side (prune.learned) share one optimizer"
        dirs = [str(cfg.paths.output_dir) for cfg in configs]
        if len(set(dirs)) < len(dirs):
            return f"paths.output_dir: two members write to {next(d for d in dirs if dirs.count(d) > 1)}"
    return None
