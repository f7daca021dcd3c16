"""Running a claim: its sweep as a real ``python -m lth.train -m`` subprocess (the same lth as this one),
then its evaluation; a few claims at a time, each timed from its sweep's start to its verdict."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path

import lth
from lth.claims.spec import Claim, ClaimError, Outcome, Result

COMMON = ("hydra/sweeper=stacked", "logger=none", "trainer.threads=1")


def command(claim: Claim, sweep_dir: Path, quick: bool, seed: int, extra: Sequence[str]) -> list[str]:
    """The sweep's command line: the claim's preset, its seeds and scale, then ``extra`` (``--override``)."""
    return [
        sys.executable,
        "-m",
        "lth.train",
        "-m",
        *COMMON,
        f"experiment={claim.preset}",
        *claim.overrides(quick, seed),
        *extra,
        f"hydra.sweep.dir={sweep_dir}",
    ]


def environment() -> dict[str, str]:
    """This process's environment, with the lth it runs first on the path and one OpenMP thread."""
    root = str(Path(lth.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    return os.environ | {"PYTHONPATH": os.pathsep.join(p for p in (root, path) if p), "OMP_NUM_THREADS": "1"}


def sweep(claim: Claim, out: Path, quick: bool, seed: int, extra: Sequence[str]) -> float:
    """Run the claim's sweep into ``out/<name>`` (its log in ``out/logs/<name>.log``); its wall seconds."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    argv = command(claim, out / claim.name, quick, seed, extra)
    start = time.perf_counter()
    with open(logs / f"{claim.name}.log", "w") as log:
        log.write(" ".join(argv[1:]) + "\n")
        log.flush()
        code = subprocess.run(
            argv, stdout=log, stderr=subprocess.STDOUT, env=environment(), check=False
        ).returncode
    if code != 0:
        raise ClaimError(f"the sweep exited with {code}; see {logs / (claim.name + '.log')}")
    return time.perf_counter() - start


def evaluator(claim: Claim) -> Callable[[Path, bool], Outcome]:
    module, _, function = claim.evaluate.rpartition(".")
    return getattr(importlib.import_module(f"lth.claims.{module}"), function)


def evaluate(claim: Claim, out: Path, quick: bool, seconds: float) -> Result:
    """Read the claim's sweep and draw its figure (``out/<name>.png``)."""
    from lth.claims import plots

    start = time.perf_counter()
    try:
        outcome = evaluator(claim)(out / claim.name, quick)
    except ClaimError as exc:
        return Result(claim, seconds + time.perf_counter() - start, error=str(exc))
    plot = None
    if outcome.figure is not None:
        plot = f"{claim.name}.png"
        plots.save(outcome.figure, out / plot)
        outcome.figure = None
    return Result(claim, seconds + time.perf_counter() - start, outcome, plot=plot)


def run(
    claims: Sequence[Claim], out: Path, quick: bool, seed: int, extra: Sequence[str], jobs: int
) -> Iterator[Result]:
    """Each claim's result as it finishes: up to ``jobs`` sweeps at once, evaluations in this thread."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures: dict[Future[float], Claim] = {
            pool.submit(sweep, claim, out, quick, seed, extra): claim for claim in claims
        }
        started = time.perf_counter()
        for future in as_completed(futures):
            claim = futures[future]
            try:
                seconds = future.result()
            except ClaimError as exc:
                yield Result(claim, time.perf_counter() - started, error=str(exc))
                continue
            yield evaluate(claim, out, quick, seconds)
