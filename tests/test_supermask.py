"""Supermasks: a level's mask applied to theta_0, evaluated with no training."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from lth.lottery.masks import MaskedNetwork
from lth.models import MLP
from lth.run.job import build_job, execute, run
from tests.conftest import Crash, CrashAt
from tests.test_resume import assert_same_results


def test_holding_evaluates_masked_state_and_restores_the_weights() -> None:
    network = MaskedNetwork(MLP((4,), 3, [5]), ["fc1.weight"])
    network.set_masks({"fc1.weight": torch.rand(5, 4) > 0.5})
    before = network.model_state()
    other = MLP((4,), 3, [5]).state_dict()
    with network.holding(other):
        inside = network.model_state()
    assert torch.equal(inside["fc1.weight"], other["fc1.weight"] * network.mask("fc1.weight"))
    assert torch.equal(inside["fc2.weight"], other["fc2.weight"])
    after = network.model_state()
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_large_final_same_sign_supermask_is_far_above_chance(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg(
        "prune.criterion=large_final_same_sign",
        "prune.levels=1",
        "prune.rate=0.5",
        "train.steps=150",
        "train.eval_every=50",
    )
    job = build_job(cfg)
    theta_0 = job.module.network.model_state()
    dense, sparse = execute(job)
    network, test = job.module.network, job.datamodule.split("test")
    # level 0's mask is all ones: its supermask is theta_0 itself, at chance (10 classes)
    network.model.load_state_dict(theta_0)
    assert dense["supermask_test_acc"] == job.module.evaluate(*test)["acc"] < 0.15
    network.load_model_state(theta_0)  # theta_0 under the last level's mask
    assert sparse["supermask_test_acc"] == job.module.evaluate(*test)["acc"]
    # measured: 0.26 here (seeds 0-4: 0.19-0.28, trained nets 0.45-0.52) for 51.7% of the weights
    assert sparse["weights_remaining"] < 0.52
    assert sparse["supermask_test_acc"] > 0.18
    assert sparse["supermask_test_acc"] > dense["supermask_test_acc"] + 0.1


def test_learned_supermask_trains_only_the_scores_and_beats_chance(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg(
        "prune=learned_supermask", "prune.levels=0", "optim=adam", "optim.lr=0.1", "train.steps=100"
    )
    job = build_job(cfg)
    network = job.module.network
    theta_0 = network.model_state()
    scores_0 = {name: network.score(name).detach().clone() for name in network.prunable}
    (record,) = execute(job)
    after = network.model_state()
    assert all(torch.equal(after[k], theta_0[k]) for k in theta_0)  # every weight and bias frozen
    assert all(not torch.equal(network.score(n), scores_0[n]) for n in network.prunable)
    masks = job.run_dir.load_masks(0)
    assert all(torch.equal(masks[n], network.score(n) > 0) for n in network.prunable)
    alive = sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    assert record["weights_remaining"] == alive and 0.3 < alive < 0.7
    # measured: 0.21 (masks sampled at p = 0.5 before training: 0.09-0.11)
    assert record["test_acc"] > 0.16
    # the learned mask on theta_0 is what was evaluated: the supermask accuracy is the test accuracy
    assert record["supermask_test_acc"] == record["test_acc"]
    weights = job.run_dir.load_state(0)
    assert all(torch.equal(weights[n], theta_0[n]) for n in network.prunable)


def test_a_crashed_learned_supermask_run_resumes_with_the_same_mask_draws(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    job_args = ["prune=learned_supermask", "prune.levels=0", "optim=adam", "optim.lr=0.1"]
    job_args += ["train.steps=60", "train.checkpoint_every=20"]
    reference = make_cfg(*job_args, f"paths.output_dir={tmp_path / 'reference'}")
    run(reference)
    crashed = make_cfg(*job_args, f"paths.output_dir={tmp_path / 'crashed'}")
    job = build_job(crashed)
    job.trainer.callbacks.append(CrashAt(30))  # resumed from the checkpoint at step 20
    with pytest.raises(Crash):
        execute(job)
    run(crashed)
    assert_same_results(tmp_path / "reference", tmp_path / "crashed")
