"""The default job (``make train``) at each ``trainer.threads`` (``python -m lth.bench --compare-threads``)."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from lth.bench.common import StepClock, bench_cfg
from lth.run.job import build_job, execute


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
    clock = StepClock()
    job = build_job(bench_cfg(root, overrides, out), callbacks=[clock])
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
