"""Eager against captured steps on the GPU (``python -m lth.bench --cuda``), and the default job's level
on the GPU against one CPU thread."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import torch

from lth.bench.common import (
    REPLICATE_MODELS,
    StepClock,
    bench_cfg,
    now_process,
    rates,
    replicate_cfg,
    write_random_mnist,
)
from lth.run.job import build_job, execute

CUDA_TARGETS = {"MNIST-1D MLP": (0, 3000), "LeNet-300-100": (64, 50000)}  # (K, lottery-steps/s); K=0: one job
LEVEL_TARGET = 5.0  # the default job's level on the GPU against one CPU thread


def synced_now() -> tuple[float, float]:
    """``now_process`` once the GPU has finished what was queued (its steps run asynchronously)."""
    torch.cuda.synchronize()
    return now_process()


def gpu_rate(root: Path, overrides: list[str], steps: int, replicates: int, setting: str) -> float:
    """Lottery-steps/s (wall) on the GPU with ``trainer.cuda_graphs=setting`` of one lth job of K stacked
    replicates (``replicates`` 0: a single job) between its first and last but one training batch
    (evaluation excluded, the lotteries' bookkeeping included)."""
    gpu = ("trainer.accelerator=gpu", f"trainer.cuda_graphs={setting}")
    clock = StepClock(synced_now)
    job = build_job(replicate_cfg(root, overrides, steps, max(replicates, 1), gpu), callbacks=[clock])
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
