"""Entry point: ``python -m lth.train [overrides]`` runs one lottery; ``-m`` sweeps.

validate config -> data -> model -> MaskedNetwork -> Trainer(PruningCallback, loggers) -> results on disk.
"""

from __future__ import annotations

import itertools
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
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.utilities import rank_zero_only
from torch import Tensor, nn

from lth.callbacks import Analysis, PruningCallback, PruningPlan
from lth.checkpointing import RotatingCheckpoint, remove_checkpoints, resumable_checkpoint
from lth.config import ConfigError, check_config, check_tensor_names, precheck
from lth.console import LotteryProgressBar, print_results, quiet_third_party_noise
from lth.data import InMemoryDataModule
from lth.data.teacher_student import TeacherStudentDataModule
from lth.flops import Budget, ForwardCost
from lth.init import Restart, derived_seed
from lth.loggers import finish_loggers, run_name, start_loggers
from lth.masks import CONV_MODULES, MaskedNetwork, prunable_weight_names
from lth.models import IncompatibleInput
from lth.module import LotteryModule
from lth.results import RunDirectory
from lth.run.threads import Threads, apply_threads, job_threads, lightning_kwargs
from lth.specialisation import specialisation
from lth.supermask import LearnedSupermask

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
    """Each prunable tensor's rate: its entry in ``prune.rates`` if it has one, else the output layer
    (last Linear/Conv) at ``prune.output_rate`` (null = half of ``prune.rate``), the other conv layers
    at ``prune.conv_rate`` (null = ``prune.rate``), the rest at ``prune.rate``."""
    output = prunable_weight_names(model)[-1]
    output_rate = cfg.prune.output_rate if cfg.prune.output_rate is not None else cfg.prune.rate / 2
    conv_rate = cfg.prune.get("conv_rate")
    conv_rate = conv_rate if conv_rate is not None else cfg.prune.rate

    def rate(name: str) -> float:
        if name in (cfg.prune.rates or {}):
            return cfg.prune.rates[name]
        if name == output:
            return output_rate
        is_conv = isinstance(model.get_submodule(name.rpartition(".")[0]), CONV_MODULES)
        return conv_rate if is_conv else cfg.prune.rate

    return {name: rate(name) for name in prunable}


def reads_units(unit: Tensor, reader: Tensor) -> bool:
    """Whether ``reader``'s input columns can be ``unit``'s outputs: one per unit, or (a Linear after a
    Conv) the same number per channel of the flattened ``(C, H, W)`` output."""
    columns, units = reader.shape[1], unit.shape[0]
    return columns == units or (unit.dim() > 2 and reader.dim() == 2 and columns % units == 0)


def unit_readers(structure: str, model: nn.Module, prunable: list[str]) -> dict[str, str]:
    """The tensors structured pruning removes units from, each with the prunable tensor reading them.

    Units are hidden Linear rows (``neuron``) or Conv filters (``filter``), never the output layer's
    (the classes). A model with skip connections declares the pairs (``model.unit_readers()``; ResNet:
    the first conv of each block, read by the second, as Li et al. prune ResNets); any other model is
    taken as a chain, each tensor read by the next Linear/Conv. A unit tensor without a prunable reader
    of a matching width is a ConfigError.
    """
    weights = prunable_weight_names(model)
    linear = structure == "neuron"
    kind = [n for n in prunable if n != weights[-1] and (model.get_parameter(n).dim() == 2) == linear]
    declared = getattr(model, "unit_readers", None)
    pairs = declared() if declared else dict(itertools.pairwise(weights))
    readers = {}
    for name in kind:
        reader = pairs.get(name)
        if reader is None and declared:
            continue  # a unit tensor whose outputs also travel a skip connection
        if reader not in prunable or not reads_units(model.get_parameter(name), model.get_parameter(reader)):
            raise ConfigError(
                f"lth: invalid config: prune.structure={structure} cannot prune the units of {name}: the "
                f"next layer's weight {reader} is not prunable (prune.exclude) or does not read them"
            )
        readers[name] = reader
    return readers


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
    config: dict[str, Any]  # resolved


def build_job(cfg: DictConfig) -> Job:
    """Check ``cfg`` and build data, model, masks, callback and Trainer; nothing is trained or written."""
    check_config(cfg)
    datamodule: InMemoryDataModule = instantiate(cfg.data, batch_size=cfg.train.batch_size, seed=cfg.seed)
    datamodule.setup()
    build_model = model_factory(cfg, datamodule)
    model = build_model(derived_seed(cfg.seed, "model"))
    threads = job_threads(cfg.trainer, model)
    apply_threads(threads)
    check_tensor_names(cfg, prunable_weight_names(model))
    prunable = [name for name in prunable_weight_names(model) if name not in cfg.prune.exclude]

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.prune.get("learned"):
        network: MaskedNetwork = LearnedSupermask(model, prunable, derived_seed(cfg.seed, "supermask"))
    else:
        network = MaskedNetwork(model, prunable)
    module = LotteryModule(network, datamodule.task, datamodule.num_classes, cfg.optim)
    run_dir = RunDirectory(cfg.paths.output_dir)
    budget = Budget(cfg.train.steps, cfg.train.budget, cfg.train.budget_cap)
    callback = PruningCallback(
        levels=cfg.prune.levels,
        budget=budget,
        cost=ForwardCost(model, datamodule.input_shape),
        eval_every=cfg.train.eval_every,
        checkpoint_every=cfg.train.checkpoint_every,
        plan=PruningPlan(
            criterion=cfg.prune.criterion,
            scope=cfg.prune.scope,
            base_rate=cfg.prune.rate,
            rates=tensor_rates(cfg, model, prunable),
            seed=cfg.seed,
            at_init=cfg.prune.get("at_init"),
            iterations=cfg.prune.get("iterations", 1),
            batches=cfg.prune.get("batches", 1),
            structure=cfg.prune.structure,
            norm=cfg.prune.norm,
            readers=unit_readers(cfg.prune.structure, model, prunable),
        ),
        restart=Restart(cfg.init.name, cfg.seed, cfg.init.get("rewind_step", 0), cfg.init.pruned_weights),
        fresh_state=lambda seed: build_model(seed).state_dict(),
        run_dir=run_dir,
        save_weights=cfg.results.save_weights,
        analyses=level_analyses(datamodule),
    )
    trainer = pl.Trainer(
        **lightning_kwargs(cfg.trainer),
        max_steps=budget.max_steps(cfg.prune.levels),
        logger=instantiate(cfg.logger) if cfg.logger else False,
        callbacks=[
            callback,
            Threads(threads),
            RotatingCheckpoint(run_dir.checkpoint_dir, callback),
            *([LotteryProgressBar(callback)] if cfg.trainer.get("enable_progress_bar", True) else []),
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
    return Job(trainer, module, datamodule, callback, run_dir, config)


def execute(job: Job) -> list[dict[str, Any]]:
    """Train the lottery (resuming from the job's last good checkpoint), write its files, return its records."""
    resume = resumable_checkpoint(job.run_dir.checkpoint_dir)
    if resume:
        log.info("lth: resuming from %s", resume)
    if rank_zero_only.rank == 0:
        job.run_dir.write_config(OmegaConf.to_yaml(job.config))
    trainer = job.trainer
    trainer.loggers = start_loggers(trainer.loggers, job.config, str(job.run_dir.path))
    try:
        trainer.fit(job.module, datamodule=job.datamodule, ckpt_path=resume, weights_only=True)
    finally:
        finish_loggers(trainer.loggers, job.callback.state.records, job.callback.state.status != "running")
    state = job.callback.state  # replaced when a checkpoint was restored
    if trainer.is_global_zero:
        if state.status != "running":
            job.run_dir.mark_done(state.status, len(state.records))
            remove_checkpoints(job.run_dir.checkpoint_dir)
        print_results(state.records, title=run_name() or str(job.run_dir.path))
    return state.records


def run(cfg: DictConfig) -> list[dict[str, Any]]:
    """Run one lottery job and return its per-level records; a finished job is not run again."""
    check_config(cfg)
    run_dir = RunDirectory(cfg.paths.output_dir)
    run_dir.claim(OmegaConf.to_yaml(OmegaConf.to_container(cfg, resolve=True)))
    if run_dir.done_file.exists():
        log.info("lth: %s is already finished; nothing to do", run_dir.path)
        return run_dir.read_records()
    return execute(build_job(cfg))


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def hydra_main(cfg: DictConfig) -> list[dict[str, Any]]:
    quiet_third_party_noise()  # also in the worker processes of hydra/launcher=local_parallel
    try:
        return run(cfg)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def main() -> None:
    """Check every job of the command line first (one-line error, exit 2), then hand over to Hydra."""
    quiet_third_party_noise()
    problem = precheck(sys.argv[1:])
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(2)
    hydra_main()


if __name__ == "__main__":
    main()
