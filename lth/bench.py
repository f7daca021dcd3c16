"""``python -m lth.bench``: lth's training path against a hand-written PyTorch loop, in one process.

Both train LeNet-300-100 on random MNIST-shaped data held in memory (60,000 + 10,000 images written
as idx files and read through ``data=mnist``), batch 60, the same optimizer and the same masks:
- lth: ``build_job`` + ``execute`` (Lightning Trainer, PruningCallback, MaskedNetwork), 2 levels;
  steps/s is taken over level 1, where 20% of the hidden weights (10% of the output layer) are pruned;
- raw: ``randperm`` per epoch, index a batch, forward, backward, step, ``weight *= mask``.
It prints steps/s of each (by wall clock, and by the main thread's CPU time, which other processes
on a shared machine disturb much less), their ratios, the share of an lth step spent drawing its
batch, and the wall time of one IMP level; ``--rounds`` repeats lth + raw and reports medians.
``--compare-threads 1 2`` instead times the default job (``make train``: MNIST-1D, MLP) at each
``trainer.threads`` (rounds interleaved, medians; extra overrides apply, e.g. ``model=lenet300_100``).

``--replicates`` instead prints, per ``--threads`` value, the lottery-steps/s of K stacked replicates
(``train.replicates=K``, K from ``--sizes``) against K sequential single jobs, for the MNIST-1D MLP and
LeNet-300-100 (Adam).

``--sweep`` instead times the mission's sweep (``-m prune.rate=0.2,0.5 optim.lr=0.01,0.1 seed=0,1``,
the default job, one thread) as two whole processes, unstacked and ``hydra/sweeper=stacked``.

``--cuda`` instead prints, where a CUDA device is present, steps/s of one lottery and lottery-steps/s of
K stacked replicates, eager against captured (``trainer.cuda_graphs``), for the same two models, and the
default job's level on the GPU against one CPU thread.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from torch import Tensor, nn

from lth.data.idx import write_idx
from lth.data.vision import IDX_FILES
from lth.lottery.optim import build_optimizer
from lth.run.cli import quiet_third_party_noise
from lth.run.config import CONF_DIR
from lth.run.job import Job, build_job, execute

TARGET_RATIO = 1.3
CUDA_TARGETS = {"MNIST-1D MLP": (0, 3000), "LeNet-300-100": (64, 50000)}  # (K, lottery-steps/s); K=0: one job
LEVEL_TARGET = 5.0  # the default job's level on the GPU against one CPU thread
REPLICATE_TARGET = 3.0  # K=8 stacked vs 8 sequential jobs, MNIST-1D MLP, on a 2-core CPU
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


def lth_job(root: Path, steps: int, optim: str, overrides: list[str]) -> Job:
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
    return build_job(cfg)


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
    job = lth_job(root, steps, optim, overrides)
    clock = StepClock()
    job.trainer.callbacks.append(clock)
    records = execute(job)
    level_1 = [(s, t) for s, t in clock.times if steps < s < 2 * steps]  # level 1 without its final eval
    (first, start), (last, end) = level_1[0], level_1[-1]
    network = job.module.network  # the raw loop continues from lth's final weights and masks
    masks = {name: network.mask(name).float() for name in network.prunable}
    raw = raw_loop(
        copy.deepcopy(network.model), masks, *job.datamodule.split("train"), job.module.optim, steps
    )
    return Round(rates(last - first, start, end), raw, fetch_seconds(job, steps), records[1]["wall_s"])


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


def default_job_rate(root: Path, out: Path, steps: int, threads: int, overrides: list[str]) -> float:
    """Steps per second (wall clock) of the default job's dense training at ``trainer.threads=threads``
    (data cached under ``root``, output in ``out``), after its first 10% of steps."""
    overrides = [
        "trainer=cpu",
        f"trainer.threads={threads}",
        f"train.steps={steps}",
        f"train.eval_every={steps}",
        "prune.levels=0",
        *overrides,
    ]
    job = build_job(bench_cfg(root, overrides, out))
    clock = StepClock()
    job.trainer.callbacks.append(clock)
    execute(job)
    (first, start), (last, end) = clock.times[len(clock.times) // 10], clock.times[-1]
    return (last - first) / (end[0] - start[0])


def compare_threads(counts: list[int], steps: int, rounds: int, overrides: list[str]) -> None:
    """Print the default job's steps/s at each thread count (median of ``rounds`` interleaved runs)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runs = [
            (n, default_job_rate(root, root / f"run{k}_{n}", steps, n, overrides))
            for k in range(rounds)
            for n in counts
        ]
    print(f"default job{' ' + ' '.join(overrides) if overrides else ''}, {steps} steps, median of {rounds}:")
    base = statistics.median(r for n, r in runs if n == counts[0])
    for count in counts:
        rate = statistics.median(r for n, r in runs if n == count)
        print(f"  {count} thread(s): {rate:6.0f} steps/s ({rate / base:.2f}x {counts[0]} thread(s))")


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


def stack_rate(
    root: Path,
    overrides: list[str],
    steps: int,
    replicates: int = 1,
    trainer: tuple[str, ...] = ("trainer=cpu",),
) -> tuple[float, float]:
    """Lottery-steps/s (wall, process CPU) of one lth job of K lotteries (K=1: one job, so also K of them
    in sequence): from the end of its first training batch to the end of its last but one (without
    start-up and evaluation; the lotteries' bookkeeping between batches included)."""
    job = build_job(replicate_cfg(root, overrides, steps, replicates, trainer))
    clock = StepClock(now_process)
    job.trainer.callbacks.append(clock)
    with contextlib.redirect_stdout(io.StringIO()):  # its results table
        execute(job)
    (first, start), (last, end) = clock.times[0], clock.times[-2]
    return rates(replicates * (last - first), start, end)


def replicate_table(root: Path, threads: int, sizes: list[int]) -> list[str]:
    """Lottery-steps/s of K stacked replicates against K sequential jobs, for each model, at ``threads``:
    by wall clock and by CPU time of the process (less disturbed by other processes); in brackets the
    ratio to the sequential jobs by CPU time."""
    cpu = ("trainer=cpu", f"trainer.threads={threads}")  # each job applies its trainer.threads
    lines = [
        f"replicates: lottery-steps/s (wall | CPU), Adam, {threads} thread(s), torch {torch.__version__}"
    ]
    lines.append(f"  {'model':<16}{'sequential':>14}" + "".join(f"{f'K={k}':>22}" for k in sizes))
    verdicts = []
    for name, (overrides, steps, lottery_steps) in REPLICATE_MODELS.items():
        sequential = stack_rate(root, overrides, steps, 1, cpu)
        cells = []
        for k in sizes:
            rate = stack_rate(root, overrides, max(60, min(steps, lottery_steps // k)), k, cpu)
            ratio = rate[1] / sequential[1]
            cells.append(f"{rate[0]:6.0f} | {rate[1]:<6.0f}({ratio:4.1f}x)")
            if name == "MNIST-1D MLP" and k == 8:
                ok = "ok" if ratio >= REPLICATE_TARGET else "MISSED"
                target = f"target >= {REPLICATE_TARGET}x: {ok}"
                verdicts.append(f"  K=8 MLP: {ratio:.1f}x 8 sequential jobs by CPU time ({target})")
        lines.append(
            f"  {name:<16}{sequential[0]:6.0f} | {sequential[1]:<6.0f}" + "".join(f"{c:>22}" for c in cells)
        )
    return lines + verdicts


def replicates_main(threads: list[int], sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write_random_mnist(Path(tmp), seed=0)
        for n in threads:
            print("\n".join(replicate_table(Path(tmp), n, sizes)), flush=True)


def synced_now() -> tuple[float, float]:
    """``now_process`` once the GPU has finished what was queued (its steps run asynchronously)."""
    torch.cuda.synchronize()
    return now_process()


def gpu_rate(root: Path, overrides: list[str], steps: int, replicates: int, setting: str) -> float:
    """Lottery-steps/s (wall) on the GPU with ``trainer.cuda_graphs=setting`` of one lth job of K stacked
    replicates (``replicates`` 0: a single job) between its first and last but one training batch
    (evaluation excluded, the lotteries' bookkeeping included)."""
    gpu = ("trainer.accelerator=gpu", f"trainer.cuda_graphs={setting}")
    job = build_job(replicate_cfg(root, overrides, steps, max(replicates, 1), gpu))
    clock = StepClock(synced_now)
    job.trainer.callbacks.append(clock)
    with contextlib.redirect_stdout(io.StringIO()):
        execute(job)
    (first, start), (last, end) = clock.times[0], clock.times[-2]
    return rates(max(replicates, 1) * (last - first), start, end)[0]


def cuda_table(root: Path, sizes: list[int]) -> list[str]:
    """Eager against captured steps on the GPU (lottery-steps/s, wall clock): one lottery (an lth job) and
    K stacked replicates, for each model; then the default job's level on the GPU against one CPU thread."""
    lines = [
        f"CUDA ({torch.cuda.get_device_name()}): lottery-steps/s, eager | captured, Adam, torch {torch.__version__}"
    ]
    lines.append(f"  {'model':<16}{'one job':>22}" + "".join(f"{f'K={k}':>22}" for k in sizes))
    verdicts = []
    for name, (overrides, steps, lottery_steps) in REPLICATE_MODELS.items():
        cells, captured = [], {}
        for k in [0, *sizes]:  # 0: one lth job
            n = 4 * steps if k == 0 else max(400, min(4 * steps, 8 * lottery_steps // k))
            eager, captured[k] = (gpu_rate(root, overrides, n, k, setting) for setting in ("false", "true"))
            cells.append(f"{eager:8.0f} | {captured[k]:<8.0f}")
        lines.append(f"  {name:<16}" + "".join(f"{c:>22}" for c in cells))
        k, target = CUDA_TARGETS[name]
        if k in captured:
            ok = "ok" if captured[k] >= target else "MISSED"
            what = "one job" if k == 0 else f"K={k}"
            verdicts.append(
                f"  {name}, {what} captured: {captured[k]:.0f} lottery-steps/s (target >= {target}: {ok})"
            )
    gpu_level = default_level_seconds(root, ["trainer.accelerator=gpu", "trainer.cuda_graphs=true"])
    cpu_level = default_level_seconds(root, ["trainer=cpu", "trainer.threads=1"])
    ok = "ok" if cpu_level / gpu_level >= LEVEL_TARGET else "MISSED"
    verdicts.append(
        f"  default job's level: {gpu_level:.2f} s on the GPU (captured), {cpu_level:.2f} s on one CPU thread: "
        f"{cpu_level / gpu_level:.1f}x (target >= {LEVEL_TARGET}x: {ok})"
    )
    return lines + verdicts


def default_level_seconds(root: Path, trainer: list[str]) -> float:
    """Wall seconds of the default job's level 1 (``make train``: 2,000 steps and its evaluations)."""
    with contextlib.redirect_stdout(io.StringIO()):
        records = execute(build_job(bench_cfg(root, ["prune.levels=1", *trainer])))
    return float(records[1]["wall_s"])


def cuda_main(sizes: list[int]) -> None:
    if not torch.cuda.is_available():
        print("CUDA table: no CUDA device here (skipped)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        write_random_mnist(Path(tmp), seed=0)
        print("\n".join(cuda_table(Path(tmp), sizes)), flush=True)


SWEEP = ["prune.rate=0.2,0.5", "optim.lr=0.01,0.1", "seed=0,1"]  # the mission's example sweep
SWEEP_TARGET = 2.5  # stacked against unstacked, wall clock, 1 thread


def sweep_main(overrides: list[str]) -> None:
    """Wall seconds of the mission's sweep at the default job, unstacked and ``hydra/sweeper=stacked``,
    each a whole ``python -m lth.train -m`` process at one thread (``logger=none``)."""
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, sweeper in (("unstacked", []), ("stacked", ["hydra/sweeper=stacked"])):
            args = [*sweeper, *SWEEP, "logger=none", "trainer.threads=1", *overrides]
            command = [sys.executable, "-m", "lth.train", "-m", *args, f"hydra.sweep.dir={tmp}/{name}"]
            start = time.perf_counter()
            subprocess.run(command, cwd=tmp, env=env, check=True, capture_output=True)
            times[name] = time.perf_counter() - start
    ratio = times["unstacked"] / times["stacked"]
    ok = "ok" if ratio >= SWEEP_TARGET else "MISSED"
    print(f"sweep -m {' '.join(SWEEP)} (default job, 1 thread, torch {torch.__version__}):")
    print(f"  unstacked {times['unstacked']:.0f} s, stacked {times['stacked']:.0f} s: {ratio:.1f}x")
    print(f"  (target >= {SWEEP_TARGET}x: {ok})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lth.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps per level (default 1000)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="lth + raw rounds; medians are reported (default 3)"
    )
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1], help="torch threads (default 1; --replicates: each)"
    )
    parser.add_argument(
        "--compare-threads",
        type=int,
        nargs="+",
        metavar="N",
        help="time the default job at each of these trainer.threads instead, e.g. 1 2",
    )
    parser.add_argument("--optim", choices=["adam", "sgd"], default="adam")
    parser.add_argument(
        "overrides", nargs="*", help="extra lth config overrides, e.g. trainer.enable_progress_bar=false"
    )
    parser.add_argument(
        "--replicates",
        action="store_true",
        help="instead: lottery-steps/s of K stacked replicates vs K sequential jobs (MLP, LeNet-300-100)",
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1, 8, 64], help="K of --replicates and --cuda"
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="instead: the wall time of the mission's 8-job sweep, unstacked against hydra/sweeper=stacked",
    )
    parser.add_argument(
        "--cuda",
        action="store_true",
        help="instead: eager vs captured steps on the GPU (where one is present)",
    )
    args = parser.parse_args(argv)
    quiet_third_party_noise()
    if args.cuda:
        cuda_main(args.sizes)
        return
    if args.compare_threads:
        compare_threads(args.compare_threads, args.steps, args.rounds, args.overrides)
        return
    if args.replicates:
        replicates_main(args.threads, args.sizes)
        return
    if args.sweep:
        sweep_main(args.overrides)
        return
    torch.set_num_threads(args.threads[0])
    args.overrides = [f"trainer.threads={args.threads[0]}", *args.overrides]
    header = f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), LeNet-300-100, batch 60, {args.optim}"
    with tempfile.TemporaryDirectory() as tmp:
        write_random_mnist(Path(tmp), seed=0)
        rounds = [measure(Path(tmp), args.steps, args.optim, args.overrides) for _ in range(args.rounds)]

    print(header)
    print(f"  {'steps/s (wall | CPU)':<24}{'raw loop':>16}{'lth':>16}{'lth/raw time':>18}")
    for k, r in enumerate(rounds, start=1):
        print(
            f"  round {k:<18}{r.raw[0]:7.0f} | {r.raw[1]:<6.0f}{r.lth[0]:7.0f} | {r.lth[1]:<6.0f}"
            f"{r.ratios[0]:8.2f}x | {r.ratios[1]:.2f}x"
        )
    wall, cpu = (statistics.median(r.ratios[i] for r in rounds) for i in (0, 1))
    verdict = "ok" if cpu <= TARGET_RATIO else "MISSED"
    print(
        f"  median lth / raw time per step: {wall:.2f}x wall, {cpu:.2f}x CPU (target <= {TARGET_RATIO}x: {verdict})"
    )
    fetch = statistics.median(r.fetch_s * r.lth[0] for r in rounds)
    print(
        f"  batch fetch: {1e6 * statistics.median(r.fetch_s for r in rounds):.0f} us = {100 * fetch:.1f}% of an lth step"
    )
    level = statistics.median(r.level_s for r in rounds)
    print(
        f"  one IMP level: {level:.1f} s = {args.steps} steps + eval + prune + rewind "
        f"(50K steps: ~{level * 50000 / args.steps:.0f} s)"
    )


if __name__ == "__main__":
    main()
