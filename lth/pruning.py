"""Mask criteria and pruning scopes.

A criterion scores each weight from ``(w_init, w_final)``; higher scores survive. A pruning event
removes, from the weights still alive, the ``round(rate * alive)`` lowest-scoring ones (Python's
``round``, half to even: the rule of ``torch.nn.utils.prune``). Repeated events therefore leave about
``(1 - rate) ** k`` of a tensor after ``k`` events. Ties are broken by position: the lower flat
index is removed first.

Scopes: ``layer`` prunes each tensor at its own rate; ``global`` pools every tensor pruned at the
base rate and ranks them together, while tensors with a rate of their own (the output layer) are
still pruned layer by layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

Criterion = Callable[[Tensor, Tensor], Tensor]

CRITERIA: dict[str, Criterion] = {
    "magnitude": lambda w_init, w_final: w_final.abs(),
    "large_final": lambda w_init, w_final: w_final.abs(),
}
SCOPES = ("layer", "global")


def prune_count(alive: int, rate: float) -> int:
    """How many of ``alive`` weights one pruning event removes."""
    return round(rate * alive)


def _drop_lowest(scores: Tensor, mask: Tensor, count: int) -> Tensor:
    """Flat bool mask with the ``count`` lowest-scoring alive entries removed."""
    flat_mask = mask.flatten().clone()
    if count == 0:
        return flat_mask
    ranked = scores.flatten().float().masked_fill(~flat_mask, float("inf"))
    order = torch.sort(ranked, stable=True).indices
    flat_mask[order[:count]] = False
    return flat_mask


def prune_masks(
    scores: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    rates: Mapping[str, float],
    scope: str,
    base_rate: float,
) -> dict[str, Tensor]:
    """New masks after one pruning event. ``rates`` gives each tensor's rate."""
    new = {}
    pooled = [name for name in masks if scope == "global" and rates[name] == base_rate]
    for name in masks:
        if name not in pooled:
            count = prune_count(int(masks[name].sum()), rates[name])
            new[name] = _drop_lowest(scores[name], masks[name], count).view_as(masks[name])
    if pooled:
        flat_mask = torch.cat([masks[n].flatten() for n in pooled])
        flat_scores = torch.cat([scores[n].flatten().float() for n in pooled])
        kept = _drop_lowest(flat_scores, flat_mask, prune_count(int(flat_mask.sum()), base_rate))
        for name, part in zip(pooled, kept.split([masks[n].numel() for n in pooled]), strict=True):
            new[name] = part.view_as(masks[name])
    return {name: new[name] for name in masks}


def score(criterion: str, w_init: Mapping[str, Tensor], w_final: Mapping[str, Tensor]) -> dict[str, Tensor]:
    fn = CRITERIA[criterion]
    return {name: fn(w_init[name], w_final[name]) for name in w_final}


def random_masks_like(
    target: Mapping[str, Tensor], previous: Mapping[str, Tensor], generator: torch.Generator
) -> dict[str, Tensor]:
    """Random masks with the per-tensor survivor counts of ``target``, nested inside ``previous``."""
    out = {}
    for name, mask in target.items():
        alive = previous[name].flatten()
        noise = torch.rand(alive.shape, generator=generator).masked_fill(~alive.cpu(), -1.0)
        keep = torch.zeros_like(alive)
        keep[noise.topk(int(mask.sum())).indices.to(alive.device)] = True
        out[name] = keep.view_as(mask)
    return out
