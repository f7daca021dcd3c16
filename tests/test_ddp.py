"""DDP on CPU (gloo, 2 processes) in a subprocess: same lottery as one process, rank zero writes alone."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lth.run.job import build_job, execute
from lth.run.job_dir import RunDirectory
from tests.conftest import LTH_TRAIN
from tests.test_replicates import REPLICATES_JOB, assert_same_lottery
from tests.test_resume import assert_same_results, wait_for_new_checkpoint

JOB = [
    "train.steps=30",
    "train.eval_every=10",
    "train.batch_size=64",
    "prune.levels=2",
    "logger=none",
    "trainer.accelerator=cpu",
]


def test_ddp_on_two_cpu_processes_matches_the_single_process_run(lth_cli, tmp_path: Path) -> None:
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    assert lth_cli(*JOB, f"hydra.run.dir={single}").returncode == 0
    proc = lth_cli(*JOB, "trainer=ddp", "trainer.devices=2", "trainer.verbose=true", f"hydra.run.dir={ddp}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Starting with 2 processes" in proc.stderr + proc.stdout
    # rank 0 alone writes the job's files (rank 1 keeps only Hydra's log of its own)
    assert sorted(p.name for p in ddp.glob("*.jsonl")) == ["curves.jsonl", "results.jsonl"]
    assert json.loads((ddp / "DONE").read_text()) == {"status": "complete", "levels": 3}
    one, two = RunDirectory(single), RunDirectory(ddp)
    for a, b in zip(one.read_records(), two.read_records(), strict=True):
        assert b["layers"] == a["layers"] and b["early_stop_step"] == a["early_stop_step"]
        for key in ("test_acc", "test_loss", "val_loss", "train_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-4), key
        masks_a, masks_b = one.load_masks(a["level"]), two.load_masks(a["level"])
        for name, mask in masks_a.items():
            assert (mask == masks_b[name]).float().mean().item() >= 0.999, name


def test_replicates_spread_over_two_cpu_processes_are_the_single_jobs_of_their_seeds(
    lth_cli, make_cfg, tmp_path: Path
) -> None:
    """train.replicates=3 trainer.devices=2: rank 0 trains replicates 0 and 2, rank 1 replicate 1, each
    its own stack with no gradient all-reduce; every replicate's files are its single job's. (K=2 gives
    each rank one replicate: the job's DONE once both are done.)"""
    spread, job = tmp_path / "spread", [*JOB, "optim.lr=0.01"]
    proc = lth_cli(*job, "train.replicates=3", "trainer=ddp", "trainer.devices=2", f"hydra.run.dir={spread}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in proc.stderr + proc.stdout
    assert json.loads((spread / "DONE").read_text())["status"] == "complete"
    assert not list((spread / "checkpoints").rglob("*.ckpt"))
    two = tmp_path / "two"
    proc = lth_cli(*job, "train.replicates=2", "trainer=ddp", "trainer.devices=2", f"hydra.run.dir={two}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((two / "DONE").read_text())["status"] == "complete"
    assert sorted(p.name for p in two.glob("replicate_*")) == ["replicate_0", "replicate_1"]
    for k in range(3):
        single = tmp_path / f"single{k}"
        execute(build_job(make_cfg(*job, f"seed={k}", f"paths.output_dir={single}")))
        assert_same_lottery(spread / f"replicate_{k}", single)


def kill_group(proc: subprocess.Popen[str]) -> bool:
    """SIGKILL ``proc``'s process group (rank 0 and the rank 1 its launcher started) and wait until no
    process of it is left; True if rank 0 was still running."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return proc.returncode == -9
        time.sleep(0.05)
    raise AssertionError(f"a process of group {proc.pid} outlived SIGKILL")


def test_replicates_spread_over_two_cpu_processes_killed_twice_then_rerun_equal_an_uninterrupted_run(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """K=4 over 2 ranks, each rank checkpointing to its own checkpoints/rank_r/: kill -9 both ranks
    just after rank 0's checkpoint, then (rerun, rank 0 resuming) just after rank 1's; a last rerun of the
    same command resumes both, each from its own step, and finishes every replicate as uninterrupted."""
    job = [*REPLICATES_JOB, "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu"]
    env = cli_env | {"OMP_NUM_THREADS": "1"}
    started: list[subprocess.Popen[str]] = []

    def start(run_dir: Path) -> subprocess.Popen[str]:
        """The job in a session of its own (so killpg reaches rank 1), output appended to <run_dir>.log."""
        with open(f"{run_dir}.log", "a") as log:
            args = [*LTH_TRAIN, *job, f"hydra.run.dir={run_dir}"]
            started.append(
                subprocess.Popen(
                    args,
                    cwd=tmp_path,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    text=True,
                    start_new_session=True,
                )
            )
        return started[-1]

    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    ckpts = interrupted / "checkpoints"
    try:
        assert start(reference).wait(timeout=300) == 0
        kills = 0
        for rank in (0, 1):
            proc = start(interrupted)
            assert wait_for_new_checkpoint(proc, ckpts / f"rank_{rank}" / "last.ckpt")
            kills += kill_group(proc)
        assert kills == 2 and not (interrupted / "DONE").exists()
        assert start(interrupted).wait(timeout=300) == 0
    finally:
        for proc in started:  # a hung rerun (ranks out of step) must not outlive the test
            if proc.poll() is None:
                kill_group(proc)
    output = Path(f"{interrupted}.log").read_text()
    for rank in (0, 1):
        assert f"resuming from {ckpts / f'rank_{rank}'}" in output, rank
    assert output.count("resuming from") >= 3  # rank 0 in the first rerun, both ranks in the last
    assert json.loads((interrupted / "DONE").read_text())["status"] == "complete"
    assert not list(ckpts.rglob("*.ckpt"))
    for k in range(4):
        assert_same_results(reference / f"replicate_{k}", interrupted / f"replicate_{k}")
