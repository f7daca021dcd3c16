"""Supermasks: a level's mask applied to theta_0, evaluated with no training."""

from __future__ import annotations

from collections.abc import Callable

import torch
from omegaconf import DictConfig

from lth.masks import MaskedNetwork
from lth.models import MLP
from lth.train import build_job, execute


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
