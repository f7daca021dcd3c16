"""Zhou et al.'s restart strategies and frozen pruned weights, through real lotteries."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from omegaconf import DictConfig
from test_lottery import magnitude_masks, run_with_probe


def level_starts(cfg: DictConfig):
    """theta_0 and, per pruned level, (state, masks) at its first batch; checks the magnitude masks."""
    _, probe, job = run_with_probe(cfg)
    theta_0, _ = probe.starts[0]
    for level in (1, 2):
        _, masks = probe.starts[level]
        assert all(torch.equal(masks[n], m) for n, m in magnitude_masks(cfg, job, level - 1).items())
    return theta_0, [probe.starts[level] for level in (1, 2)]


def test_signed_constant_is_sign_times_the_init_std_exactly(make_cfg: Callable[..., DictConfig]) -> None:
    theta_0, starts = level_starts(make_cfg("init=signed_constant"))
    for state, masks in starts:
        assert torch.equal(state["fc1.bias"], theta_0["fc1.bias"])  # non-pruned tensors: theta_0
        for name, mask in masks.items():
            std = theta_0[name].std()
            expected = torch.where(mask, torch.sign(theta_0[name]) * std, torch.zeros(()))
            assert torch.equal(state[name], expected), name
            assert set(state[name][mask].abs().unique().tolist()) == {std.item()}


@pytest.mark.parametrize("signed", [False, True], ids=["reshuffle", "signed_reshuffle"])
def test_reshuffle_permutes_the_kept_initial_values(
    make_cfg: Callable[..., DictConfig], signed: bool
) -> None:
    name_ = "signed_reshuffle" if signed else "reshuffle"
    theta_0, starts = level_starts(make_cfg(f"init={name_}"))
    shuffles = []
    for state, masks in starts:
        for name, mask in masks.items():
            new, old = state[name][mask], theta_0[name][mask]
            assert torch.all(state[name][~mask] == 0)
            if signed:  # theta_0's sign at each position, magnitudes a permutation of the kept ones
                assert torch.equal(torch.sign(new), torch.sign(old))
                new, old = new.abs(), old.abs()
            assert torch.equal(new.sort().values, old.sort().values)  # the same multiset
            assert (new != old).float().mean() > 0.9  # but moved to other positions
        shuffles.append(state["fc2.weight"][starts[1][1]["fc2.weight"]])
    assert not torch.equal(*shuffles)  # a new permutation every level


def test_signed_reinit_keeps_signs_with_fresh_magnitudes(make_cfg: Callable[..., DictConfig]) -> None:
    theta_0, starts = level_starts(make_cfg("init=signed_reinit"))
    for state, masks in starts:
        assert not torch.equal(state["fc1.bias"], theta_0["fc1.bias"])  # the fresh draw's biases
        for name, mask in masks.items():
            new, old = state[name][mask], theta_0[name][mask]
            assert torch.equal(torch.sign(new), torch.sign(old))
            assert not torch.isclose(new, old).any()
            assert new.abs().mean().item() == pytest.approx(old.abs().mean().item(), rel=0.15)


def test_frozen_init_holds_pruned_weights_at_theta_0_through_training(
    make_cfg: Callable[..., DictConfig],
) -> None:
    # weight decay and momentum would move a pruned weight if anything let them
    cfg = make_cfg("init.pruned_weights=frozen_init", "optim.weight_decay=0.01", "prune.rate=0.5")
    records, probe, job = run_with_probe(cfg, at=(40, 50, 70, 80))  # batches start every 10 steps
    assert sorted(probe.at) == [40, 50, 70, 80]
    theta_0 = job.lottery.state.theta_0
    assert [r["status"] for r in records] == ["ok"] * 3
    network = job.module.network
    checked = [(probe.at[step], probe.starts[step // 30][1]) for step in probe.at]
    checked.append((network.model_state(), network.mask_dict()))
    for state, masks in checked:
        for name, mask in masks.items():
            assert (~mask).sum() > 0
            assert torch.equal(state[name][~mask], theta_0[name][~mask]), name  # frozen, bit for bit
            assert not torch.equal(state[name][mask], theta_0[name][mask])  # survivors train
    for level in (1, 2):
        weights = job.run_dir.load_state(level)
        masks = job.run_dir.load_masks(level)
        assert all(torch.equal(weights[n][~masks[n]], theta_0[n][~masks[n]]) for n in masks)
