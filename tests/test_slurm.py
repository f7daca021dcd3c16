"""A real single-node SLURM (scripts/local-slurm): Hydra's submitit launcher, array jobs, preemption + requeue."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from lth.run.job_dir import RunDirectory
from tests.conftest import LTH_TRAIN, ROOT
from tests.test_resume import assert_same_results, wait_for_new_checkpoint

SLURM = ["hydra/launcher=slurm", "hydra.launcher.mem_gb=1", "hydra.launcher.cpus_per_task=1"]


def slurm_is_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30).stdout
    return any(state in states for state in ("idle", "mixed", "allocated"))


@pytest.fixture(scope="module")
def slurm() -> None:
    if slurm_is_up():
        return
    if os.geteuid() != 0:
        pytest.skip("no SLURM running and scripts/local-slurm needs root to start one")
    started = subprocess.run(
        [ROOT / "scripts" / "local-slurm", "up"], capture_output=True, text=True, timeout=300
    )
    if started.returncode != 0 or not slurm_is_up():
        pytest.skip(f"scripts/local-slurm could not start SLURM: {started.stderr.strip()[-500:]}")


def test_a_two_job_multirun_runs_as_a_slurm_array(slurm, lth_cli, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = lth_cli(
        "-m",
        *SLURM,
        "prune.rate=0.2,0.5",
        "train.steps=20",
        "train.eval_every=10",
        "prune.levels=1",
        "logger=none",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    tasks = sorted(p.name for p in (sweep / ".submitit").glob("[0-9]*_*"))  # <array id>_<task>/ per job
    array_id = tasks[0].split("_")[0]
    assert tasks == [f"{array_id}_0", f"{array_id}_1"]
    assert all((sweep / ".submitit" / t / f"{t}_0_log.out").exists() for t in tasks)
    for num, rate in ((0, 0.2), (1, 0.5)):
        (job,) = sweep.glob(f"{num}_*")
        assert json.loads((job / "DONE").read_text()) == {"status": "complete", "levels": 2}
        records = RunDirectory(job).read_records()
        assert records[1]["layers"]["fc1.weight"] == pytest.approx(1 - rate, abs=1e-3)


def test_a_stacked_sweep_submits_one_slurm_task_per_stack(slurm, lth_cli, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    grid = ["train.batch_size=32,64", "prune.rate=0.2,0.5"]
    job = ["train.steps=20", "train.eval_every=10", "prune.levels=1", "logger=none"]
    proc = lth_cli("-m", "hydra/sweeper=stacked", *SLURM, *grid, *job, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "lth: 4 jobs in 2 stacks (they differ in train.batch_size)" in proc.stdout
    tasks = sorted(p.name for p in (sweep / ".submitit").glob("[0-9]*_*"))
    array_id = tasks[0].split("_")[0]
    assert tasks == [f"{array_id}_0", f"{array_id}_1"]  # one task per stack, not per lottery
    for num, rate in enumerate((0.2, 0.5, 0.2, 0.5)):
        (member,) = sweep.glob(f"{num}_*")
        assert json.loads((member / "DONE").read_text()) == {"status": "complete", "levels": 2}
        assert RunDirectory(member).read_records()[1]["layers"]["fc1.weight"] == pytest.approx(
            1 - rate, abs=1e-3
        )


def test_a_preempted_job_is_requeued_and_resumes_where_it_stopped(
    slurm, lth_cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    job = [
        "train.steps=300",
        "train.eval_every=50",
        "train.checkpoint_every=20",
        "prune.levels=2",
        "logger=none",
    ]
    env = cli_env | {"OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    ran = subprocess.run(
        [*LTH_TRAIN, *job, f"hydra.run.dir={reference}"], cwd=tmp_path, env=env, capture_output=True
    )
    assert ran.returncode == 0
    sweep = tmp_path / "sweep"
    with open(tmp_path / "sweep.log", "w") as log:
        proc = subprocess.Popen(
            [*LTH_TRAIN, "-m", *SLURM, *job, f"hydra.sweep.dir={sweep}"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    job_id = None
    try:
        deadline = time.monotonic() + 120
        run_dir = sweep / "0"  # a sweep of one job varies no key: its directory is its number
        while not (run_dir / "checkpoints").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert wait_for_new_checkpoint(proc, run_dir / "checkpoints" / "last.ckpt")
        (job_id,) = (p.name for p in (sweep / ".submitit").glob("[0-9]*"))
        preempt(job_id)
        assert proc.wait(timeout=300) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            subprocess.run(["scancel", job_id or "0"], check=False)
    submitit_log = (sweep / ".submitit" / job_id / f"{job_id}_0_log.out").read_text()
    assert "this job is preempted" in submitit_log and "Requeued job" in submitit_log
    assert "lth: resuming from" in (run_dir / "train.log").read_text()
    assert json.loads((run_dir / "DONE").read_text()) == {"status": "complete", "levels": 3}
    assert_same_results(reference, run_dir)


def preempt(job_id: str) -> None:
    """Send what SLURM sends before preempting, wait for the requeue, and let the job start again at once."""
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    deadline = time.monotonic() + 60
    while (
        "JobState=PENDING"
        not in subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    ):
        assert time.monotonic() < deadline, "the job was not requeued"
        time.sleep(0.2)
    # slurmd refuses a credential issued in the same second as the revocation of the killed run's
    # ("Job credential revoked"): start the job again at once, but in a later second
    time.sleep(2)
    subprocess.run(
        ["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True
    )  # skip the requeue delay
