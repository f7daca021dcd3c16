"""Pruning at initialisation: SNIP, GraSP and SynFlow scores, exact counts, end-to-end runs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from lth.lottery.at_init import grasp, prune_at_init, snip, synflow
from lth.lottery.masks import prunable_weight_names
from lth.models import MLP
from lth.run.job import build_job, execute


def mlp(seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    return MLP((40,), 10, [30, 20])


def dense(model: MLP) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    return {name: torch.ones_like(params[name], dtype=torch.bool) for name in prunable_weight_names(model)}


def data(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 40, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_synflow_scores_are_the_path_norms_of_a_two_layer_net() -> None:
    torch.manual_seed(0)
    model = MLP((3,), 2, [4])
    masks = dense(model)
    masks["fc1.weight"][0, 0] = False
    w1, b1 = model.fc1.weight.detach().abs() * masks["fc1.weight"], model.fc1.bias.detach().abs()
    w2 = model.fc2.weight.detach().abs()
    # all-ones input, |theta|: R = 1^T (W2 (W1 1 + b1) + b2); dR/dW1_ij = colsum(W2)_i, dR/dW2_ki = h_i
    expected = {"fc1.weight": w1 * w2.sum(0)[:, None], "fc2.weight": w2 * (w1.sum(1) + b1)[None, :]}
    scores = synflow(model, masks, torch.randn(5, 3), torch.zeros(5, dtype=torch.long))  # data unused
    for name, value in expected.items():
        torch.testing.assert_close(scores[name], value)
    assert scores["fc1.weight"][0, 0] == 0


def test_snip_and_grasp_scores_match_autograd_references() -> None:
    model, (x, y) = mlp(), data()
    masks = dense(model)
    weights = [model.get_parameter(n) for n in masks]

    def loss(*ws: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        params = dict(model.named_parameters()) | dict(zip(masks, ws, strict=True))
        return F.cross_entropy(torch.func.functional_call(model, params, (x,)) / temperature, y)

    grads = torch.autograd.grad(loss(*weights), weights)
    for (name, score), w, g in zip(snip(model, masks, x, y).items(), weights, grads, strict=True):
        torch.testing.assert_close(score, (w * g).abs().detach(), msg=name)
    tempered = lambda *ws: loss(*ws, temperature=200.0)  # noqa: E731
    g = torch.autograd.grad(tempered(*weights), weights)
    _, hg = torch.autograd.functional.hvp(tempered, tuple(w.detach() for w in weights), g)
    for (name, score), w, h in zip(grasp(model, masks, x, y).items(), weights, hg, strict=True):
        torch.testing.assert_close(score, (w * h).detach(), msg=name)


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("rate", [0.9, 0.987])
def test_synflow_keeps_exactly_the_target_count(scope: str, rate: float) -> None:
    model = mlp()
    masks = dense(model)
    rates = dict.fromkeys(masks, rate)
    pruned = prune_at_init("synflow", model, masks, data(), rates, scope, rate, lambda k: k, iterations=20)
    groups = [[n] for n in masks] if scope == "layer" else [list(masks)]  # all at one rate: one pool
    for group in groups:
        size = sum(masks[n].numel() for n in group)
        assert sum(int(pruned[n].sum()) for n in group) == size - round(rate * size)
    once = prune_at_init("synflow", model, masks, data(), rates, scope, rate, lambda k: k, iterations=1)
    assert any(not torch.equal(once[n], pruned[n]) for n in masks)  # iterating changes the mask


@pytest.mark.parametrize("method", ["snip", "grasp", "synflow"])
def test_pruning_at_init_trains_the_sparse_net_once(make_cfg: Callable[..., DictConfig], method: str) -> None:
    cfg = make_cfg(f"prune={method}", "prune.rate=0.9", "prune.levels=0", "train.steps=100")
    job = build_job(cfg)
    theta_0 = job.module.network.model_state()
    (record,) = execute(job)
    masks = job.run_dir.load_masks(0)
    total = sum(m.numel() for m in masks.values())  # 4000 + 10000 + 1000, pooled (output_rate = rate)
    assert sum(int(m.sum()) for m in masks.values()) == total - round(0.9 * total) == 1500
    assert record["level"] == 0 and record["weights_remaining"] == 0.1 and record["status"] == "ok"
    assert record["test_acc"] > 0.25  # trained: chance is 0.1
    weights = job.run_dir.load_state(0)
    assert all(torch.all(weights[n][~m] == 0) for n, m in masks.items())
    # the scores of theta_0, not a random draw: the same call on theta_0 gives the same masks
    model = job.module.network.model
    model.load_state_dict(theta_0)
    again = job.lottery.plan.masks_at_init(model, dense(model), job.lottery.scoring_data())
    assert all(torch.equal(again[n], m) for n, m in masks.items())
    # not a random mask: a random global mask keeps 10% +- 1% (1 sd) of every layer
    per_layer = [m.float().mean().item() for m in masks.values()]
    assert max(per_layer) - min(per_layer) > 0.05
