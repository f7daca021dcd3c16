"""What every benchmark of ``python -m lth.bench`` shares: random MNIST-shaped data, clocks, a Lightning
callback that reads the clock at each training batch, and the real config with a benchmark's overrides."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

from lth.data.idx import write_idx
from lth.data.vision import IDX_FILES
from lth.run.config import CONF_DIR

# name: (overrides, steps of a single job and at most of a stack, lottery-steps of a stack)
REPLICATE_MODELS = {
    "MNIST-1D MLP": (["data=mnist1d", "model=mlp", "train.batch_size=128"], 1000, 16000),
    "LeNet-300-100": (["data=mnist", "model=lenet300_100", "train.batch_size=60"], 300, 2400),
}


def write_random_mnist(root: Path, seed: int) -> None:
    """60,000 train and 10,000 test random 28x28 images with random labels, as MNIST idx files."""
    g = torch.Generator().manual_seed(seed)
    sizes = {"train": 60000, "t10k": 10000}
    for name in IDX_FILES:
        n = sizes[name.split("-")[0]]
        shape = (n, 28, 28) if "images" in name else (n,)
        high = 256 if "images" in name else 10
        write_idx(root / name, torch.randint(0, high, shape, generator=g, dtype=torch.uint8))


def now() -> tuple[float, float]:
    """(wall clock, CPU time of this thread) in seconds."""
    return time.perf_counter(), time.thread_time()


def rates(steps: int, start: tuple[float, float], end: tuple[float, float]) -> tuple[float, float]:
    """Steps per second of wall time and of CPU time between two ``now()`` readings."""
    return steps / (end[0] - start[0]), steps / (end[1] - start[1])


def now_process() -> tuple[float, float]:
    """(wall clock, CPU time of this process: every torch thread) in seconds."""
    return time.perf_counter(), time.process_time()


class StepClock(pl.Callback):
    """The global step and ``clock()`` at the end of every training batch (a run of optimizer steps)."""

    def __init__(self, clock: Callable[[], tuple[float, float]] = now) -> None:
        self.times: list[tuple[int, tuple[float, float]]] = []
        self.clock = clock

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self.times.append((trainer.global_step, self.clock()))


def bench_cfg(root: Path, overrides: list[str], out: Path | None = None) -> Any:
    """The real config with ``overrides``: data cached under ``root``, output in ``out`` (a fresh directory
    under ``root`` if None), no experiment logger, no progress bar."""
    out = out or Path(tempfile.mkdtemp(dir=root, prefix="run_"))
    base = [
        f"data.root={root}",
        f"paths.output_dir={out}",
        "logger=none",
        "trainer.enable_progress_bar=false",
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=[*base, *overrides])


def replicate_cfg(
    root: Path, overrides: list[str], steps: int, replicates: int, trainer: tuple[str, ...] = ("trainer=cpu",)
) -> Any:
    return bench_cfg(
        root,
        [
            *overrides,
            "optim=adam",
            f"train.steps={steps}",
            f"train.eval_every={steps}",
            f"train.replicates={replicates}",
            "train.checkpoint_every=null",
            "prune.levels=0",
            *trainer,
        ],
    )
