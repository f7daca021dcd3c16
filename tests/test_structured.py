"""Structured pruning: whole neurons / filters, equal to torch.nn.utils.prune.ln_structured."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from omegaconf import DictConfig
from torch import nn
from torch.nn.utils import prune

from lth.pruning import structure_masks
from lth.train import build_job, execute

LAYERS = {"linear": lambda: nn.Linear(30, 25), "conv": lambda: nn.Conv2d(4, 18, 3)}


@pytest.mark.parametrize("norm", [1, 2])
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_unit_masks_equal_torch_ln_structured_over_events(kind: str, norm: int) -> None:
    torch.manual_seed(0)
    module = LAYERS[kind]()
    mask = {"w": torch.ones_like(module.weight, dtype=torch.bool)}
    for event in range(3):
        if event:  # "training" moves the surviving weights between events
            module.weight_orig.data.add_(0.3 * torch.randn_like(module.weight))
            module(torch.zeros(1, 30) if kind == "linear" else torch.zeros(1, 4, 5, 5))
        weight = module.weight.detach().clone()
        mask = structure_masks({"w": weight}, mask, {"w": 0.3}, norm, ["w"], seed=event)
        prune.ln_structured(module, "weight", amount=0.3, n=norm, dim=0)
        assert torch.equal(module.weight_mask.bool(), mask["w"]), event
        units = mask["w"].flatten(1)
        assert torch.all(units.all(dim=1) | ~units.any(dim=1))  # whole rows / filters only
    # round(0.3 x alive units) per event: 25 -> 17 -> 12 -> 8 neurons, 18 -> 13 -> 9 -> 6 filters
    assert int(units.any(dim=1).sum()) == {"linear": 8, "conv": 6}[kind]


def test_removed_units_mask_the_columns_that_read_them() -> None:
    g = torch.Generator().manual_seed(0)
    weights = {"a": torch.randn(6, 3, generator=g), "b": torch.randn(4, 6, generator=g)}
    weights["a"][[1, 4]] *= 0.01  # the two weakest neurons of "a"
    masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    new = structure_masks(weights, masks, {"a": 0.3, "b": 0.5}, 1, ["a"])  # "b" is the output layer
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
    weights = torch.load(job.run_dir.level_dir(2) / "weights.pt", weights_only=True)
    assert torch.all(weights["fc1.weight"][~rows] == 0)
