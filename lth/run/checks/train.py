"""Checks of ``seed`` and ``train``: the training loop's steps, batches, evaluations, budget and checkpoints."""

from __future__ import annotations

from omegaconf import DictConfig

from lth.lottery.names import BUDGETS
from lth.run.checks.rules import Check, int_in, is_number, one_of


def train_checks(cfg: DictConfig) -> list[Check]:
    return [
        ("seed", int_in(0)),
        ("train.steps", int_in(1)),
        ("train.batch_size", int_in(1)),
        ("train.eval_every", int_in(1)),
        ("train.budget", one_of(BUDGETS)),
        ("train.budget_cap", ((lambda v: is_number(v) and v >= 1), "a number >= 1")),
        ("train.replicates", int_in(1)),
    ]


def checkpoint_checks(cfg: DictConfig) -> list[Check]:
    return [("train.checkpoint_every", int_in(1))] if cfg.train.get("checkpoint_every") is not None else []
