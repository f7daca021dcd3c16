"""Checks of ``logger``: the keys of lth's W&B logger (``logger=wandb``)."""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig

from lth.run.checks.rules import TRUE_OR_FALSE, Check

WANDB_LOGGER = "lth.run.loggers.wandb_logger"  # conf/logger/wandb.yaml's _target_


def logger_checks(cfg: DictConfig) -> list[Check]:
    if not (cfg.get("logger") and cfg.logger.get("_target_") == WANDB_LOGGER):
        return []
    return [
        ("logger.offline", ((lambda v: v in ("auto", True, False)), "one of auto, true, false")),
        ("logger.tags", ((lambda v: isinstance(v, ListConfig)), "a list of tags, e.g. [imp,mnist1d]")),
        ("logger.log_tickets", TRUE_OR_FALSE),
    ]
