"""Checks of ``prune``: how much, where and by what each level prunes, pruning at init, structured and
learned masks, and the tensors the config names (against the model's)."""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig

from lth.lottery.names import (
    CRITERIA,
    NORMS,
    SALIENCIES,
    SCOPES,
    STRATEGIES,
    STRUCTURED_CRITERIA,
    STRUCTURES,
)
from lth.run.checks.rules import NULL, OPEN_UNIT, Check, Rule, fail, int_in, is_number, one_of

TENSOR_RATES: Rule = (
    lambda v: (
        v is None or (isinstance(v, DictConfig) and all(is_number(r) and 0 <= r < 1 for r in v.values()))
    ),
    "null or a mapping of tensor names to rates in [0, 1), e.g. {features.conv2.weight: 0}",
)


def prune_checks(cfg: DictConfig) -> list[Check]:
    return [
        ("prune.levels", int_in(0)),
        ("prune.rate", OPEN_UNIT),
        ("prune.scope", one_of(SCOPES)),
        ("prune.criterion", one_of(CRITERIA)),
        ("prune.structure", one_of(STRUCTURES)),
        ("prune.norm", ((lambda v: v in NORMS), "one of 1, 2")),
        ("prune.exclude", ((lambda v: isinstance(v, ListConfig)), "a list of tensor names")),
        ("prune.rates", TENSOR_RATES),
    ]


def layer_rate_checks(cfg: DictConfig) -> list[Check]:
    """The output layer's and the conv layers' own rates, where given."""
    return [
        (f"prune.{key}", OPEN_UNIT) for key in ("output_rate", "conv_rate") if cfg.prune.get(key) is not None
    ]


def at_init_checks(cfg: DictConfig) -> list[Check]:
    """Pruning at init (SNIP, GraSP, SynFlow) and its knobs."""
    at_init = cfg.prune.get("at_init")
    checks: list[Check] = []
    if at_init is not None:
        checks.append(
            ("prune.at_init", ((lambda v: v in SALIENCIES), "null or one of " + ", ".join(SALIENCIES)))
        )
    if at_init == "synflow":
        checks.append(("prune.iterations", int_in(1)))
    if at_init in ("snip", "grasp"):
        checks.append(("prune.batches", int_in(1)))
    return checks


def structure_checks(cfg: DictConfig) -> list[Check]:
    """What structured pruning (layer-wise weight norms) and a learned supermask (one run that trains the
    scores of frozen weights) run with."""
    checks: list[Check] = []
    if cfg.prune.get("structure", "unstructured") != "unstructured":
        checks += [
            ("prune.scope", one_of(["layer"])),
            ("prune.criterion", one_of(STRUCTURED_CRITERIA)),
            ("prune.at_init", NULL),
            ("init.name", one_of(set(STRATEGIES) - {"random_prune"})),
        ]
    if cfg.prune.get("learned"):
        checks += [
            ("init.name", one_of(set(STRATEGIES) - {"ticket"})),
            ("prune.levels", int_in(0, 0)),
            ("prune.at_init", NULL),
            ("prune.structure", one_of(["unstructured"])),
        ]
    return checks


def check_tensor_names(cfg: DictConfig, prunable: list[str]) -> None:
    """Every tensor named in ``prune.exclude`` and ``prune.rates`` must be a prunable tensor of the model."""
    allowed = "names of prunable tensors: " + ", ".join(prunable)
    for key, names in (("prune.exclude", cfg.prune.exclude), ("prune.rates", cfg.prune.rates or {})):
        for name in names:
            if name not in prunable:
                fail(key, name, allowed)
    if set(prunable) <= set(cfg.prune.exclude):
        fail(
            "prune.exclude",
            list(cfg.prune.exclude),
            "a list that leaves at least one of " + ", ".join(prunable),
        )
