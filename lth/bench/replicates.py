"""K stacked replicates against K sequential jobs (``python -m lth.bench --replicates``)."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import torch

from lth.bench.common import (
    REPLICATE_MODELS,
    StepClock,
    now_process,
    rates,
    replicate_cfg,
    write_random_mnist,
)
from lth.run.job import build_job, execute

REPLICATE_TARGET = 3.0  # K=8 stacked vs 8 sequential jobs, MNIST-1D MLP, on a 2-core CPU


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
    clock = StepClock(now_process)
    job = build_job(replicate_cfg(root, overrides, steps, replicates, trainer), callbacks=[clock])
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
