"""Checks of ``model``: its initializer, width multiplier and (ResNets) depth."""

from __future__ import annotations

from omegaconf import DictConfig

from lth.models.names import INITIALIZERS
from lth.run.checks.rules import POSITIVE, Check, is_int, one_of


def model_checks(cfg: DictConfig) -> list[Check]:
    checks: list[Check] = []
    if "init" in cfg.model:
        checks.append(("model.init", one_of(INITIALIZERS)))
    if "width_multiplier" in cfg.model:
        checks.append(("model.width_multiplier", POSITIVE))
    return checks


def depth_checks(cfg: DictConfig) -> list[Check]:
    if "depth" not in cfg.model:
        return []
    depth_ok = (
        (lambda v: is_int(v) and v >= 8 and (v - 2) % 6 == 0),
        "an integer 6n+2 >= 8 (20, 32, 44, 56, 110)",
    )
    return [("model.depth", depth_ok)]
