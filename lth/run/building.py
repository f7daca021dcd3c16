"""Building the parts of a job from its config, without Lightning: the data, a model factory, a
lottery's pruning plan, analyses and ``Lottery`` (``lth.run.job`` puts them under the Trainer)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lth.analysis.level import Level, Split
from lth.analysis.specialisation import specialisation
from lth.analysis.suite import ANALYSES
from lth.data.memory import InMemoryDataModule
from lth.data.teacher_student import TeacherStudentDataModule
from lth.errors import ConfigError
from lth.lottery import Budget, ForwardCost, Lottery, MaskedNetwork, PruningPlan, Restart
from lth.lottery.lottery import Analysis, Evaluate, LevelEnd
from lth.lottery.rates import tensor_rates, unit_readers
from lth.lottery.record import ANALYSIS
from lth.lottery.ticket import Ticket
from lth.models import IncompatibleInput, make_teacher

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
