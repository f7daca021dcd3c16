"""Training budgets: forward cost of masked networks, Scratch-B level lengths, their LR schedule and resume."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig
from torch import nn

from lth.lottery.budget import Budget, ForwardCost
from lth.run.job import build_job, execute, run
from lth.run.job_dir import RunDirectory
from tests.conftest import Crash, CrashAt, LearningRates
from tests.test_resume import assert_same_results


def test_forward_cost_counts_live_weights_at_every_output_position() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(64, 10)
    )
    cost = ForwardCost(model, (1, 8, 8))
    assert cost.positions == {"0.weight": 16, "3.weight": 1}  # 4x4 output positions, one for the Linear
    assert cost.dense == 36 * 16 + 640
    conv = torch.zeros(4, 1, 3, 3, dtype=torch.bool)
    conv[:2] = True  # 18 live conv weights
    linear = torch.rand(10, 64, generator=torch.Generator().manual_seed(0)) < 0.3
    assert cost({"0.weight": conv, "3.weight": linear}) == 18 * 16 + int(linear.sum())
    assert cost({"3.weight": linear}) == 36 * 16 + int(linear.sum())  # unmasked tensors count dense
    assert model.training and torch.equal(model[1].running_mean, torch.zeros(4))  # stats untouched


@pytest.mark.parametrize(
    ("budget", "cost", "steps"),
    [
        (Budget(100), 10, 100),
        (Budget(100, "flops"), 1000, 100),
        (Budget(100, "flops"), 800, 125),
        (Budget(100, "flops"), 500, 200),
        (Budget(100, "flops"), 100, 200),  # 10x cheaper, capped at 2x the steps
        (Budget(100, "flops", cap=20), 100, 1000),
    ],
)
def test_flops_budget_scales_steps_by_the_cost_saved_up_to_the_cap(
    budget: Budget, cost: int, steps: int
) -> None:
    assert budget.level_steps(cost, 1000) == steps


def test_max_steps_bounds_every_level() -> None:
    assert Budget(100).max_steps(2) == 300
    assert Budget(100, "flops", cap=1.5).max_steps(2) == 450


def test_scratch_b_trains_each_level_for_the_dense_networks_compute(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg(
        "init=scratch", "train.budget=flops", "prune.rate=0.3", "optim.schedule=linear", "optim.lr=0.1"
    )
    job = build_job(cfg)
    lrs = LearningRates()
    job.trainer.callbacks.append(lrs)
    records = execute(job)
    run_dir = RunDirectory(cfg.paths.output_dir)
    live = [sum(int(m.sum()) for m in run_dir.load_masks(r["level"]).values()) for r in records]
    dense = live[0]
    # the MLP is all Linear layers, all prunable: its forward cost is its live weight count
    assert [r["forward_macs"] for r in records] == live
    expected = [round(30 * min(2.0, dense / n)) for n in live]
    assert expected[0] == 30 and 30 < expected[1] < expected[2] <= 60
    assert [r["steps"] for r in records] == expected
    assert job.trainer.global_step == sum(expected)
    # each level replays the linear schedule over its own length
    assert lrs.lrs == pytest.approx([0.1 * (1 - t / n) for n in expected for t in range(n)])


def test_steps_budget_keeps_every_level_at_train_steps(make_cfg: Callable[..., DictConfig]) -> None:
    records = run(make_cfg("prune.rate=0.5"))
    assert [r["steps"] for r in records] == [30, 30, 30]
    assert records[0]["forward_macs"] > records[1]["forward_macs"] > records[2]["forward_macs"]


def test_a_crash_mid_level_resumes_the_level_with_its_own_length(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    overrides = ["init=scratch", "train.budget=flops", "prune.rate=0.5", "train.checkpoint_every=7"]
    reference = make_cfg(*overrides, f"paths.output_dir={tmp_path / 'reference'}")
    records = run(reference)
    assert records[0]["steps"] == 30 and records[1]["steps"] > 50  # level 1: 51.7% of the weights left
    crashed = make_cfg(*overrides, f"paths.output_dir={tmp_path / 'crashed'}")
    job = build_job(crashed)
    job.trainer.callbacks.append(CrashAt(30 + 45))  # in level 1, after the checkpoint at step 70
    with pytest.raises(Crash):
        job.trainer.fit(job.module, datamodule=job.datamodule)
    assert job.lottery.state.level == 1 and not (tmp_path / "crashed" / "DONE").exists()
    with caplog.at_level(logging.INFO, logger="lth"):
        run(crashed)
    assert f"resuming from {tmp_path / 'crashed' / 'checkpoints' / 'last.ckpt'}" in caplog.text
    assert_same_results(tmp_path / "reference", tmp_path / "crashed")
