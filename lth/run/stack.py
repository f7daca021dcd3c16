"""Stacks of lotteries given as configs: which jobs one stack can train, and their members.

A job trains a stack of K lotteries ("members"), each the single job of its own resolved config, written
to its own ``paths.output_dir`` as that job would write it. ``train.replicates=K`` is the stack whose
members are ``replicate_config(cfg, k)`` (seed ``seed + k``, directory ``replicate_k/``); a stacked sweep
gives any members that ``incompatibility`` accepts.

Members may differ in what each lottery has of its own in the stack: ``seed``, every ``optim.*`` key
but ``optim.name`` (a stacked optimizer holds each lottery's hyperparameters, ``lth.lottery.stacked_optim``;
each lottery runs its own LR schedule), ``prune.rate``, ``prune.output_rate``, ``prune.conv_rate``,
``prune.rates``, ``prune.levels``, ``prune.scope``, ``prune.criterion``, every ``init.*`` key,
``data.label_noise``, ``model.init``, and their directories (``paths.*``; every other value is compared
with a path in the member's ``paths.output_dir`` written from ``${paths.output_dir}``, so ``logger.save_dir`` is the
same key). Everything else is the stack key: the data and its splits, the architecture and its width,
``train.*`` (steps, batch size, evaluation and checkpoint intervals, budget), ``optim.name``, the
trainer, analyses, logger, ``prune.structure``, ``prune.exclude``, ``prune.at_init``... With
``train.budget=flops`` a level's length follows its survivor counts, so there every ``prune.*`` key is
in the stack key too, and the stack's pruning must keep counts equal across seeds (``prune.scope=layer``,
as for replicates).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from torch import nn

from lth.errors import ConfigError
from lth.lottery import MaskedNetwork
from lth.lottery.stacked import ListedNetworks, SingleNetwork, Stack, StackedNetworks
from lth.lottery.supermask import LearnedSupermask
from lth.run.checkpointing import remove_checkpoints
from lth.run.job_dir import RunDirectory
from lth.run.loggers import LotteryWandbLogger
from lth.run.stacking import (  # noqa: F401  (re-exported)
    MAY_DIFFER,
    OUTPUT_DIR,
    SHARED,
    _resolved,
    incompatibility,
    stack_key,
)
from lth.seeds import derived_seed


def replicate_config(cfg: DictConfig, k: int) -> DictConfig:
    """The config of the single job that replicate ``k`` is: seed ``seed + k``, its own directory (and
    what interpolates them, e.g. the logger's ``save_dir``), resolved."""
    config = OmegaConf.create(OmegaConf.to_container(cfg))
    config.seed = cfg.seed + k
    config.train.replicates = 1
    config.paths.output_dir = str(Path(cfg.paths.output_dir) / f"replicate_{k}")
    return OmegaConf.create(OmegaConf.to_container(config, resolve=True))


def member_config(cfg: DictConfig) -> DictConfig:
    """A member as given, resolved: a single job's config (one with ``train.replicates`` > 1 is refused:
    a stacked sweep runs such a job alone, stacking its own replicates)."""
    config = OmegaConf.create(_resolved(cfg))
    if config.train.replicates != 1:
        raise ConfigError(
            f"lth: invalid config: train.replicates={config.train.replicates} in a member of a stack; allowed: 1 "
            "(a job of replicates is a stack of its own)"
        )
    return config


def member_loggers(
    config: DictConfig, k: int, replicate: bool, hydra: DictConfig | None = None
) -> list[Logger]:
    """Member ``k``'s experiment logger (``config``'s), as the single job it is would have it (a W&B run
    opened beside the others; a replicate's named ``<the job's name>/replicate_k``); made under
    ``hydra``, the member's own Hydra config where it has one (a stacked sweep's job: its run's name)."""
    if not config.logger:
        return []
    previous = HydraConfig.instance().cfg
    try:
        if hydra is not None:
            HydraConfig.instance().cfg = hydra  # type: ignore[assignment]
        logger = instantiate(config.logger)
    finally:
        HydraConfig.instance().cfg = previous
    if isinstance(logger, LotteryWandbLogger):
        if replicate:
            logger.as_replicate(k)
        else:
            logger.beside_others()
    return [logger]


def build_stack(
    cfg: DictConfig, models: list[nn.Module], configs: list[DictConfig], prunable: list[str], stacked: bool
) -> Stack:
    """The stack of ``models``: one plain network (a single job), the batched stack, or side by side
    where the networks cannot be batched (the learned supermask draws its masks on the host)."""
    if cfg.prune.get("learned"):
        networks: list[MaskedNetwork] = [
            LearnedSupermask(m, prunable, derived_seed(c.seed, "supermask"))
            for m, c in zip(models, configs, strict=True)
        ]
        return ListedNetworks(networks) if stacked else SingleNetwork(networks[0])
    if not stacked:
        return SingleNetwork(MaskedNetwork(models[0], prunable))
    return StackedNetworks(models, prunable)


def finish_members(host: Path, members: Sequence[Path]) -> bool:
    """The host job's own DONE once every member is done (``complete`` if all completed, else
    ``diverged``), its checkpoints gone; whether it is done."""
    done = [member / "DONE" for member in members]
    if not all(path.exists() for path in done):
        return False
    statuses = {json.loads(path.read_text())["status"] for path in done}
    run_dir = RunDirectory(host)
    run_dir.mark_done("complete" if statuses == {"complete"} else "diverged", 0)  # no records here
    remove_checkpoints(run_dir.checkpoint_dir)
    return True
