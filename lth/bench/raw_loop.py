"""lth's training path against a hand-written PyTorch loop (``python -m lth.bench``, the default):
LeNet-300-100 on random MNIST, the same optimizer and masks, steps/s of each and their ratio."""

from __future__ import annotations

import copy
import itertools
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from torch import Tensor, nn

from lth.bench.common import StepClock, now, rates, write_random_mnist
from lth.lottery.optim import build_optimizer
from lth.run.config import CONF_DIR
from lth.run.job import Job, build_job, execute

TARGET_RATIO = 1.3


def lth_job(root: Path, steps: int, optim: str, overrides: list[str], clock: StepClock) -> Job:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "data=mnist",
                f"data.root={root}",
                "model=lenet300_100",
                f"optim={optim}",
                "train.batch_size=60",
                f"train.steps={steps}",
                f"train.eval_every={steps}",
                "prune.levels=1",
                "logger=none",
                "trainer=cpu",
                f"paths.output_dir={root / 'run'}",
                *overrides,
            ],
        )
    return build_job(cfg, callbacks=[clock])


def raw_loop(
    model: nn.Module, masks: dict[str, Tensor], x: Tensor, y: Tensor, optim: dict[str, Any], steps: int
) -> tuple[float, float]:
    """Steps per second (wall, CPU) of a minimal loop: randperm per epoch, index_select a batch,
    forward, backward, step, multiply the weights by their (float) masks."""
    optimizer = build_optimizer(model.parameters(), optim)
    params = dict(model.named_parameters())
    batch, per_epoch = 60, len(x) // 60

    def batches():
        for epoch in itertools.count():
            perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
            for i in range(per_epoch):
                rows = perm[i * batch : (i + 1) * batch]
                yield x.index_select(0, rows), y.index_select(0, rows)

    stream = batches()
    start = now()
    for step in range(steps + 50):  # 50 warm-up steps
        if step == 50:
            start = now()
        xb, yb = next(stream)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        optimizer.step()
        with torch.no_grad():
            for name, mask in masks.items():
                params[name].mul_(mask)
    return rates(steps, start, now())


def fetch_seconds(job: Job, steps: int) -> float:
    """Seconds per batch drawn from lth's own training stream (ShuffledBatches)."""
    stream = job.datamodule.train_batches()
    start = time.perf_counter()
    for _ in range(steps):
        next(stream)
    return (time.perf_counter() - start) / steps


@dataclass(frozen=True)
class Round:
    """One lth run and the raw loop right after it (steps/s by wall clock and CPU time)."""

    lth: tuple[float, float]
    raw: tuple[float, float]
    fetch_s: float
    level_s: float

    @property
    def ratios(self) -> tuple[float, float]:
        return self.raw[0] / self.lth[0], self.raw[1] / self.lth[1]


def measure(root: Path, steps: int, optim: str, overrides: list[str]) -> Round:
    clock = StepClock()
    job = lth_job(root, steps, optim, overrides, clock)
    records = execute(job)
    level_1 = [(s, t) for s, t in clock.times if steps < s < 2 * steps]  # level 1 without its final eval
    (first, start), (last, end) = level_1[0], level_1[-1]
    network = job.module.network  # the raw loop continues from lth's final weights and masks
    masks = {name: network.mask(name).float() for name in network.prunable}
    raw = raw_loop(
        copy.deepcopy(network.model), masks, *job.datamodule.split("train"), job.module.optim, steps
    )
    return Round(rates(last - first, start, end), raw, fetch_seconds(job, steps), records[1]["wall_s"])


def raw_loop_main(threads: int, steps: int, rounds: int, optim: str, overrides: list[str]) -> None:
    """Print ``rounds`` rounds of lth against the raw loop at ``threads`` torch threads, and their medians."""
    torch.set_num_threads(threads)
    overrides = [f"trainer.threads={threads}", *overrides]
    header = (
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), LeNet-300-100, batch 60, {optim}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        write_random_mnist(Path(tmp), seed=0)
        results = [measure(Path(tmp), steps, optim, overrides) for _ in range(rounds)]

    print(header)
    print(f"  {'steps/s (wall | CPU)':<24}{'raw loop':>16}{'lth':>16}{'lth/raw time':>18}")
    for k, r in enumerate(results, start=1):
        print(
            f"  round {k:<18}{r.raw[0]:7.0f} | {r.raw[1]:<6.0f}{r.lth[0]:7.0f} | {r.lth[1]:<6.0f}"
            f"{r.ratios[0]:8.2f}x | {r.ratios[1]:.2f}x"
        )
    wall, cpu = (statistics.median(r.ratios[i] for r in results) for i in (0, 1))
    verdict = "ok" if cpu <= TARGET_RATIO else "MISSED"
    print(
        f"  median lth / raw time per step: {wall:.2f}x wall, {cpu:.2f}x CPU (target <= {TARGET_RATIO}x: {verdict})"
    )
    fetch = statistics.median(r.fetch_s * r.lth[0] for r in results)
    print(
        f"  batch fetch: {1e6 * statistics.median(r.fetch_s for r in results):.0f} us = {100 * fetch:.1f}% of an lth step"
    )
    level = statistics.median(r.level_s for r in results)
    print(
        f"  one IMP level: {level:.1f} s = {steps} steps + eval + prune + rewind "
        f"(50K steps: ~{level * 50000 / steps:.0f} s)"
    )
