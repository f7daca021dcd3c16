"""One lottery job: check the config, build data, model, lottery and Trainer, train, write the results.

config -> data + model -> MaskedNetwork -> Lottery -> Trainer(PruningCallback, checkpoint, bar, loggers)
-> results on disk (``RunDirectory``, with the job's provenance in ``meta.json``) and in the loggers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.utilities import rank_zero_only
from torch import nn

from lth.analysis.level import Level, Split
from lth.analysis.specialisation import specialisation
from lth.analysis.suite import ANALYSES
from lth.data.memory import InMemoryDataModule
from lth.data.teacher_student import TeacherStudentDataModule
from lth.errors import ConfigError
from lth.lottery import (
    Budget,
    ForwardCost,
    Lottery,
    MaskedNetwork,
    PruningPlan,
    Restart,
    prunable_weight_names,
)
from lth.lottery.lottery import Analysis, Evaluate, LevelEnd
from lth.lottery.rates import tensor_rates, unit_readers
from lth.lottery.record import ANALYSIS
from lth.lottery.supermask import LearnedSupermask
from lth.lottery.ticket import Ticket
from lth.models import IncompatibleInput, make_teacher
from lth.run.callback import PruningCallback, Threads
from lth.run.checkpointing import RotatingCheckpoint, remove_checkpoints, resumable_checkpoint
from lth.run.config import check_config, check_tensor_names
from lth.run.console import LotteryProgressBar, print_results
from lth.run.cuda_graphs import initialize_cuda_early
from lth.run.job_dir import RunDirectory
from lth.run.loggers import finish_loggers, report_offline_runs, run_name, start_loggers
from lth.run.module import LotteryModule
from lth.run.provenance import Provenance, collect, now, run_config
from lth.run.readers import read_job_files
from lth.run.resume import announce
from lth.run.threads import apply_threads, job_threads, lightning_kwargs
from lth.run.ticket import load_ticket
from lth.seeds import derived_seed

log = logging.getLogger("lth")

TEACHER_KEYS = ("hidden", "teacher_weights")  # data=teacher_student keys that describe the teacher network
LTH_DATA_KEYS = ("label_noise",)  # keys of the data group that lth applies, not the datamodule's constructor


def choice(cfg: DictConfig, group: str) -> str:
    """The option chosen for a config group (``conv2``), or its ``_target_`` outside a Hydra run."""
    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.choices.get(group))
    return str(cfg[group]._target_)


def build_datamodule(cfg: DictConfig) -> InMemoryDataModule:
    """The configured data, set up; teacher-student data gets its teacher network built here."""
    data, extra = cfg.data, {}
    if "teacher_seed" in data:
        extra["teacher"] = partial(
            make_teacher, data.input_dim, list(data.hidden), data.output_dim, data.teacher_weights
        )
        data = OmegaConf.masked_copy(data, [k for k in data if k not in TEACHER_KEYS])
    data = OmegaConf.masked_copy(data, [k for k in data if k not in LTH_DATA_KEYS])
    datamodule: InMemoryDataModule = instantiate(
        data, batch_size=cfg.train.batch_size, seed=cfg.seed, **extra
    )
    datamodule.label_noise = cfg.data.get("label_noise", 0.0)
    datamodule.setup()
    return datamodule


def model_factory(cfg: DictConfig, datamodule: InMemoryDataModule) -> Callable[[int], nn.Module]:
    """Build the configured model with its weights drawn from ``seed`` (global RNG left untouched).

    A model that cannot take the data's input shape is a ConfigError naming both.
    """

    def build(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            try:
                return instantiate(
                    cfg.model, input_shape=datamodule.input_shape, num_classes=datamodule.num_classes
                )
            except InstantiationException as exc:
                if not isinstance(exc.__cause__, IncompatibleInput):
                    raise
                raise ConfigError(
                    f"lth: invalid config: model={choice(cfg, 'model')} does not fit "
                    f"data={choice(cfg, 'data')}: {exc.__cause__}"
                ) from None

    return build


def pruning_plan(cfg: DictConfig, model: nn.Module, prunable: list[str]) -> PruningPlan:
    return PruningPlan(
        criterion=cfg.prune.criterion,
        scope=cfg.prune.scope,
        base_rate=cfg.prune.rate,
        rates=tensor_rates(cfg.prune, model, prunable),
        seed=cfg.seed,
        at_init=cfg.prune.get("at_init"),
        iterations=cfg.prune.get("iterations", 1),
        batches=cfg.prune.get("batches", 1),
        structure=cfg.prune.structure,
        norm=cfg.prune.norm,
        readers=unit_readers(cfg.prune.structure, model, prunable),
    )


def level_analyses(cfg: DictConfig, datamodule: InMemoryDataModule, data: Split) -> dict[str, Analysis]:
    """Analyses recorded at every level: the ``analysis`` list (on the test split ``data``), and node
    specialisation for teacher-student data (on the test inputs, against the teacher the level trained on)."""
    knobs = cfg.get("analysis_cfg") or {}
    analyses: dict[str, Analysis] = {
        f"{ANALYSIS}/{name}": partial(_suite_analysis, name, dict(knobs.get(name) or {}), data, cfg.seed)
        for name in cfg.get("analysis") or []
    }
    if isinstance(datamodule, TeacherStudentDataModule):  # the teacher of the level that ends
        analyses["specialisation"] = lambda end: specialisation(
            datamodule.teacher, end.model, data[0], datamodule.match_threshold
        )
    return analyses


def _suite_analysis(name: str, knobs: dict[str, Any], data: Split, seed: int, end: LevelEnd) -> Any:
    weights = {n: end.model.get_parameter(n).detach() for n in end.masks}
    level = Level(weights, end.theta_0, end.masks, end.previous_masks, end.model, data, seed)
    return ANALYSES[name](level, **knobs)


def build_lottery(
    cfg: DictConfig,
    network: MaskedNetwork,
    budget: Budget,
    datamodule: InMemoryDataModule,
    build_model: Callable[[int], nn.Module],
    data: Callable[[str], Split],
    evaluate: Evaluate,
    ticket: Ticket | None = None,
) -> Lottery:
    """The lottery of the job ``cfg`` over ``network``, with its ``data`` splits and ``evaluate`` (continuing
    ``ticket``, if given)."""
    model = network.model
    return Lottery(
        network,
        levels=cfg.prune.levels,
        budget=budget,
        cost=ForwardCost(model, datamodule.input_shape),
        eval_every=cfg.train.eval_every,
        plan=pruning_plan(cfg, model, network.prunable),
        restart=Restart(cfg.init.name, cfg.seed, cfg.init.get("rewind_step", 0), cfg.init.pruned_weights),
        fresh_state=lambda seed: build_model(seed).state_dict(),
        data=data,
        evaluate=evaluate,
        batch_size=cfg.train.batch_size,
        analyses=level_analyses(cfg, datamodule, data("test")),
        ticket=ticket,
    )


@dataclass
class Job:
    """Everything one lottery job is made of, built but not yet run."""

    trainer: pl.Trainer
    module: LotteryModule
    datamodule: InMemoryDataModule
    lottery: Lottery
    callback: PruningCallback
    run_dir: RunDirectory
    config: dict[str, Any]  # resolved
    started: datetime  # when build_job began


def build_job(cfg: DictConfig) -> Job:
    """Check ``cfg`` and build data, model, masks, lottery and Trainer; nothing is trained or written."""
    started = now()
    check_config(cfg)
    initialize_cuda_early(str(cfg.trainer.get("accelerator", "auto")))
    datamodule = build_datamodule(cfg)
    build_model = model_factory(cfg, datamodule)
    model = build_model(derived_seed(cfg.seed, "model"))
    check_tensor_names(cfg, prunable_weight_names(model))
    threads = job_threads(cfg.trainer, model)
    apply_threads(threads)
    prunable = [name for name in prunable_weight_names(model) if name not in cfg.prune.exclude]

    ticket, data_step = load_ticket(cfg, model, prunable) if cfg.init.name == "ticket" else (None, 0)
    datamodule.first_step = data_step

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.prune.get("learned"):
        network: MaskedNetwork = LearnedSupermask(model, prunable, derived_seed(cfg.seed, "supermask"))
    else:
        network = MaskedNetwork(model, prunable)
    cuda_graphs = str(cfg.trainer.get("cuda_graphs", "auto")).lower()
    module = LotteryModule(network, datamodule.task, datamodule.num_classes, cfg.optim, cuda_graphs)
    run_dir = RunDirectory(cfg.paths.output_dir)
    budget = Budget(cfg.train.steps, cfg.train.budget, cfg.train.budget_cap)
    lottery = build_lottery(
        cfg, network, budget, datamodule, build_model, datamodule.split, module.evaluate, ticket
    )
    callback = PruningCallback(lottery, cfg.train.checkpoint_every, run_dir, cfg.results.save_weights)
    trainer = pl.Trainer(
        **lightning_kwargs(cfg.trainer),
        max_steps=budget.max_steps(cfg.prune.levels),
        logger=instantiate(cfg.logger) if cfg.logger else False,
        callbacks=[
            callback,
            Threads(threads),
            RotatingCheckpoint(run_dir.checkpoint_dir, callback),
            *([LotteryProgressBar(lottery)] if cfg.trainer.get("enable_progress_bar", True) else []),
        ],
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=True,  # with RotatingCheckpoint given, Lightning adds no ModelCheckpoint
        enable_model_summary=False,
        default_root_dir=cfg.paths.output_dir,
        # under SLURM, submitit's SIGUSR2 handler requeues the job; Lightning's SIGUSR1 requeue stays off
        plugins=[SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else None,
    )
    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    return Job(trainer, module, datamodule, lottery, callback, run_dir, config, started)


def execute(job: Job) -> list[dict[str, Any]]:
    """Train the lottery (resuming from the job's last good checkpoint), write its files, return its
    records (as in ``results.jsonl``)."""
    announce()  # the checks passed: the output directory is a run's
    resume = resumable_checkpoint(job.run_dir.checkpoint_dir)
    if resume:
        log.info("lth: resuming from %s", resume)
    trainer, state = job.trainer, job.lottery.state
    provenance = Provenance(job.run_dir.meta_file)
    if rank_zero_only.rank == 0:
        job.run_dir.write_config(OmegaConf.to_yaml(job.config))
        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
        provenance.start(collect(trainer.strategy.root_device, trainer.world_size, overrides), job.started)
    meta = run_config(provenance.meta)
    trainer.loggers = start_loggers(trainer.loggers, job.config | meta, str(job.run_dir.path))
    try:
        trainer.fit(job.module, datamodule=job.datamodule, ckpt_path=resume, weights_only=True)
    finally:
        state = job.lottery.state  # replaced when a checkpoint was restored
        if rank_zero_only.rank == 0:
            meta = run_config(provenance.end(state.status != "running"))
        report_offline_runs(finish_loggers(trainer.loggers, state.records, state.status != "running", meta))
    if trainer.is_global_zero:
        if state.status != "running":
            job.run_dir.mark_done(state.status, len(state.records))
            remove_checkpoints(job.run_dir.checkpoint_dir)
        print_results(state.records, title=run_name() or str(job.run_dir.path))
    return [r.to_dict() for r in state.records]


def run(cfg: DictConfig) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
    """Run one lottery job and return its per-level records (with ``train.replicates`` > 1: each
    replicate's); a finished job is not run again."""
    check_config(cfg)
    run_dir = RunDirectory(cfg.paths.output_dir)
    run_dir.claim(OmegaConf.to_yaml(OmegaConf.to_container(cfg, resolve=True)))
    replicates = cfg.train.replicates
    if run_dir.done_file.exists():
        log.info("lth: %s is already finished; nothing to do", run_dir.path)
        if replicates > 1:
            return [read_job_files(run_dir.path / f"replicate_{k}")[0] for k in range(replicates)]
        return read_job_files(run_dir.path)[0]
    if replicates > 1:
        from lth.run.replicates import build_replicates, execute_replicates

        return execute_replicates(build_replicates(cfg))
    return execute(build_job(cfg))
