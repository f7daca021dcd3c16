"""One job: check the config, build data, models, the stack of K >= 1 lotteries and the Trainer, train,
write the results.

config -> data + models -> a stack of K masked networks (K=1: a single job; ``train.replicates=K``: the
jobs with seeds seed..seed+K-1) -> a LotteryGroup -> Trainer(LotteryModule, PruningCallback, checkpoint,
bar, loggers) -> each lottery's results on disk (``RunDirectory``, with its provenance in ``meta.json``)
and in its loggers. With ``trainer.devices=G`` > 1, K=1 is DDP; K > 1 spreads the replicates over the G
ranks (``lth.run.replicas``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.utilities import rank_zero_only
from rich.console import Console

from lth.data.memory import InMemoryDataModule
from lth.errors import ConfigError
from lth.lottery import (
    Budget,
    Lottery,
    prunable_weight_names,
)
from lth.lottery.evaluation import network_evaluator
from lth.lottery.group import LotteryGroup
from lth.lottery.stacked import Stack
from lth.run.building import build_datamodule, build_lottery, model_factory
from lth.run.callback import PruningCallback, Threads
from lth.run.checkpointing import RotatingCheckpoint, remove_checkpoints, resumable_checkpoint
from lth.run.checks import check_config
from lth.run.checks.prune import check_tensor_names
from lth.run.console import LotteryProgressBar, print_results, sweep_table
from lth.run.cuda_graphs import initialize_cuda_early
from lth.run.job_dir import RunDirectory
from lth.run.loggers import (
    finish_loggers,
    report_offline_runs,
    run_name,
    start_loggers,
    start_replicate_loggers,
)
from lth.run.module import LOSSES, LotteryModule
from lth.run.outputs import LotteryOutputs
from lth.run.provenance import Provenance, collect, now, run_config
from lth.run.readers import read_job_files
from lth.run.replicas import ReplicaStrategy, replica_rank
from lth.run.resume import announce
from lth.run.stack import (
    Member,
    as_members,
    build_stack,
    finish_members,
    incompatibility,
    member_loggers,
)
from lth.run.sweeper import STACKS_DIR
from lth.run.threads import apply_threads, job_threads, lightning_kwargs
from lth.run.ticket import load_ticket
from lth.seeds import derived_seed

log = logging.getLogger("lth")


@dataclass
class Job:
    """Everything one job is made of, built but not yet run: K >= 1 lotteries (this process's share)."""

    trainer: pl.Trainer
    module: LotteryModule
    datamodule: InMemoryDataModule
    group: LotteryGroup
    outputs: list[LotteryOutputs]  # lottery k's
    callback: PruningCallback
    run_dir: RunDirectory  # the job's (with replicates: holding replicate_k/)
    checkpoint_dir: Path  # this process's
    config: dict[str, Any]  # resolved
    configs: list[DictConfig]  # lottery k's: the single job it is (resolved)
    started: datetime  # when build_job began
    stacked: bool = (
        False  # a stack of members (train.replicates or given): each lottery writes to its own directory
    )
    member_dirs: list[Path] = field(default_factory=list)  # every lottery's directory (on every rank)
    replicated: list[Member] = field(default_factory=list)  # the members with train.replicates > 1
    overrides: list[list[str]] | None = None  # lottery k's command-line overrides (a stacked sweep's members)

    @property
    def lottery(self) -> Lottery:
        """A single job's lottery (the group's first)."""
        return self.group.lotteries[0]

    @property
    def stack(self) -> Stack:
        return self.module.stack

    @property
    def replicates(self) -> bool:
        """Whether this is a stack of members (``train.replicates``: written to ``replicate_k/``)."""
        return self.stacked


def build_job(
    cfg: DictConfig,
    members: Sequence[DictConfig | Member] | None = None,
    hydras: Sequence[DictConfig] | None = None,
    *,
    callbacks: Sequence[pl.Callback] = (),
) -> Job:
    """Check ``cfg`` and build data, models, masks, lotteries and Trainer; nothing is trained or written.

    ``members``: the jobs of the stack (``lth.run.stack.Member``, or their configs, resolved under
    ``hydras``: each one's own Hydra config, ``{hydra: ...}``, whose overrides go to its lotteries'
    ``meta.json`` and under which their loggers are made: W&B run names and groups). Each trains its
    lottery, or with ``train.replicates=R`` > 1 its R replicates, written where that job writes them; all
    must be compatible (``lth.run.stack.incompatibility``). ``cfg`` is then the host job: its data, model
    architecture, trainer and Trainer settings are the stack's, its directory holds the stack's
    checkpoints and, once every lottery is done, its DONE. Without members, ``train.replicates=K`` > 1 is
    the stack of the one member ``cfg`` is, and otherwise ``cfg`` is a single job (one plain network).
    ``callbacks``: more Lightning callbacks for the Trainer, after lth's own (a benchmark's clock).
    """
    started = now()
    check_config(cfg)
    if members is None and cfg.train.replicates > 1:
        members = [cfg]
    stacked = members is not None
    jobs = as_members(members or [], hydras)
    # each lottery: its job, its replicate number (None: the job's own lottery) and its config
    lottery_jobs = [(j, r if j.replicated else None, c) for j in jobs for r, c in enumerate(j.lotteries)]
    if stacked:
        for j in jobs:
            check_config(j.config)
        why = incompatibility([cfg, *(c for *_, c in lottery_jobs)])
        if why:
            raise ConfigError(f"lth: invalid config: the members of one stack differ: {why}")
    initialize_cuda_early(str(cfg.trainer.get("accelerator", "auto")))
    datamodule = build_datamodule(cfg)
    rank, world = replica_rank(cfg.trainer) if stacked else (0, 1)
    everyone = [c for *_, c in lottery_jobs] if stacked else [cfg]
    if world > len(everyone):
        raise ConfigError(f"lth: invalid config: trainer.devices={world} for a stack of {len(everyone)}")
    indices = list(range(rank, len(everyone), world))
    configs = [everyone[k] for k in indices]
    factories = [model_factory(c, datamodule) for c in configs]  # model.init may differ
    model = factories[0](derived_seed(configs[0].seed, "model"))
    check_tensor_names(cfg, prunable_weight_names(model))
    threads = job_threads(cfg.trainer, model, len(configs))
    apply_threads(threads)
    prunable = [name for name in prunable_weight_names(model) if name not in cfg.prune.exclude]

    tickets, data_steps = [], set()
    for c in configs:
        ticket, data_step = load_ticket(c, model, prunable) if c.init.name == "ticket" else (None, 0)
        tickets.append(ticket)
        data_steps.add(data_step)
    if len(data_steps) > 1:
        raise ConfigError(
            "lth: invalid config: the members' tickets continue their sources' data streams at other steps "
            f"({sorted(data_steps)}); the stack draws its batches in lockstep"
        )
    datamodule.first_step = data_steps.pop()
    if stacked:
        datamodule.serve([c.seed for c in configs], [c.data.get("label_noise", 0.0) for c in configs])

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    models = [model] + [
        f(derived_seed(c.seed, "model")) for f, c in zip(factories[1:], configs[1:], strict=True)
    ]
    stack = build_stack(cfg, models, configs, prunable, stacked)
    cuda_graphs = str(cfg.trainer.get("cuda_graphs", "auto")).lower()
    optims = [c.optim for c in configs] if stacked else None
    module = LotteryModule(stack, datamodule.task, cfg.optim, cuda_graphs, optims)
    budget = Budget(cfg.train.steps, cfg.train.budget, cfg.train.budget_cap)
    loss, classification = LOSSES[datamodule.task], datamodule.task == "classification"
    lotteries = [
        build_lottery(
            c,
            network,
            budget,
            datamodule,
            factory,
            partial(datamodule.stack_split, i),
            network_evaluator(network, loss, classification),
            ticket,
        )
        for i, (c, network, factory, ticket) in enumerate(
            zip(configs, stack.networks, factories, tickets, strict=True)
        )
    ]
    group = LotteryGroup(lotteries, stack, module.evaluate_stack)
    run_dir = RunDirectory(cfg.paths.output_dir)
    outputs = [
        LotteryOutputs(
            lottery,
            RunDirectory(c.paths.output_dir),
            c.results.save_weights,
            writes=stacked or rank_zero_only.rank == 0,
            loggers=member_loggers(c, lottery_jobs[k][1], lottery_jobs[k][0].hydra) if stacked else [],
        )
        for lottery, c, k in zip(lotteries, configs, indices, strict=True)
    ]
    spread = stacked and world > 1  # each rank its own share: no DDP
    checkpoint_dir = run_dir.checkpoint_dir / f"rank_{rank}" if spread else run_dir.checkpoint_dir
    callback = PruningCallback(group, outputs, cfg.train.checkpoint_every, ranks=not stacked)
    kwargs = lightning_kwargs(cfg.trainer)
    if spread:
        kwargs["strategy"] = ReplicaStrategy()
    trainer = pl.Trainer(
        **kwargs,
        max_steps=max(budget.max_steps(c.prune.levels) for c in everyone),  # the longest member's
        logger=instantiate(cfg.logger) if cfg.logger and not stacked else False,
        callbacks=[
            callback,
            Threads(threads),
            RotatingCheckpoint(checkpoint_dir, callback, each_rank=spread),
            *([LotteryProgressBar(group)] if cfg.trainer.get("enable_progress_bar", True) else []),
            *callbacks,
        ],
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=True,  # with RotatingCheckpoint given, Lightning adds no ModelCheckpoint
        enable_model_summary=False,
        default_root_dir=cfg.paths.output_dir,
        # under SLURM, submitit's SIGUSR2 handler requeues the job; Lightning's SIGUSR1 requeue stays off
        plugins=[SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else None,
    )
    if not stacked:
        outputs[0].loggers = trainer.loggers
    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    resolved = configs if stacked else [OmegaConf.create(config)]
    return Job(
        trainer,
        module,
        datamodule,
        group,
        outputs,
        callback,
        run_dir,
        checkpoint_dir,
        config,
        resolved,
        started,
        stacked,
        [Path(c.paths.output_dir) for c in everyone] if stacked else [],
        [j for j in jobs if j.replicated],
        [_overrides(lottery_jobs[k][0]) for k in indices] if any(j.hydra is not None for j in jobs) else None,
    )


def _overrides(job: Member) -> list[str]:
    return list(job.hydra.hydra.overrides.task) if job.hydra is not None else []


def execute(job: Job) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
    """Train the job's lotteries (resuming from its last good checkpoint), write their files, return
    their records (as in ``results.jsonl``; with replicates, each replicate's)."""
    announce()  # the checks passed: the output directory is a run's
    resume = resumable_checkpoint(job.checkpoint_dir)
    if resume:
        log.info("lth: resuming from %s", resume)
    trainer, replicates = job.trainer, job.stacked
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    fields = collect(trainer.strategy.root_device, 1 if replicates else trainer.world_size, overrides)
    owned = [out for out in job.outputs if out.writes]
    if rank_zero_only.rank == 0:
        for member in job.replicated:  # the job holding replicate_k/
            RunDirectory(member.directory).write_config(OmegaConf.to_yaml(member.config))
    provenances = [Provenance(out.run_dir.meta_file) for out in owned]
    for k, (out, config, provenance) in enumerate(zip(job.outputs, job.configs, provenances, strict=False)):
        out.run_dir.write_config(OmegaConf.to_yaml(config))
        own = {"overrides": job.overrides[k]} if job.overrides is not None else {}
        provenance.start(fields | own, job.started)
    metas = [run_config(p.meta) for p in provenances] or [{}]
    configs = [OmegaConf.to_container(c) | meta for c, meta in zip(job.configs, metas, strict=False)]
    if replicates:
        started = start_replicate_loggers(
            [o.loggers for o in job.outputs], configs, [str(o.run_dir.path) for o in job.outputs]
        )
        for out, loggers in zip(job.outputs, started, strict=True):
            out.loggers = loggers
    else:
        trainer.loggers = job.outputs[0].loggers = start_loggers(
            trainer.loggers, configs[0], str(job.run_dir.path)
        )
    try:
        trainer.fit(job.module, datamodule=job.datamodule, ckpt_path=resume, weights_only=True)
    finally:
        offline = []
        for k, out in enumerate(job.outputs):
            lottery = job.group.lotteries[k]  # its state was replaced when a checkpoint was restored
            meta = run_config(provenances[k].end(lottery.finished)) if k < len(provenances) else {}
            if replicates:
                for logger in out.loggers:  # what Lightning does after a single job's fit
                    logger.finalize("success" if lottery.finished else "failed")
            offline += finish_loggers(out.loggers, lottery.state.records, lottery.finished, meta)
        report_offline_runs(offline)
    if job.group.finished and (replicates or trainer.is_global_zero):
        remove_checkpoints(job.checkpoint_dir)
        with contextlib.suppress(OSError):  # a rank's own directory (replicates spread over ranks)
            if job.checkpoint_dir != job.run_dir.checkpoint_dir:
                job.checkpoint_dir.rmdir()
    if replicates and trainer.world_size > 1:
        trainer.strategy.barrier("lth: every rank's replicates written")
    if trainer.is_global_zero:
        if replicates:
            finish_stack(job)
        else:
            print_results(job.lottery.state.records, title=run_name() or str(job.run_dir.path))
    records = [[r.to_dict() for r in lottery.state.records] for lottery in job.group.lotteries]
    return records if replicates else records[0]


def finish_stack(job: Job) -> None:
    """The DONE of each job of replicates and of the stack's host once all their lotteries are done (on
    every rank), and the lotteries' table (of the directory holding them all: the job's, for replicates)."""
    for member in job.replicated:
        finish_members(member.directory, [Path(c.paths.output_dir) for c in member.lotteries])
    if job.run_dir.path not in {m.directory for m in job.replicated}:
        finish_members(job.run_dir.path, job.member_dirs)
    if job.run_dir.path.parent.name == STACKS_DIR:  # a stacked sweep's: its table comes at the sweep's end
        return
    common = Path(os.path.commonpath([str(d) for d in job.member_dirs]))
    Console().print(sweep_table(common.parent if common in job.member_dirs else common))


def run(
    cfg: DictConfig,
    members: Sequence[DictConfig | Member] | None = None,
    hydras: Sequence[DictConfig] | None = None,
) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
    """Run one job and return its per-level records (a stack's, ``members`` given or ``train.replicates``
    > 1: each member's, ``hydras`` their own Hydra configs); a finished job is not run again."""
    check_config(cfg)
    run_dir = RunDirectory(cfg.paths.output_dir)
    run_dir.claim(OmegaConf.to_yaml(OmegaConf.to_container(cfg, resolve=True)))
    if run_dir.done_file.exists():
        log.info("lth: %s is already finished; nothing to do", run_dir.path)
        if members is None and cfg.train.replicates == 1:
            return read_job_files(run_dir.path)[0]
        jobs = as_members(members or [cfg], hydras)
        return [read_job_files(Path(c.paths.output_dir))[0] for j in jobs for c in j.lotteries]
    return execute(build_job(cfg, members, hydras))
