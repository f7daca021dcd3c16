"""Pruning counts, scopes and equality with torch.nn.utils.prune."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from lth.lottery.pruning import prune_count, prune_masks, random_masks_like, score

SHAPES = {"fc1.weight": (300, 40), "fc2.weight": (100, 300), "fc3.weight": (10, 100)}
RATES = {"fc1.weight": 0.2, "fc2.weight": 0.2, "fc3.weight": 0.1}


def random_weights(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=g) for name, shape in SHAPES.items()}


def magnitude(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return score("magnitude", weights, weights)


def full_masks() -> dict[str, torch.Tensor]:
    return {name: torch.ones(shape, dtype=torch.bool) for name, shape in SHAPES.items()}


def test_prune_count_rounds_half_to_even_like_torch() -> None:
    assert prune_count(25, 0.1) == 2  # 2.5 -> 2
    assert prune_count(35, 0.1) == 4  # 3.5 -> 4
    assert prune_count(1000, 0.2) == 200
    assert prune_count(0, 0.5) == 0


def test_layer_scope_exact_counts_level_by_level() -> None:
    masks = full_masks()
    expected = {name: torch.Size(shape).numel() for name, shape in SHAPES.items()}
    for level in range(1, 9):
        masks = prune_masks(magnitude(random_weights(level)), masks, RATES, "layer", 0.2)
        for name, mask in masks.items():
            expected[name] -= round(RATES[name] * expected[name])
            assert int(mask.sum()) == expected[name], (level, name)
    # the rule tracks (1 - p)^k n: after 8 events fc1 keeps 0.8^8 = 16.8%, the output layer 0.9^8 = 43.0%
    assert int(masks["fc1.weight"].sum()) == 2014  # 12000 * 0.8**8 = 2013.3
    assert int(masks["fc3.weight"].sum()) == 430  # 1000 * 0.9**8 = 430.5


def test_masks_are_nested_and_drop_the_smallest_surviving_magnitudes() -> None:
    masks = full_masks()
    for level in range(3):
        weights = random_weights(level)
        new = prune_masks(magnitude(weights), masks, RATES, "layer", 0.2)
        for name in SHAPES:
            assert not (new[name] & ~masks[name]).any()  # nothing revives
            removed = weights[name].abs()[masks[name] & ~new[name]]
            kept = weights[name].abs()[new[name]]
            assert removed.max() <= kept.min()
        masks = new


def test_global_scope_pools_hidden_layers_and_keeps_output_rate() -> None:
    masks = full_masks()
    hidden_total, output_alive = 12000 + 30000, 1000
    for level in range(1, 6):
        weights = random_weights(10 + level)
        weights["fc2.weight"] *= 3.0  # a layer of larger weights loses fewer of them globally
        masks = prune_masks(magnitude(weights), masks, RATES, "global", 0.2)
        hidden_total -= round(0.2 * hidden_total)
        output_alive -= round(0.1 * output_alive)
        assert int(masks["fc1.weight"].sum() + masks["fc2.weight"].sum()) == hidden_total
        assert int(masks["fc3.weight"].sum()) == output_alive
    fraction = {name: masks[name].float().mean().item() for name in ("fc1.weight", "fc2.weight")}
    assert fraction["fc2.weight"] > 0.8**5 > fraction["fc1.weight"]


def _linear_modules(weights: dict[str, torch.Tensor]) -> dict[str, nn.Linear]:
    modules = {}
    for name, w in weights.items():
        module = nn.Linear(w.shape[1], w.shape[0], bias=False)
        module.weight.data.copy_(w)
        modules[name] = module
    return modules


def _train_to(modules: dict[str, nn.Linear], weights: dict[str, torch.Tensor]) -> None:
    """Stand-in for training under torch's pruning: new weight_orig, then a forward recomputes ``weight``."""
    for name, module in modules.items():
        module.weight_orig.data.copy_(weights[name])
        module(torch.zeros(1, module.in_features))


def test_layer_masks_equal_torch_l1_unstructured_over_levels() -> None:
    weights = random_weights(0)
    modules = _linear_modules(weights)
    masks = full_masks()
    for level in range(5):
        if level:  # "training" moves the weights between events
            weights = {n: w + 0.3 * torch.randn_like(w) for n, w in weights.items()}
            _train_to(modules, weights)
        masks = prune_masks(magnitude(weights), masks, RATES, "layer", 0.2)
        for name, module in modules.items():
            prune.l1_unstructured(module, "weight", amount=RATES[name])
            assert torch.equal(module.weight_mask.bool(), masks[name]), (level, name)


def test_global_masks_equal_torch_global_unstructured_over_levels() -> None:
    weights = random_weights(1)
    rates = dict.fromkeys(SHAPES, 0.2)
    modules = _linear_modules(weights)
    params = [(module, "weight") for module in modules.values()]
    masks = full_masks()
    for level in range(5):
        if level:
            weights = {n: w + 0.3 * torch.randn_like(w) for n, w in weights.items()}
            _train_to(modules, weights)
        masks = prune_masks(magnitude(weights), masks, rates, "global", 0.2)
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.2)
        for name, module in modules.items():
            assert torch.equal(module.weight_mask.bool(), masks[name]), (level, name)


def test_ties_are_broken_by_the_seed_not_by_position() -> None:
    mask = torch.ones(6, dtype=torch.bool)
    scores = torch.tensor([1.0, 0.5, 0.5, 0.5, 2.0, 0.5])

    def kept(seed: int) -> tuple[bool, ...]:
        new = prune_masks({"w": scores}, {"w": mask}, {"w": 0.5}, "layer", 0.5, seed)["w"]
        return tuple(new.tolist())

    drawn = {kept(seed) for seed in range(20)}
    for new in drawn:  # 1.0 and 2.0 survive; one of the four tied 0.5s does
        assert new[0] and new[4] and sum(new) == 3
    survivors = {i for new in drawn for i in (1, 2, 3, 5) if new[i]}
    assert survivors == {1, 2, 3, 5}  # every tied position survives for some seed
    assert kept(7) == kept(7)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_masks_keep_counts_and_nest(seed: int) -> None:
    previous = prune_masks(magnitude(random_weights(5)), full_masks(), RATES, "layer", 0.2)
    target = prune_masks(magnitude(random_weights(6)), previous, RATES, "layer", 0.2)
    drawn = random_masks_like(target, previous, torch.Generator().manual_seed(seed))
    for name in SHAPES:
        assert int(drawn[name].sum()) == int(target[name].sum())
        assert not (drawn[name] & ~previous[name]).any()
        assert not torch.equal(drawn[name], target[name])


def test_mask_factors_follow_masks_set_or_loaded_from_a_state_dict() -> None:
    from lth.lottery.masks import MaskedNetwork

    def network() -> MaskedNetwork:
        torch.manual_seed(0)
        return MaskedNetwork(
            nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)), ["0.weight", "2.weight"]
        )

    source, target = network(), network()
    masks = prune_masks(
        magnitude(source.weights()), source.mask_dict(), dict.fromkeys(source.prunable, 0.5), "layer", 0.5
    )
    source.set_masks(masks)
    assert "factors.0__weight" not in source.state_dict()  # float copies are not saved
    target.load_state_dict(source.state_dict())  # e.g. a resumed checkpoint
    for name in target.prunable:
        assert torch.equal(target.factor(name), masks[name].float())
        target.weight(name).grad = torch.ones_like(target.weight(name))
    target.mask_gradients()
    assert all(torch.equal(target.weight(n).grad, masks[n].float()) for n in target.prunable)
