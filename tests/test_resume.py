"""Reruns resume: killed jobs continue bit-for-bit, corrupt checkpoints are skipped, finished jobs are not rerun."""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from lth.errors import ConfigError
from lth.run.job import run
from lth.run.job_dir import RunDirectory
from tests.conftest import LTH_TRAIN

# 3 levels x 150 steps; checkpoints every 7 steps, deliberately out of step with evaluation every 10
JOB = [
    "train.steps=150",
    "train.eval_every=10",
    "train.checkpoint_every=7",
    "train.batch_size=32",
    "prune.levels=2",
    "init=rewind",
    "init.rewind_step=15",
    "logger=none",
]


def comparable(run_dir: Path) -> tuple[list[dict], list[dict[str, torch.Tensor]]]:
    records = [{k: v for k, v in r.items() if k != "wall_s"} for r in RunDirectory(run_dir).read_records()]
    masks = [RunDirectory(run_dir).load_masks(r["level"]) for r in records]
    return records, masks


def assert_same_results(a: Path, b: Path) -> None:
    (records_a, masks_a), (records_b, masks_b) = comparable(a), comparable(b)
    assert records_a == records_b
    assert all(torch.equal(x[n], y[n]) for x, y in zip(masks_a, masks_b, strict=True) for n in x)


@pytest.fixture
def start(tmp_path: Path, cli_env: dict[str, str]) -> Callable[[Path], subprocess.Popen[str]]:
    env = cli_env | {"OMP_NUM_THREADS": "1"}

    def popen(run_dir: Path) -> subprocess.Popen[str]:
        """Start the job; its console output goes to ``<run_dir>.log`` (appended across reruns)."""
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{run_dir}.log", "a") as log:
            args = [*LTH_TRAIN, *JOB, f"hydra.run.dir={run_dir}"]
            return subprocess.Popen(
                args, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
            )

    return popen


def wait_for_new_checkpoint(proc: subprocess.Popen[str], ckpt: Path) -> bool:
    """Block until ``ckpt`` is (re)written; False if ``proc`` ended first."""
    before = ckpt.stat().st_mtime_ns if ckpt.exists() else 0
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if ckpt.exists() and ckpt.stat().st_mtime_ns != before:
            return True
        time.sleep(0.005)
    return False


def kill(proc: subprocess.Popen[str]) -> bool:
    """SIGKILL ``proc``; True if it was still running."""
    proc.kill()
    proc.wait()
    return proc.returncode == -9


def kill_twice(
    start: Callable[[], subprocess.Popen[str]], checkpoint: Callable[[subprocess.Popen[str]], Path]
) -> int:
    """Start the run and kill -9 it once it has written a new ``checkpoint(proc)``, until it was killed
    while running twice (at most 4 starts); the number of such kills."""
    kills = 0
    for _ in range(4):
        proc = start()
        wait_for_new_checkpoint(proc, checkpoint(proc))
        kills += kill(proc)
        if kills == 2:
            break
    return kills


def test_kill_9_at_random_points_then_rerun_equals_an_uninterrupted_run(start, tmp_path: Path) -> None:
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    assert start(reference).wait() == 0
    rng, kills = random.Random(0), 0
    for _ in range(4):
        if (interrupted / "DONE").exists():
            break
        proc = start(interrupted)
        if wait_for_new_checkpoint(proc, interrupted / "checkpoints" / "last.ckpt"):
            time.sleep(rng.uniform(0.0, 0.15))
        kills += kill(proc)
    assert kills >= 2  # the job really was killed mid-run, more than once
    final = start(interrupted)
    assert final.wait(timeout=300) == 0
    output = Path(f"{interrupted}.log").read_text()
    assert output.count("resuming from") >= kills
    assert json.loads((interrupted / "DONE").read_text()) == {"status": "complete", "levels": 3}
    assert not list((interrupted / "checkpoints").glob("*.ckpt"))  # removed once finished
    assert_same_results(reference, interrupted)


def test_a_truncated_checkpoint_is_reported_and_the_previous_one_used(start, tmp_path: Path) -> None:
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    assert start(reference).wait() == 0
    ckpts = interrupted / "checkpoints"
    proc = start(interrupted)
    for _ in range(3):  # a few checkpoints, so both last.ckpt and prev.ckpt exist
        assert wait_for_new_checkpoint(proc, ckpts / "last.ckpt")
    assert kill(proc)
    assert (ckpts / "prev.ckpt").exists() and not (interrupted / "DONE").exists()
    last = ckpts / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    final = start(interrupted)
    assert final.wait(timeout=300) == 0
    output = Path(f"{interrupted}.log").read_text()
    assert "last.ckpt is unreadable" in output and f"resuming from {ckpts / 'prev.ckpt'}" in output
    assert_same_results(reference, interrupted)


def test_a_finished_job_is_not_run_again(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg()
    records = run(cfg)
    results = Path(cfg.paths.output_dir) / "results.jsonl"
    stamp = results.stat().st_mtime_ns
    assert run(cfg) == records
    assert results.stat().st_mtime_ns == stamp


def test_a_directory_holding_another_config_is_refused(make_cfg: Callable[..., DictConfig]) -> None:
    run(make_cfg())
    with pytest.raises(ConfigError, match="holds a job with another config"):
        run(make_cfg("optim.lr=0.05"))


def test_a_diverging_job_stops_with_its_own_status_and_the_sweep_goes_on(lth_cli, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = lth_cli(
        "-m",
        "optim.lr=0.05,1e6",
        "train.steps=30",
        "train.eval_every=10",
        "prune.levels=2",
        "logger=none",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (fine,) = sweep.glob("0_*")
    (diverged,) = sweep.glob("1_*")
    assert [r["status"] for r in RunDirectory(fine).read_records()] == ["ok", "ok", "ok"]
    records = RunDirectory(diverged).read_records()
    assert records[-1]["status"] == "diverged" and records[-1]["level"] == 0 and records[-1]["steps"] == 10
    assert json.loads((diverged / "DONE").read_text()) == {"status": "diverged", "levels": 1}
