"""Update spectrum (Nagarajan & Kolter 2019): the singular values of each layer's update W - W0.

Per layer: the singular values (``<layer>.singular_values``), the effective rank exp(H(s / sum s))
(Roy & Vetterli's entropy rank), ``rank90`` (the fewest directions holding 90% of the squared norm) and,
for each k of ``ks``, the spectral norm of what projecting onto the top k left singular vectors removes
(``residual_norm``: the (k+1)-th singular value). With the full model state: test accuracy of the
network with every layer's update replaced by its top-k projection, W0 + U_k U_k^T (W - W0), under
the mask (``projected_acc``, by k; ``acc`` unprojected). Nagarajan & Kolter keep the accuracy with 16
of 1,024 directions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call

from lth.analysis.level import Level, NeedsModel, Result, accuracy, batched, evaluating


def effective_rank(singular_values: Tensor) -> float:
    """exp of the entropy of the normalised singular values (1 for rank one, r for r equal ones)."""
    p = singular_values / singular_values.sum().clamp_min(1e-300)
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def energy_rank(singular_values: Tensor, energy: float = 0.9) -> int:
    """The fewest leading singular values whose squares sum to ``energy`` of the total."""
    squares = singular_values**2
    if squares.sum() == 0:
        return 0
    return int((squares.cumsum(0) < energy * squares.sum()).sum()) + 1


def projected(update: Tensor, k: int) -> Tensor:
    """``update`` projected onto its top ``k`` left singular vectors."""
    u = torch.linalg.svd(update, full_matrices=False)[0][:, :k]
    return u @ (u.T @ update)


def update_spectrum(level: Level, ks: Sequence[int] = (1, 2, 4, 8, 16, 32)) -> Result:
    """``{layer: {effective_rank, rank90, residual_norm: {k: ...}}, acc, projected_acc: {k: ...}}``."""
    summary: dict[str, Any] = {}
    tensors: dict[str, Tensor] = {}
    updates = {}
    for (layer, weight, start, _), name in zip(level.layers(), level.masks, strict=True):
        update = weight - start
        s = torch.linalg.svdvals(update)
        residual = {str(k): float(s[k]) if k < len(s) else 0.0 for k in ks}
        summary[layer] = {
            "effective_rank": effective_rank(s),
            "rank90": energy_rank(s),
            "residual_norm": residual,
        }
        tensors[f"{layer}.singular_values"] = s.float()
        updates[name] = (start, update)
    try:
        model, (x, y) = level.network()
    except NeedsModel:
        return summary, tensors
    with evaluating(model):
        summary["acc"] = float(accuracy(batched(model, x), y))
        summary["projected_acc"] = {}
        for k in ks:
            params = {}
            for name, (start, update) in updates.items():
                mask, like = level.masks[name], model.get_parameter(name)
                weight = (start + projected(update, k)).view(like.shape) * mask.cpu()
                params[name] = weight.to(like)
            logits = batched(lambda chunk, params=params: functional_call(model, params, (chunk,)), x)
            summary["projected_acc"][str(k)] = float(accuracy(logits, y))
    return summary, tensors
