"""Entry point: ``python -m lth.train [overrides]`` runs one lottery; ``-m`` sweeps.

validate config -> data -> model -> MaskedNetwork -> Trainer(PruningCallback, loggers) -> results on disk.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.utilities import rank_zero_only
from torch import nn

from lth.callbacks import Analysis, PruningCallback, PruningPlan
from lth.checkpointing import RotatingCheckpoint, remove_checkpoints, resumable_checkpoint
from lth.config import ConfigError, check_config, check_exclude, precheck
from lth.data import InMemoryDataModule
from lth.data.teacher_student import TeacherStudentDataModule
from lth.init import Restart, derived_seed
from lth.masks import MaskedNetwork, prunable_weight_names
from lth.module import LotteryModule
from lth.results import RunDirectory
from lth.specialisation import specialisation

log = logging.getLogger("lth")


def model_factory(cfg: DictConfig, datamodule: InMemoryDataModule) -> Callable[[int], nn.Module]:
    """Build the configured model with its weights drawn from ``seed`` (global RNG left untouched)."""

    def build(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return instantiate(
                cfg.model, input_shape=datamodule.input_shape, num_classes=datamodule.num_classes
            )

    return build


def tensor_rates(cfg: DictConfig, model: nn.Module, prunable: list[str]) -> dict[str, float]:
    """Each prunable tensor's rate: the output layer (last Linear/Conv) at ``prune.output_rate``."""
    output = prunable_weight_names(model)[-1]
    output_rate = cfg.prune.output_rate if cfg.prune.output_rate is not None else cfg.prune.rate / 2
    return {name: output_rate if name == output else cfg.prune.rate for name in prunable}


def level_analyses(datamodule: InMemoryDataModule) -> dict[str, Analysis]:
    """Analyses recorded at every level: node specialisation for teacher-student data (on the test inputs)."""
    if not isinstance(datamodule, TeacherStudentDataModule):
        return {}
    x = datamodule.split("test")[0]
    return {
        "specialisation": lambda model: specialisation(
            datamodule.teacher, model, x, datamodule.match_threshold
        )
    }


@dataclass
class Job:
    """Everything one lottery job is made of, built but not yet run."""

    trainer: pl.Trainer
    module: LotteryModule
    datamodule: InMemoryDataModule
    callback: PruningCallback
    run_dir: RunDirectory
    resolved_config: str


def build_job(cfg: DictConfig) -> Job:
    """Check ``cfg`` and build data, model, masks, callback and Trainer; nothing is trained or written."""
    check_config(cfg)
    datamodule: InMemoryDataModule = instantiate(cfg.data, batch_size=cfg.train.batch_size, seed=cfg.seed)
    datamodule.setup()
    build_model = model_factory(cfg, datamodule)
    model = build_model(derived_seed(cfg.seed, "model"))
    check_exclude(cfg.prune.exclude, prunable_weight_names(model))
    prunable = [name for name in prunable_weight_names(model) if name not in cfg.prune.exclude]

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    network = MaskedNetwork(model, prunable)
    module = LotteryModule(network, datamodule.task, datamodule.num_classes, cfg.optim, cfg.train.steps)
    run_dir = RunDirectory(cfg.paths.output_dir)
    callback = PruningCallback(
        levels=cfg.prune.levels,
        steps=cfg.train.steps,
        eval_every=cfg.train.eval_every,
        plan=PruningPlan(
            cfg.prune.criterion, cfg.prune.scope, cfg.prune.rate, tensor_rates(cfg, model, prunable)
        ),
        restart=Restart(cfg.init.name, cfg.seed, cfg.init.get("rewind_step", 0)),
        fresh_state=lambda seed: build_model(seed).state_dict(),
        run_dir=run_dir,
        save_weights=cfg.results.save_weights,
        analyses=level_analyses(datamodule),
    )
    trainer = pl.Trainer(
        **cfg.trainer,
        max_steps=(cfg.prune.levels + 1) * cfg.train.steps,
        logger=instantiate(cfg.logger) if cfg.logger else False,
        callbacks=[
            callback,
            RotatingCheckpoint(run_dir.checkpoint_dir, cfg.train.steps, cfg.train.checkpoint_every),
        ],
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=True,  # with RotatingCheckpoint given, Lightning adds no ModelCheckpoint
        enable_model_summary=False,
        default_root_dir=cfg.paths.output_dir,
        # under SLURM, submitit's SIGUSR2 handler requeues the job; Lightning's SIGUSR1 requeue stays off
        plugins=[SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else None,
    )
    return Job(trainer, module, datamodule, callback, run_dir, OmegaConf.to_yaml(cfg, resolve=True))


def execute(job: Job) -> list[dict[str, Any]]:
    """Train the lottery (resuming from the job's last good checkpoint), write its files, return its records."""
    resume = resumable_checkpoint(job.run_dir.checkpoint_dir)
    if resume:
        log.info("lth: resuming from %s", resume)
    if rank_zero_only.rank == 0:
        job.run_dir.write_config(job.resolved_config)
    try:
        job.trainer.fit(job.module, datamodule=job.datamodule, ckpt_path=resume, weights_only=True)
    finally:
        for logger in job.trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.finish()
    state = job.callback.state
    if not job.trainer.is_global_zero:
        return state.records
    if state.status != "running":
        job.run_dir.mark_done(state.status, len(state.records))
        remove_checkpoints(job.run_dir.checkpoint_dir)
    for r in state.records:
        log.info(
            "level %d  weights %5.1f%%  test_loss %.4g  test_acc %s  early-stop step %d (test_loss %.4g)  %s",
            r["level"],
            100 * r["weights_remaining"],
            r["test_loss"],
            "n/a" if r["test_acc"] is None else f"{r['test_acc']:.4f}",
            r["early_stop_step"],
            r["test_loss_at_early_stop"],
            r["status"],
        )
    return state.records


def run(cfg: DictConfig) -> list[dict[str, Any]]:
    """Run one lottery job and return its per-level records; a finished job is not run again."""
    check_config(cfg)
    run_dir = RunDirectory(cfg.paths.output_dir)
    run_dir.claim(OmegaConf.to_yaml(cfg, resolve=True))
    if run_dir.done_file.exists():
        log.info("lth: %s is already finished; nothing to do", run_dir.path)
        return run_dir.read_records()
    return execute(build_job(cfg))


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def hydra_main(cfg: DictConfig) -> list[dict[str, Any]]:
    try:
        return run(cfg)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def main() -> None:
    """Check every job of the command line first (one-line error, exit 2), then hand over to Hydra."""
    problem = precheck(sys.argv[1:])
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(2)
    hydra_main()


if __name__ == "__main__":
    main()
