"""Shared fixtures: configs composed from the real conf/ tree, a session-wide MNIST-1D cache."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from lth.run.config import CONF_DIR

ROOT = Path(__file__).resolve().parents[1]
FAST = ["train.steps=30", "train.eval_every=10", "train.batch_size=64", "prune.levels=2"]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MNIST-1D cache for the whole session (generated on first use, ~3 s)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def make_cfg(tmp_path: Path, data_root: Path) -> Callable[..., DictConfig]:
    """Compose the real config with ``overrides``; output in tmp_path, no experiment logger."""

    def make(*overrides: str) -> DictConfig:
        base = [f"paths.output_dir={tmp_path / 'run'}", f"data.root={data_root}", "logger=none", *FAST]
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=[*base, *overrides])

    return make


@pytest.fixture
def cli_env(tmp_path: Path, data_root: Path) -> dict[str, str]:
    """Environment for ``python -m lth.train`` subprocesses: offline, private HOME, shared data cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    return env | {"HOME": str(tmp_path / "home"), "LTH_DATA_ROOT": str(data_root), "WANDB_SILENT": "true"}


LTH_TRAIN = [sys.executable, "-m", "lth.train"]


@pytest.fixture
def lth_cli(tmp_path: Path, cli_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m lth.train`` in a subprocess from tmp_path and wait for it."""

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*LTH_TRAIN, *args], cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=timeout
        )

    return run


class Crash(Exception):
    """A job crashing mid-run (raised by CrashAt)."""


def crash_at(optimizer: torch.optim.Optimizer, done: int, at: int) -> None:
    """Make ``optimizer`` (``done`` steps taken) raise Crash from its step pre-hook once step ``at`` is
    done; the job's checkpoints stay behind, as after a crash."""
    steps = itertools.count(done)

    def crash(*_: object) -> None:
        if next(steps) == at:
            raise Crash

    optimizer.register_step_pre_hook(crash)


class CrashAt(pl.Callback):
    """Raises Crash once global step ``at`` is done (``crash_at``, so also in the middle of a training
    batch's run of steps)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        crash_at(trainer.optimizers[0], trainer.global_step, self.at)


class LearningRates(pl.Callback):
    """The learning rate of every optimizer step, read just before the step."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        optimizer = trainer.optimizers[0]
        optimizer.register_step_pre_hook(lambda *_: self.lrs.append(optimizer.param_groups[0]["lr"]))
