"""Optimizers and learning-rate schedules (the ``optim`` config group); each level restarts both.

The LR multiplier is a function of the step *within* the level and the level's length, so every level
replays the schedule over its own steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from lth.lottery import names

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
SCHEDULES: dict[str, Callable[[int, int], float]] = {
    "constant": lambda t, total: 1.0,
    "cosine": lambda t, total: 0.5 * (1.0 + math.cos(math.pi * t / total)),
    "linear": lambda t, total: 1.0 - t / total,
    "step": lambda t, total: 0.1 ** ((2 * t >= total) + (4 * t >= 3 * total)),  # /10 at 50% and 75%
}
assert tuple(OPTIMIZERS) == names.OPTIMIZERS, "lth.lottery.names.OPTIMIZERS must name OPTIMIZERS' keys"
assert tuple(SCHEDULES) == names.SCHEDULES, "lth.lottery.names.SCHEDULES must name SCHEDULES' keys"
SCHEDULE_KEYS = ("name", "schedule", "warmup_steps")


def lr_factor(schedule: str, warmup_steps: int) -> Callable[[int, int], float]:
    """Multiplier of the base LR at step ``t`` of a level of ``total`` steps: linear warm-up, then ``schedule``."""
    shape = SCHEDULES[schedule]

    def factor(t: int, total: int) -> float:
        warm = min(1.0, (t + 1) / warmup_steps) if warmup_steps else 1.0
        return warm * shape(t, total)

    return factor


def set_lr(group: dict[str, Any], lr: float) -> None:
    """Set a param group's learning rate; a tensor one (read by a captured step) is filled in place."""
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(lr)
    else:
        group["lr"] = lr


def build_optimizer(params: Any, optim: Mapping[str, Any]) -> torch.optim.Optimizer:
    """The ``optim`` config's optimizer over ``params`` (its schedule keys left out)."""
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in optim.items() if k not in SCHEDULE_KEYS}
    return OPTIMIZERS[optim["name"]](params, **kwargs)
