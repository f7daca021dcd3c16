"""W&B as a user gets it: real offline runs read back from their ``.wandb`` files, and the fallbacks."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import wandb
from omegaconf import OmegaConf
from wandb_reader import OfflineRun, read_run

from lth.analysis.suite import flatten
from lth.lottery.record import SCALAR_FIELDS
from lth.report import report
from lth.run.job import build_job, execute, run
from lth.run.loggers import LotteryWandbLogger
from lth.run.provenance import run_config
from tests.conftest import Crash, CrashAt

FAST = ["train.steps=20", "train.eval_every=10", "train.batch_size=64", "prune.levels=2"]


def read_records(job: Path) -> list[dict]:
    return [json.loads(line) for line in (job / "results.jsonl").read_text().splitlines()]


def offline_run(job: Path) -> tuple[Path, OfflineRun]:
    (run_dir,) = (job / "wandb").glob("offline-run-*")
    (log,) = run_dir.glob("run-*.wandb")
    return run_dir, read_run(log)


def assert_run_matches_results(job: Path, run_dir: Path, run: OfflineRun) -> None:
    records = read_records(job)
    # the resolved config, as written beside the results, and the provenance of meta.json under meta/
    config = {k: v for k, v in run.config.items() if k != "_wandb" and not k.startswith("meta/")}
    assert config == OmegaConf.to_container(OmegaConf.load(job / "config.yaml"))
    meta = {k: v for k, v in run.config.items() if k.startswith("meta/")}
    assert meta == run_config(json.loads((job / "meta.json").read_text()))
    assert meta["meta/versions/wandb"] == wandb.__version__ and meta["meta/wall_s"] > 0
    # one history row per level on the level axis, equal to results.jsonl
    levels = [row for row in run.history if "level/level" in row]
    assert len(levels) == len(records)
    for row, record in zip(levels, records, strict=True):
        for key, value in record.items():
            if key == "layers":
                assert {k: row[f"level/layers/{k}"] for k in value} == value
            elif key == "analysis":
                numbers = flatten(value, sep="/")
                assert {k: row[f"level/analysis/{k}"] for k in numbers} == numbers
            elif key not in ("status", "ticket_source"):  # the level rows hold its numbers
                assert row[f"level/{key}"] == value, key
    # per-step curves: every evaluation, the level's last one equal to its record
    evals = [row for row in run.history if "val/loss" in row]
    assert len(evals) == len(records) * 2  # steps 10 and 20 of each level
    for record in records:
        (last,) = [r for r in evals if r["trainer/global_step"] == (record["level"] + 1) * 20]
        assert (last["val/loss"], last["test/acc"]) == (record["val_loss"], record["test_acc"])
        assert last["level"] == record["level"]
    # summary = the last level
    for key in ("level", "weights_remaining", "test_acc", "early_stop_step", "test_acc_at_early_stop"):
        assert run.summary[f"level/{key}"] == records[-1][key]
    # the results table
    table = json.loads((run_dir / "files" / run.summary["results/path"]).read_text())
    column = {name: i for i, name in enumerate(table["columns"])}
    assert table["columns"] == [*SCALAR_FIELDS, *(f"layers/{name}" for name in records[0]["layers"])]
    assert len(table["data"]) == len(records)
    for row, record in zip(table["data"], records, strict=True):
        assert row[column["test_acc"]] == record["test_acc"]
        assert row[column["weights_remaining"]] == record["weights_remaining"]
        assert row[column["status"]] == record["status"]
        assert row[column["layers/fc1.weight"]] == record["layers"]["fc1.weight"]


def ticket_files(run: OfflineRun, level: int) -> dict[str, dict[str, torch.Tensor]]:
    """The files of the ticket artifact version ``level-<level>``, loaded."""
    (ticket,) = [a for a in run.artifacts if a.type == "ticket" and f"level-{level}" in a.aliases]
    return {e.path: torch.load(e.local_path, weights_only=True) for e in ticket.manifest.contents}


def test_a_multirun_is_one_wandb_run_per_job_in_one_group_and_a_failing_job_falls_back_to_csv(
    lth_cli, tmp_path: Path
) -> None:
    """Job 1 sets ``logger.offline=false`` without credentials: its wandb.init raises; it logs to CSV,
    and job 2, in the same process after it, is a W&B run as usual."""
    sweep = tmp_path / "sweep"
    proc = lth_cli(
        "-m", "logger.offline=auto,false,true", *FAST, "logger.tags=[imp,smoke]", "logger.log_tickets=true",
        f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if (p / "results.jsonl").exists())
    assert [json.loads((j / "DONE").read_text())["status"] for j in jobs] == ["complete"] * 3
    # the failing job: one warning line, CSV with the level metrics, no W&B run
    warnings = [line for line in proc.stdout.splitlines() if "W&B failed" in line]
    assert len(warnings) == 1 and "API key" in warnings[0], proc.stdout[-3000:]
    with (jobs[1] / "csv" / "metrics.csv").open() as f:
        levels = [row for row in csv.DictReader(f) if row["level/test_acc"]]
    assert [float(row["level/test_acc"]) for row in levels] == [r["test_acc"] for r in read_records(jobs[1])]
    assert not list(jobs[1].rglob("*.wandb"))
    # the two W&B runs
    runs = []
    for job in (jobs[0], jobs[2]):
        run_dir, run = offline_run(job)
        runs.append(run)
        assert run.run.display_name == job.name  # the job's directory: <num>_logger.offline=<value>
        assert run.run.job_type == "lottery"
        assert list(run.run.tags) == ["imp", "smoke"]
        assert_run_matches_results(job, run_dir, run)
        assert f"wandb sync {run_dir}" in proc.stdout
        # tickets: the masks level L trains with and the weights it starts from
        masks = torch.load(job / "levels" / "level_02" / "masks.pt", weights_only=True)
        dense, pruned = ticket_files(run, 0), ticket_files(run, 2)
        for name, mask in masks.items():
            assert torch.equal(pruned["masks.pt"][name], mask) and bool(dense["masks.pt"][name].all())
            # winning ticket: the survivors restart from theta_0
            assert torch.equal(pruned["weights.pt"][name], dense["weights.pt"][name] * mask)
        assert torch.equal(pruned["weights.pt"]["fc1.bias"], dense["weights.pt"]["fc1.bias"])
    assert runs[0].run.run_id != runs[1].run.run_id
    assert runs[0].run.run_group == runs[1].run.run_group == str(sweep)
    # the console: a progress bar per level, and the results table of each job
    assert "level 2/2, weights 65.1%" in proc.stdout
    assert proc.stdout.count("early-stop iter") == 3


def test_a_single_run_is_grouped_by_its_run_dir_and_typed_by_its_experiment(lth_cli, tmp_path: Path) -> None:
    """An ``experiment=`` preset (here a user's, on Hydra's search path) is the run's job type."""
    presets = tmp_path / "presets" / "experiment"
    presets.mkdir(parents=True)
    (presets / "tiny_imp.yaml").write_text("# @package _global_\nprune:\n  levels: 1\n")
    run_dir = tmp_path / "run"
    overrides = ["experiment=tiny_imp", *FAST[:3]]
    proc = lth_cli(*overrides, f"hydra.searchpath=[file://{presets.parent}]", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    wandb_dir, run = offline_run(run_dir)
    assert run.run.run_group == str(run_dir)
    assert run.run.job_type == "tiny_imp"
    assert run.run.display_name == ",".join(sorted(overrides))
    assert len(read_records(run_dir)) == 2  # the preset's prune.levels=1
    assert_run_matches_results(run_dir, wandb_dir, run)
    # the report of the run, from its files alone
    with (report(run_dir) / "summary.csv").open() as f:
        summary = list(csv.DictReader(f))
    assert [float(row["test_acc_mean"]) for row in summary] == [
        round(r["test_acc"], 4) for r in read_records(run_dir)
    ]


class FinishWandbAt(pl.Callback):
    """Another library closing the global W&B run mid-training."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            wandb.finish()


def test_wandb_failing_mid_training_never_stops_the_job(
    make_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")  # restored after the test (WandbLogger sets it)
    job = build_job(make_cfg("logger=wandb", "logger.offline=true"))
    assert isinstance(job.trainer.logger, LotteryWandbLogger)
    job.trainer.callbacks.append(FinishWandbAt(step=50))  # mid level 1 (levels end at steps 30, 60, 90)
    with caplog.at_level(logging.WARNING, logger="lth"):
        records = execute(job)
    assert [r["level"] for r in records] == [0, 1, 2]
    assert json.loads((tmp_path / "run" / "DONE").read_text())["status"] == "complete"
    failures = [r.getMessage() for r in caplog.records if "W&B failed" in r.getMessage()]
    assert len(failures) == 1 and "is finished" in failures[0], failures
    _, run = offline_run(tmp_path / "run")
    assert [row["level/level"] for row in run.history if "level/level" in row] == [0]


@pytest.mark.parametrize("replicates", [1, 2])
def test_a_rerun_of_a_crashed_job_continues_its_wandb_run(
    make_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replicates: int
) -> None:
    """A job's W&B run, or each replicate's."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = make_cfg(
        "logger=wandb", "logger.offline=true", "train.checkpoint_every=10", f"train.replicates={replicates}"
    )
    job = build_job(cfg)
    job.trainer.callbacks.append(CrashAt(45))  # mid level 1, resumed from the checkpoint at step 40
    with pytest.raises(Crash):
        execute(job)
    if replicates == 1:
        jobs, results = [tmp_path / "run"], [run(cfg)]
    else:
        jobs, results = [tmp_path / "run" / f"replicate_{k}" for k in range(replicates)], run(cfg)
    for job_dir, records in zip(jobs, results, strict=True):
        logs = sorted(
            (job_dir / "wandb").glob("offline-run-*/run-*.wandb"), key=lambda p: p.stat().st_mtime_ns
        )
        crashed, resumed = (read_run(log) for log in logs)
        assert crashed.run.run_id == resumed.run.run_id
        assert (crashed.exit_code, resumed.exit_code) == (1, 0)
        levels = [[row for row in r.history if "level/level" in row] for r in (crashed, resumed)]
        assert [[row["level/level"] for row in rows] for rows in levels] == [[0], [1, 2]]
        assert [row["level/test_acc"] for row in levels[0] + levels[1]] == [r["test_acc"] for r in records]
        evals = [row for r in (crashed, resumed) for row in r.history if "val/loss" in row]
        # every evaluation once: 10-40 before the crash, 50-90 after
        assert [row["trainer/global_step"] for row in evals] == list(range(10, 91, 10))
        assert "results/path" not in crashed.summary and "results/path" in resumed.summary


def test_each_replicate_is_the_wandb_run_of_its_seed_and_a_failing_job_warns_once(
    lth_cli, tmp_path: Path
) -> None:
    """``train.replicates=2`` with the default logger: replicate k is the run the job with seed k would
    be (named ``<job>/replicate_k``, in the sweep's group); a job whose W&B fails to start warns once and
    every replicate logs to CSV."""
    sweep = tmp_path / "sweep"
    proc = lth_cli(
        "-m", "logger.offline=auto,false", "train.replicates=2", *FAST, "logger.log_tickets=true",
        f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    wandb_job, csv_job = sorted(p for p in sweep.iterdir() if (p / "config.yaml").exists())
    runs = []
    for k in range(2):
        job = wandb_job / f"replicate_{k}"
        run_dir, run = offline_run(job)
        runs.append(run)
        assert run.run.display_name == f"{wandb_job.name}/replicate_{k}"
        assert run.run.run_group == str(sweep) and run.config["seed"] == k
        assert_run_matches_results(job, run_dir, run)
        masks = torch.load(job / "levels" / "level_02" / "masks.pt", weights_only=True)
        assert all(torch.equal(ticket_files(run, 2)["masks.pt"][n], m) for n, m in masks.items())
    assert runs[0].run.run_id != runs[1].run.run_id
    (sync,) = [line for line in proc.stdout.splitlines() if "wandb sync" in line]  # one line for the job
    assert "W&B 2 runs saved offline" in sync and sync.count("/replicate_") == 2
    warnings = [line for line in proc.stdout.splitlines() if "W&B failed" in line]
    assert len(warnings) == 1 and "API key" in warnings[0], proc.stdout[-3000:]
    for k in range(2):
        job = csv_job / f"replicate_{k}"
        with (job / "csv" / "metrics.csv").open() as f:
            levels = [row for row in csv.DictReader(f) if row["level/test_acc"]]
        assert [float(row["level/test_acc"]) for row in levels] == [r["test_acc"] for r in read_records(job)]
    assert not list(csv_job.rglob("*.wandb"))
