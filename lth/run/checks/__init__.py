"""The config checks that run before anything is built: one line naming the key and what it allows.

One module per config group: ``train`` (and ``seed``), ``data``, ``prune``, ``init``, ``optim``,
``trainer``, ``model``, ``logger``, ``analysis``, ``teacher_student`` and ``replicates`` (what K stacked
replicates cannot run with); ``rules`` holds the form of a check and the tests they share. Each group's
checks take the config and return (key, rule) pairs. Part of the edge (lth.run), but torch-free: the
rules come from each science package's ``names.py``, so checking a config imports no torch, Lightning
or W&B.
"""

from __future__ import annotations

from omegaconf import DictConfig

from lth.run.checks.analysis import analysis_checks
from lth.run.checks.data import data_checks, download_checks, label_noise_checks
from lth.run.checks.init import check_ticket_source, init_checks, restart_checks
from lth.run.checks.logger import logger_checks
from lth.run.checks.model import depth_checks, model_checks
from lth.run.checks.optim import momentum_checks, optim_checks
from lth.run.checks.prune import at_init_checks, layer_rate_checks, prune_checks, structure_checks
from lth.run.checks.replicates import replicate_checks
from lth.run.checks.rules import check
from lth.run.checks.teacher_student import teacher_student_checks
from lth.run.checks.train import checkpoint_checks, train_checks
from lth.run.checks.trainer import trainer_checks


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value lth cannot run with. The groups' checks are gathered in this
    order (a few refuse a value while gathered), then run in it: it decides which of several bad values
    is named."""
    groups = (
        train_checks,
        data_checks,
        prune_checks,
        init_checks,
        optim_checks,
        layer_rate_checks,
        checkpoint_checks,
        trainer_checks,
        at_init_checks,
        structure_checks,
        momentum_checks,
        model_checks,
        label_noise_checks,
        depth_checks,
        download_checks,
        restart_checks,
        logger_checks,
        analysis_checks,
        teacher_student_checks,
        replicate_checks,
    )
    checks = [c for group in groups for c in group(cfg)]
    for key, (ok, allowed) in checks:
        check(cfg, key, ok, allowed)
    check_ticket_source(cfg)
