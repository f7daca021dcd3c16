"""Checks of ``optim``: the optimizer, its learning rate, weight decay, schedule and momentum."""

from __future__ import annotations

from omegaconf import DictConfig

from lth.lottery.names import OPTIMIZERS, SCHEDULES
from lth.run.checks.rules import NON_NEGATIVE, POSITIVE, Check, int_in, is_int, is_number, one_of


def optim_checks(cfg: DictConfig) -> list[Check]:
    steps = cfg.train.get("steps")
    return [
        ("optim.name", one_of(OPTIMIZERS)),
        ("optim.lr", POSITIVE),
        ("optim.weight_decay", NON_NEGATIVE),
        ("optim.schedule", one_of(SCHEDULES)),
        ("optim.warmup_steps", int_in(0, steps if is_int(steps) else float("inf"))),
    ]


def momentum_checks(cfg: DictConfig) -> list[Check]:
    if "momentum" not in cfg.optim:
        return []
    return [("optim.momentum", ((lambda v: is_number(v) and 0 <= v < 1), "a number in [0, 1)"))]
