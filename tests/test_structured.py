"""Structured pruning: whole neurons / filters, equal to torch.nn.utils.prune.ln_structured."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from omegaconf import DictConfig
from torch import nn
from torch.nn.utils import prune

from lth.errors import ConfigError
from lth.lottery.pruning import structure_masks
from lth.lottery.rates import unit_readers
from lth.models import ResNet
from lth.run.job import build_job, execute

LAYERS = {"linear": lambda: nn.Linear(30, 25), "conv": lambda: nn.Conv2d(4, 18, 3)}


@pytest.mark.parametrize("norm", [1, 2])
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_unit_masks_equal_torch_ln_structured_over_events(kind: str, norm: int) -> None:
    torch.manual_seed(0)
    module = LAYERS[kind]()
    units = module.weight.shape[0]
    mask = {
        "w": torch.ones_like(module.weight, dtype=torch.bool),
        "r": torch.ones(2, units, dtype=torch.bool),
    }
    for event in range(3):
        if event:  # "training" moves the surviving weights between events
            module.weight_orig.data.add_(0.3 * torch.randn_like(module.weight))
            module(torch.zeros(1, 30) if kind == "linear" else torch.zeros(1, 4, 5, 5))
        weight = module.weight.detach().clone()
        mask = structure_masks({"w": weight}, mask, {"w": 0.3}, norm, {"w": "r"}, seed=event)
        prune.ln_structured(module, "weight", amount=0.3, n=norm, dim=0)
        assert torch.equal(module.weight_mask.bool(), mask["w"]), event
        units = mask["w"].flatten(1)
        assert torch.all(units.all(dim=1) | ~units.any(dim=1))  # whole rows / filters only
        assert torch.equal(mask["r"].all(dim=0), units.any(dim=1))  # the reader's columns follow
    # round(0.3 x alive units) per event: 25 -> 17 -> 12 -> 8 neurons, 18 -> 13 -> 9 -> 6 filters
    assert int(units.any(dim=1).sum()) == {"linear": 8, "conv": 6}[kind]


def test_removed_units_mask_the_columns_that_read_them() -> None:
    g = torch.Generator().manual_seed(0)
    weights = {"a": torch.randn(6, 3, generator=g), "b": torch.randn(4, 6, generator=g)}
    weights["a"][[1, 4]] *= 0.01  # the two weakest neurons of "a"
    masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    new = structure_masks(weights, masks, {"a": 0.3, "b": 0.5}, 1, {"a": "b"})  # "b": the output layer
    assert new["a"].all(dim=1).tolist() == [True, False, True, True, False, True]
    assert new["b"].all(dim=0).tolist() == [True, False, True, True, False, True]  # columns 1, 4 cut
    assert int(new["b"].sum()) == 16  # its own rows untouched


def test_neuron_pruning_retrained_from_scratch_end_to_end(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg("prune.structure=neuron", "prune.rate=0.5", "prune.norm=2", "init=scratch")
    assert cfg.init.name == "reinit"  # Scratch-E: fresh init of the pruned architecture, same steps
    records = execute(job := build_job(cfg))
    # fc1 100x40, fc2 100x100, fc3 (output) 10x100: 50 then 25 hidden units left per layer
    assert [r["weights_remaining"] for r in records] == [1.0, 5000 / 15000, 1875 / 15000]
    masks = job.run_dir.load_masks(2)
    rows = masks["fc1.weight"].any(dim=1)
    assert int(rows.sum()) == 25 and torch.equal(masks["fc2.weight"].any(dim=0), rows)
    assert torch.equal(masks["fc3.weight"].any(dim=0), masks["fc2.weight"].any(dim=1))
    weights = job.run_dir.load_state(2)
    assert torch.all(weights["fc1.weight"][~rows] == 0)


def test_removed_filters_mask_their_columns_of_a_flattened_linear_exactly_like_removing_them() -> None:
    torch.manual_seed(0)
    conv, fc = nn.Conv2d(2, 4, 3, padding=1), nn.Linear(4 * 2 * 2, 3)
    net = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), fc)
    masks = {
        "0.weight": torch.ones_like(conv.weight, dtype=torch.bool),
        "4.weight": torch.ones_like(fc.weight, dtype=torch.bool),
    }
    readers = unit_readers("filter", net, list(masks))
    assert readers == {"0.weight": "4.weight"}
    new = structure_masks(
        {"0.weight": conv.weight.detach(), "4.weight": fc.weight.detach()},
        masks,
        {"0.weight": 0.5},
        1,
        readers,
    )
    kept = new["0.weight"].flatten(1).any(dim=1)
    assert int(kept.sum()) == 2
    with torch.no_grad():
        conv.weight *= new["0.weight"]
        fc.weight *= new[
            "4.weight"
        ]  # the removed filters' biases still output relu(b): their columns are cut
        small_conv, small_fc = nn.Conv2d(2, 2, 3, padding=1), nn.Linear(2 * 2 * 2, 3)
        small_conv.weight.copy_(conv.weight[kept])
        small_conv.bias.copy_(conv.bias[kept])
        small_fc.weight.copy_(fc.weight.view(3, 4, 4)[:, kept].reshape(3, 8))
        small_fc.bias.copy_(fc.bias)
        small = nn.Sequential(small_conv, nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), small_fc)
        x = torch.randn(5, 2, 6, 6)
        torch.testing.assert_close(net(x), small(x))


def test_resnet_filter_pruning_removes_only_first_convs_of_blocks_and_their_reading_channels(
    make_cfg: Callable[..., DictConfig],
) -> None:
    model = ResNet((1, 8, 8), 10)
    readers = unit_readers("filter", model, [n for n, p in model.named_parameters() if p.dim() > 1])
    assert readers == {f"blocks.{i}.conv1.weight": f"blocks.{i}.conv2.weight" for i in range(9)}
    cfg = make_cfg(
        "data=digits",
        "model=resnet20",
        "prune.structure=filter",
        "prune.rate=0.5",
        "prune.levels=1",
        "train.steps=2",
        "train.eval_every=2",
    )
    job = build_job(cfg)
    execute(job)
    masks = job.run_dir.load_masks(1)
    for i in range(9):
        filters = masks[f"blocks.{i}.conv1.weight"].flatten(1).any(dim=1)
        assert int(filters.sum()) == len(filters) // 2
        channels = masks[f"blocks.{i}.conv2.weight"].transpose(0, 1).flatten(1).any(dim=1)
        assert torch.equal(channels, filters)
        assert masks[f"blocks.{i}.conv2.weight"][:, filters].all()  # its own filters all kept
    untouched = [n for n in masks if "conv1" not in n and "conv2" not in n]
    assert untouched and all(masks[n].all() for n in untouched)  # stem, shortcuts and fc: skip paths


def test_a_unit_tensor_whose_reader_is_excluded_is_refused(make_cfg: Callable[..., DictConfig]) -> None:
    with pytest.raises(
        ConfigError, match=r"fc1\.weight: the next layer's weight fc2\.weight is not prunable"
    ):
        build_job(make_cfg("prune.structure=neuron", "prune.exclude=[fc2.weight]"))
