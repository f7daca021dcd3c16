"""Mask criteria and pruning scopes.

A criterion scores each weight from ``(w_init, w_final)`` (theta_0 and the weights at the level's
end); higher scores survive. A pruning event removes, from the weights still alive, the
``round(rate * alive)`` lowest-scoring ones (Python's ``round``, half to even: the rule of
``torch.nn.utils.prune``). Repeated events therefore leave about ``(1 - rate) ** k`` of a tensor
after ``k`` events.

Ties are broken by a seeded random permutation of the alive weights (the same seed gives the same
masks), not by position: criteria with many equal scores (``random``, the ``*_sign`` criteria) would
otherwise prune the first rows of a layer first.

Percentile-AND criteria (``large_init_large_final``, ``small_init_small_final``) return two keys.
Each alive weight gets its rank under each key among the ranked weights (the tensor's alive weights
in layer scope, the pooled ones in global scope), and its score is the *smaller* of the two ranks.
Keeping the top ``alive - round(rate * alive)`` of that score is choosing one percentile threshold
``q`` and keeping the weights at or above ``q`` on both keys, with ``q`` as high as still keeps the
target count; weights exactly at ``q`` are split by the tie permutation so the count is exact.

Scopes: ``layer`` prunes each tensor at its own rate; ``global`` pools every tensor pruned at the
base rate and ranks them together, while tensors with a rate of their own (the output layer) are
still pruned layer by layer.

Structured pruning (``structure_masks``; Li et al. 2017) removes whole output units, the slices along
dim 0: a Linear's neurons (rows), a Conv's filters. Each event removes ``round(rate * alive units)``
units of a tensor with the smallest L``p`` norm of their weights (the rule of
``torch.nn.utils.prune.ln_structured``), and masks what depends on them: the input columns (channels)
of the tensor that reads them (``lth.lottery.rates.unit_readers`` finds it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from lth.lottery import names

Scores = Tensor | tuple[Tensor, ...]
"""One score tensor, or several keys combined by the percentile-AND rule."""
Criterion = Callable[[Tensor, Tensor], Scores]
Count = Callable[[int, int, float], int]
"""How many weights an event removes from a group, given (alive, size, rate)."""


def _same_sign(w_init: Tensor, w_final: Tensor) -> Tensor:
    return torch.sign(w_init) == torch.sign(w_final)


CRITERIA: dict[str, Criterion] = {
    "large_final": lambda w_init, w_final: w_final.abs(),
    "magnitude": lambda w_init, w_final: w_final.abs(),
    "small_final": lambda w_init, w_final: -w_final.abs(),
    "large_init": lambda w_init, w_final: w_init.abs(),
    "small_init": lambda w_init, w_final: -w_init.abs(),
    "magnitude_increase": lambda w_init, w_final: w_final.abs() - w_init.abs(),
    "movement": lambda w_init, w_final: (w_final - w_init).abs(),
    "random": lambda w_init, w_final: torch.zeros_like(w_final),  # all tied: the seeded permutation decides
    "large_final_same_sign": lambda w_init, w_final: w_final.abs() * _same_sign(w_init, w_final),
    "large_final_diff_sign": lambda w_init, w_final: w_final.abs() * ~_same_sign(w_init, w_final),
    "large_init_large_final": lambda w_init, w_final: (w_init.abs(), w_final.abs()),
    "small_init_small_final": lambda w_init, w_final: (-w_init.abs(), -w_final.abs()),
}
assert tuple(CRITERIA) == names.CRITERIA, "lth.lottery.names.CRITERIA must name CRITERIA's keys"


def prune_count(alive: int, rate: float) -> int:
    """How many of ``alive`` weights one pruning event removes."""
    return round(rate * alive)


def event_count(alive: int, size: int, rate: float) -> int:
    """The IMP rule: remove ``round(rate * alive)`` of the survivors."""
    return prune_count(alive, rate)


def _keys(scores: Scores) -> tuple[Tensor, ...]:
    return (scores,) if isinstance(scores, Tensor) else tuple(scores)


def _ascending(values: Tensor, tiebreak: Tensor) -> Tensor:
    """Indices sorting ``values`` ascending; equal values in the order of the permutation ``tiebreak``."""
    return tiebreak[torch.sort(values[tiebreak], stable=True).indices]


def _ranks(values: Tensor, tiebreak: Tensor) -> Tensor:
    ranks = torch.empty_like(tiebreak)
    ranks[_ascending(values, tiebreak)] = torch.arange(len(values), device=values.device)
    return ranks


def _drop_lowest(keys: Sequence[Tensor], mask: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """Flat bool mask with the ``count`` lowest-ranked alive entries removed (min rank over ``keys``)."""
    flat_mask = mask.flatten().clone()
    alive = flat_mask.nonzero().squeeze(1)
    tiebreak = torch.randperm(len(alive), generator=generator).to(alive.device)
    if count == 0:
        return flat_mask
    ranks = [_ranks(key.flatten()[alive].float(), tiebreak) for key in keys]
    combined = torch.stack(ranks).amin(dim=0)
    flat_mask[alive[_ascending(combined, tiebreak)[:count]]] = False
    return flat_mask


def prune_masks(
    scores: Mapping[str, Scores],
    masks: Mapping[str, Tensor],
    rates: Mapping[str, float],
    scope: str,
    base_rate: float,
    seed: int = 0,
    count: Count = event_count,
) -> dict[str, Tensor]:
    """New masks after one pruning event. ``rates`` gives each tensor's rate; ``seed`` breaks ties."""
    generator = torch.Generator().manual_seed(seed)
    keys = {name: _keys(scores[name]) for name in masks}
    new = {}
    pooled = [name for name in masks if scope == "global" and rates[name] == base_rate]
    for name in masks:
        if name not in pooled:
            removed = count(int(masks[name].sum()), masks[name].numel(), rates[name])
            new[name] = _drop_lowest(keys[name], masks[name], removed, generator).view_as(masks[name])
    if pooled:
        flat_mask = torch.cat([masks[n].flatten() for n in pooled])
        flat_keys = [
            torch.cat([keys[n][k].flatten().float() for n in pooled]) for k in range(len(keys[pooled[0]]))
        ]
        removed = count(int(flat_mask.sum()), flat_mask.numel(), base_rate)
        kept = _drop_lowest(flat_keys, flat_mask, removed, generator)
        for name, part in zip(pooled, kept.split([masks[n].numel() for n in pooled]), strict=True):
            new[name] = part.view_as(masks[name])
    return {name: new[name] for name in masks}


def structure_masks(
    weights: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    rates: Mapping[str, float],
    norm: int,
    readers: Mapping[str, str],
    seed: int = 0,
) -> dict[str, Tensor]:
    """New masks after one structured event: the units of each tensor in ``readers`` at its rate, then
    the input columns of the tensor that reads them (``readers[name]``). A Linear reading a Conv's
    flattened ``(C, H, W)`` output has ``H * W`` columns per channel."""
    generator = torch.Generator().manual_seed(seed)
    new = dict(masks)
    for name in readers:
        mask = masks[name]
        norms = (weights[name] * mask).flatten(1).norm(p=norm, dim=1)
        alive = mask.flatten(1).any(dim=1)
        kept = _drop_lowest((norms,), alive, prune_count(int(alive.sum()), rates[name]), generator)
        new[name] = mask & kept.view(-1, *[1] * (mask.dim() - 1))
    for name, reader in readers.items():
        feeds = new[name].flatten(1).any(dim=1)
        feeds = feeds.repeat_interleave(new[reader].shape[1] // len(feeds))
        new[reader] = new[reader] & feeds.view(1, -1, *[1] * (new[reader].dim() - 2))
    return new


def score(criterion: str, w_init: Mapping[str, Tensor], w_final: Mapping[str, Tensor]) -> dict[str, Scores]:
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
