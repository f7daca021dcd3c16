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
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.loggers import WandbLogger
from torch import nn

from lth.callbacks import PruningCallback, PruningPlan
from lth.config import ConfigError, check_config, check_exclude, precheck
from lth.data import InMemoryDataModule
from lth.init import Restart, derived_seed
from lth.masks import CONV_MODULES, MaskedNetwork, prunable_weight_names
from lth.models import IncompatibleInput
from lth.module import ClassificationModule
from lth.results import RunDirectory

log = logging.getLogger("lth")


def choice(cfg: DictConfig, group: str) -> str:
    """The option chosen for a config group (``conv2``), or its ``_target_`` outside a Hydra run."""
    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.choices.get(group))
    return str(cfg[group]._target_)


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


def tensor_rates(cfg: DictConfig, model: nn.Module, prunable: list[str]) -> dict[str, float]:
    """Each prunable tensor's rate: the output layer (last Linear/Conv) at ``prune.output_rate``
    (null = half of ``prune.rate``), the other conv layers at ``prune.conv_rate`` (null = ``prune.rate``),
    the rest at ``prune.rate``."""
    output = prunable_weight_names(model)[-1]
    output_rate = cfg.prune.output_rate if cfg.prune.output_rate is not None else cfg.prune.rate / 2
    conv_rate = cfg.prune.get("conv_rate")
    conv_rate = conv_rate if conv_rate is not None else cfg.prune.rate

    def rate(name: str) -> float:
        if name == output:
            return output_rate
        is_conv = isinstance(model.get_submodule(name.rpartition(".")[0]), CONV_MODULES)
        return conv_rate if is_conv else cfg.prune.rate

    return {name: rate(name) for name in prunable}


def progress_bar(cfg: DictConfig) -> list[TQDMProgressBar]:
    """Lightning's bar refreshed every ``train.progress_every`` steps (its default, every step, is slow)."""
    if not cfg.trainer.get("enable_progress_bar", True):
        return []
    return [TQDMProgressBar(refresh_rate=cfg.train.progress_every)]


@dataclass
class Job:
    """Everything one lottery job is made of, built but not yet run."""

    trainer: pl.Trainer
    module: ClassificationModule
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
        callbacks=[callback, *progress_bar(cfg)],
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=cfg.paths.output_dir,
    )
    return Job(trainer, module, datamodule, callback, run_dir, OmegaConf.to_yaml(cfg, resolve=True))


def execute(job: Job) -> list[dict[str, Any]]:
    """Train the lottery, write the job's files, and return its per-level records."""
    job.run_dir.write_config(job.resolved_config)
    try:
        job.trainer.fit(job.module, datamodule=job.datamodule)
    finally:
        for logger in job.trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.finish()
    state = job.callback.state
    if job.trainer.is_global_zero and state.status != "running":
        job.run_dir.mark_done(state.status, len(state.records))
    for r in state.records:
        log.info(
            "level %d  weights %5.1f%%  test_acc %.4f  early-stop step %d (test_acc %.4f)  %s",
            r["level"],
            100 * r["weights_remaining"],
            r["test_acc"],
            r["early_stop_step"],
            r["test_acc_at_early_stop"],
            r["status"],
        )
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
