"""Mask overlap: the Jaccard index |A and B| / |A or B| of two masks (1 for two empty masks).

At each level, the level's masks against the previous level's, per layer and over all layers (none at
level 0). Under IMP the new mask is a subset of the old one, so the overlap is the fraction kept; random
pruning, reinitialisation and pruning at init make it informative. ``lth.report`` compares the masks of
different seeds (and init strategies) at the same level with the same index.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from lth.analysis.level import Level, Result, layer_name


def jaccard(a: Tensor, b: Tensor) -> float:
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else 1.0


def overall(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> float:
    """The Jaccard index of all the tensors of ``a`` and ``b`` taken together."""
    union = sum(int((a[n] | b[n]).sum()) for n in a)
    return sum(int((a[n] & b[n]).sum()) for n in a) / union if union else 1.0


def mask_overlap(level: Level) -> Result:
    """``{layer: {"jaccard": ...}, "all": {"jaccard": ...}}`` against the previous level; ``{}`` at level 0."""
    previous = level.previous_masks
    if previous is None:
        return {}, {}
    masks = {n: m.cpu() for n, m in level.masks.items()}
    previous = {n: previous[n].cpu() for n in masks}
    summary = {layer_name(n): {"jaccard": jaccard(masks[n], previous[n])} for n in masks}
    return summary | {"all": {"jaccard": overall(masks, previous)}}, {}
