"""Entry point: ``python -m lth.train [overrides]`` runs one lottery; ``-m`` sweeps.

validate config -> data -> model -> MaskedNetwork -> Trainer(PruningCallback, loggers) -> results on disk.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lth.callbacks import PruningCallback, PruningPlan
from lth.config import ConfigError, check_config, check_exclude, precheck
from lth.console import LotteryProgressBar, print_results
from lth.data import InMemoryDataModule
from lth.init import Restart, derived_seed
from lth.loggers import finish_loggers, run_name, start_loggers
from lth.masks import MaskedNetwork, prunable_weight_names
from lth.module import ClassificationModule
from lth.results import RunDirectory


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


@dataclass
class Job:
    """Everything one lottery job is made of, built but not yet run."""

    trainer: pl.Trainer
    module: ClassificationModule
    datamodule: InMemoryDataModule
    callback: PruningCallback
    run_dir: RunDirectory
    config: dict[str, Any]  # resolved


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
    module = ClassificationModule(network, datamodule.num_classes, cfg.optim, cfg.train.steps)
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
    )
    trainer = pl.Trainer(
        **cfg.trainer,
        max_steps=(cfg.prune.levels + 1) * cfg.train.steps,
        logger=instantiate(cfg.logger) if cfg.logger else False,
        callbacks=[callback, LotteryProgressBar(callback)]
        if cfg.trainer.get("enable_progress_bar", True)
        else [callback],
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=cfg.paths.output_dir,
    )
    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    return Job(trainer, module, datamodule, callback, run_dir, config)


def execute(job: Job) -> list[dict[str, Any]]:
    """Train the lottery, write the job's files, and return its per-level records."""
    job.run_dir.write_config(OmegaConf.to_yaml(job.config))
    trainer, state = job.trainer, job.callback.state
    trainer.loggers = start_loggers(trainer.loggers, job.config, str(job.run_dir.path))
    try:
        trainer.fit(job.module, datamodule=job.datamodule)
    finally:
        finish_loggers(trainer.loggers, state.records)
    if trainer.is_global_zero:
        if state.status != "running":
            job.run_dir.mark_done(state.status, len(state.records))
        print_results(state.records, title=run_name() or str(job.run_dir.path))
    return state.records


def run(cfg: DictConfig) -> list[dict[str, Any]]:
    """Run one lottery job and return its per-level records."""
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
