"""Checks of ``train.replicates`` > 1: what K stacked replicates, trained in lockstep, cannot run with."""

from __future__ import annotations

from omegaconf import DictConfig

from lth.run.checks.rules import Check, is_int


def replicate_checks(cfg: DictConfig) -> list[Check]:
    """What ``train.replicates`` > 1 cannot run with (docs/how-to/sweeps.md lists it)."""
    if not (is_int(cfg.train.get("replicates")) and cfg.train.replicates > 1):
        return []
    why = f"with train.replicates={cfg.train.replicates}"
    prune = cfg.prune
    # flops: a level's length follows its per-tensor survivor counts, the same in every replicate when
    # each tensor is pruned at its own rate (layer scope), or when the only level is dense
    same_counts = prune.get("scope") == "layer" or (prune.get("levels") == 0 and prune.get("at_init") is None)
    flops = (
        f"steps {why} and prune.scope={prune.get('scope')} (each replicate would keep its own count per "
        "tensor, so its own level lengths, and the stack trains in lockstep); flops with prune.scope=layer"
    )
    devices = cfg.trainer.get("devices", 1)
    return [
        ("train.budget", ((lambda v: v == "steps" or (v == "flops" and same_counts)), flops)),
        (
            "trainer.devices",
            (
                (lambda v: not isinstance(v, int) or v <= cfg.train.replicates),
                f"at most {cfg.train.replicates} {why} (each device trains its share of the replicates)",
            ),
        ),
        (
            "trainer.strategy",
            (
                (lambda v: v in (None, "auto", "ddp") or devices in (1, "1")),
                f"auto or ddp {why} (the replicates are spread over the devices)",
            ),
        ),
    ]
