"""The mission's sweep unstacked against ``hydra/sweeper=stacked`` (``python -m lth.bench --sweep``)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

SWEEP = ["prune.rate=0.2,0.5", "optim.lr=0.01,0.1", "seed=0,1"]  # the mission's example sweep
SWEEP_TARGET = 2.5  # stacked against unstacked, wall clock, 1 thread


def sweep_main(overrides: list[str], rounds: int = 1) -> None:
    """Wall seconds of the mission's sweep at the default job, unstacked and ``hydra/sweeper=stacked``,
    each a whole ``python -m lth.train -m`` process at one thread (``logger=none``); ``rounds`` times,
    alternating (this machine's speed drifts by 10-20% between minutes: compare within a round)."""
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    print(f"sweep -m {' '.join(SWEEP)} (default job, 1 thread, torch {torch.__version__}):")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(rounds):
            times = {}
            for name, sweeper in (("unstacked", []), ("stacked", ["hydra/sweeper=stacked"])):
                args = [*sweeper, *SWEEP, "logger=none", "trainer.threads=1", *overrides]
                sweep_dir = f"{tmp}/{name}_{round_}"
                command = [sys.executable, "-m", "lth.train", "-m", *args, f"hydra.sweep.dir={sweep_dir}"]
                start = time.perf_counter()
                subprocess.run(command, cwd=tmp, env=env, check=True, capture_output=True)
                times[name] = time.perf_counter() - start
            ratios.append(times["unstacked"] / times["stacked"])
            print(
                f"  unstacked {times['unstacked']:.0f} s, stacked {times['stacked']:.0f} s: {ratios[-1]:.2f}x"
            )
    ratio = statistics.median(ratios)
    ok = "ok" if ratio >= SWEEP_TARGET else "MISSED"
    which = f"median of {rounds} rounds" if rounds > 1 else "one round"
    print(f"  ({which} {ratio:.2f}x; target >= {SWEEP_TARGET}x: {ok})")
