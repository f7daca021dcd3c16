"""hydra/launcher=local_parallel: a 4-job sweep in 2 worker processes, one job or one stack
(hydra/sweeper=stacked) each, gives the basic launcher's results.

Whether two jobs overlap in time is not asserted: under load one worker can finish these tiny jobs
before the other has started."""

from __future__ import annotations

import json
from pathlib import Path

JOB = ["train.steps=30", "train.eval_every=10", "train.batch_size=64", "prune.levels=2", "logger=none"]
SWEEP = ["-m", "seed=0,1", "optim.lr=0.01,0.1"]


def results(sweep: Path) -> dict[str, list[dict]]:
    """Every job's records by its overrides (the job directory's name without its number)."""
    return {
        job.name.split("_", 1)[1]: [
            json.loads(line) for line in (job / "results.jsonl").read_text().splitlines()
        ]
        for job in sweep.iterdir()
        if job.is_dir() and not job.name.startswith(".")
    }


def assert_same_results(got: dict[str, list[dict]], want: dict[str, list[dict]]) -> None:
    assert sorted(got) == sorted(want) and len(got) == 4
    for name, records in want.items():
        assert [r["level"] for r in got[name]] == [0, 1, 2]
        for a, b in zip(got[name], records, strict=True):
            assert (a["test_acc"], a["val_loss"], a["layers"]) == (b["test_acc"], b["val_loss"], b["layers"])


def test_local_parallel_sweep_matches_the_basic_launcher(lth_cli, tmp_path: Path) -> None:
    parallel, basic = tmp_path / "parallel", tmp_path / "basic"
    proc = lth_cli(
        *SWEEP,
        *JOB,
        "hydra/launcher=local_parallel",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={parallel}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2," in proc.stdout + proc.stderr
    jobs = sorted(p for p in parallel.iterdir() if p.is_dir())
    assert len(jobs) == 4
    for job in jobs:
        assert json.loads((job / "DONE").read_text()) == {"status": "complete", "levels": 3}
        # in its worker, the job resolved its threads knowing that 2 jobs share the CPUs
        assert "1 local rank(s), 2 parallel job(s)" in (job / "train.log").read_text()

    assert lth_cli(*SWEEP, *JOB, f"hydra.sweep.dir={basic}").returncode == 0
    assert_same_results(results(parallel), results(basic))

    stacked = tmp_path / "stacked"  # two stacks of two lotteries, one in each worker
    proc = lth_cli(
        *SWEEP,
        *JOB,
        "hydra/sweeper=stacked",
        "hydra.sweeper.max_stack=2",
        "hydra/launcher=local_parallel",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={stacked}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        "lth: 4 jobs in 2 stacks" in proc.stdout and "Joblib.Parallel(n_jobs=2," in proc.stdout + proc.stderr
    )
    assert len([p for p in (stacked / ".stacks").iterdir() if p.is_dir()]) == 2
    assert_same_results(results(stacked), results(basic))
