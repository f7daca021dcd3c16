"""Training batches as runs of plain optimizer steps: where runs end, and equality with Lightning's
one-step-per-batch path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from lth.run.job import build_job, execute
from lth.run.job_dir import RunDirectory


class BatchEnds(pl.Callback):
    """The global step at the end of every training batch."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        self.steps.append(trainer.global_step)


class OneStepPerBatch(pl.Callback):
    """Sends every step through Lightning's manual_backward and optimizer wrapper, one per batch
    (the path DDP and mixed precision take)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.plain_steps = False


def test_a_batch_runs_the_steps_up_to_the_next_evaluation_checkpoint_snapshot_or_level_end(
    make_cfg: Callable[..., DictConfig],
) -> None:
    job = build_job(make_cfg("train.checkpoint_every=7", "init=rewind", "init.rewind_step=3"))
    ends = BatchEnds()
    job.trainer.callbacks.append(ends)
    execute(job)
    level_0 = [3, 7, 10, 14, 20, 21, 28, 30]  # snapshot 3, checkpoints every 7, evaluations every 10
    level_1 = [35, 40, 42, 49, 50, 56, 60]  # evaluations at 10, 20, 30 steps into the level
    level_2 = [63, 70, 77, 80, 84, 90]
    assert ends.steps == level_0 + level_1 + level_2


def test_long_runs_stop_at_twenty_steps(make_cfg: Callable[..., DictConfig]) -> None:
    job = build_job(make_cfg("train.eval_every=30", "prune.levels=0"))
    ends = BatchEnds()
    job.trainer.callbacks.append(ends)
    execute(job)
    assert ends.steps == [20, 30]


def test_runs_of_plain_steps_equal_lightnings_one_step_per_batch(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    results = {}
    for name, extra in (("runs", []), ("lightning", [OneStepPerBatch()])):
        cfg = make_cfg("optim=adam", "optim.lr=0.01", f"paths.output_dir={tmp_path / name}")
        job = build_job(cfg)
        ends = BatchEnds()
        job.trainer.callbacks.extend([ends, *extra])
        records = execute(job)
        results[name] = (records, RunDirectory(cfg.paths.output_dir), ends.steps)
    (runs, runs_dir, runs_ends), (lightning, lightning_dir, lightning_ends) = results.values()
    assert runs_ends == list(range(10, 91, 10)) and lightning_ends == list(range(1, 91))
    for a, b in zip(runs, lightning, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)  # summed in another order
        drop = {"wall_s", "train_loss"}
        assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}
        masks_a, masks_b = runs_dir.load_masks(a["level"]), lightning_dir.load_masks(b["level"])
        assert all(torch.equal(masks_a[n], masks_b[n]) for n in masks_a)


def test_mixed_precision_takes_one_lightning_step_per_batch(make_cfg: Callable[..., DictConfig]) -> None:
    job = build_job(make_cfg("trainer.precision=bf16-mixed", "prune.levels=1", "optim.lr=0.1"))
    ends = BatchEnds()
    job.trainer.callbacks.append(ends)
    records = execute(job)
    assert not job.module.plain_steps and ends.steps == list(range(1, 61))
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert records[1]["weights_remaining"] == pytest.approx(0.8, abs=0.01)
    assert records[0]["test_acc"] > 0.2  # MNIST-1D, 10 classes: trained under autocast
