"""Stacks of lotteries given as configs: which jobs one stack can train, and their members.

A job trains a stack of K lotteries from its members: each member is a job of its own (its resolved
config and ``paths.output_dir``) whose lotteries are itself or, with ``train.replicates=R`` > 1, its R
replicates ``replicate_config(cfg, k)`` (seed ``seed + k``, directory ``replicate_k/``); each lottery
writes the files of the single job it is. A job with ``train.replicates=K`` alone is the stack of its one
member; a stacked sweep gives any members whose lotteries ``incompatibility`` accepts.

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
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from torch import nn

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


@contextmanager
def under(hydra: DictConfig | None) -> Iterator[None]:
    """Resolve and instantiate as the job of ``hydra`` (``{hydra: ...}``) would: ``${hydra:...}`` and the
    W&B run's name and group come from it; ``None``: the running job's own."""
    previous = HydraConfig.instance().cfg
    try:
        if hydra is not None:
            HydraConfig.instance().cfg = hydra  # type: ignore[assignment]  # as read back: a plain node
        yield
    finally:
        HydraConfig.instance().cfg = previous


@dataclass
class Member:
    """A job of a stack: its config (resolved), the lotteries it trains (itself, or with
    ``train.replicates=R`` > 1 its R replicates in ``replicate_k/``) and its own Hydra config, if any."""

    config: DictConfig
    lotteries: list[DictConfig]
    hydra: DictConfig | None = None

    @property
    def replicated(self) -> bool:
        return self.config.train.replicates > 1

    @property
    def directory(self) -> Path:
        return Path(self.config.paths.output_dir)


def member(cfg: DictConfig, hydra: DictConfig | None = None) -> Member:
    """The member that job ``cfg`` is, resolved under ``hydra``."""
    with under(hydra):
        config = OmegaConf.create(_resolved(cfg))
        replicates = config.train.replicates
        lotteries = [replicate_config(cfg, k) for k in range(replicates)] if replicates > 1 else [config]
    return Member(config, lotteries, hydra)


def as_members(
    given: Sequence[DictConfig | Member], hydras: Sequence[DictConfig] | None = None
) -> list[Member]:
    """``given``'s members: a config is resolved under its own Hydra config in ``hydras``, if given."""
    return [
        m if isinstance(m, Member) else member(m, hydras[i] if hydras else None) for i, m in enumerate(given)
    ]


def load_members(manifest: str | Path) -> list[Member]:
    """A stacked sweep's stack (``lth.run.sweeper``): its members, each from its ``.hydra`` files as the
    sweeper wrote them and resolved as its unstacked job resolves it (``${hydra:...}`` from its own
    Hydra config, as read back from its ``hydra.yaml``)."""
    members = []
    for entry in OmegaConf.load(manifest).members:
        hydra_dir = Path(entry.output_dir) / ".hydra"
        hydra = OmegaConf.load(hydra_dir / "hydra.yaml")
        hydra.hydra.mode = RunMode[str(hydra.hydra.mode)]  # read back as a string; Hydra's is the enum
        members.append(member(OmegaConf.load(hydra_dir / "config.yaml"), hydra))
    return members


@contextmanager
def logs_in(members: Sequence[Member]) -> Iterator[None]:
    """What the running job writes to its log files (Hydra's ``<job dir>/train.log``) also goes to a
    file of that name in each member's directory: a stacked sweep's lottery keeps the log of the stack
    it trained in where its unstacked job keeps its own."""
    root = logging.getLogger()
    added = []
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        for m in members:
            copy = logging.FileHandler(
                m.directory / Path(handler.baseFilename).name, encoding=handler.encoding
            )
            copy.setFormatter(handler.formatter)
            copy.setLevel(handler.level)
            root.addHandler(copy)
            added.append(copy)
    try:
        yield
    finally:
        for handler in added:
            root.removeHandler(handler)
            handler.close()


def member_loggers(
    config: DictConfig, replicate: int | None, hydra: DictConfig | None = None
) -> list[Logger]:
    """A lottery's experiment logger (``config``'s), as the single job it is would have it (a W&B run
    opened beside the others; replicate ``k``'s named ``<the job's name>/replicate_k``); made under
    ``hydra``, its job's own Hydra config where it has one (a stacked sweep's job: its run's name)."""
    if not config.logger:
        return []
    with under(hydra):
        logger = instantiate(config.logger)
    if isinstance(logger, LotteryWandbLogger):
        if replicate is not None:
            logger.as_replicate(replicate)
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
