"""Empirical spectral density (Martin & Mahoney 2018): the eigenvalues of X = W W^T per layer and the
power-law exponent alpha of their tail.

Training moves the ESD from a Marchenko-Pastur bulk toward heavy tails; smaller alpha means more
implicit regularisation (2-4 in well-trained layers). Conv layers as weightwatcher treats them: each of
the kh x kw slices ``W[:, :, i, j]`` is a matrix, their eigenvalues pooled. The fit is Clauset, Shalizi
& Newman's (2009), as the ``powerlaw`` package under weightwatcher does it: for each candidate xmin the
continuous maximum-likelihood alpha = 1 + n / sum ln(x / xmin) over the n eigenvalues >= xmin, and the
xmin whose fit has the least Kolmogorov-Smirnov distance D to the tail's empirical distribution.
Recorded per layer: ``alpha``, ``xmin``, ``ks_distance`` (D, the goodness), ``tail`` (n), ``alpha_init``
(the same fit of W0); the eigenvalues go to ``<layer>.eigenvalues``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from lth.analysis.level import Level, Result, layer_name

MIN_TAIL = 10  # the fewest eigenvalues a fitted tail holds


def power_law_fit(values: np.ndarray, min_tail: int = MIN_TAIL) -> dict[str, float | int | None]:
    """``alpha``, ``xmin``, ``ks_distance`` and ``tail`` of the best power-law fit of the positive
    ``values``' tail; all None when fewer than ``min_tail`` values are positive."""
    x = np.sort(values[values > 0].astype(float))
    n = len(x)
    if n < min_tail:
        return {"alpha": None, "xmin": None, "ks_distance": None, "tail": None}
    logs = np.log(x)
    suffix = np.cumsum(logs[::-1])[::-1]  # sum of logs from index i on
    best: tuple[float, float, float, int] = (np.inf, np.nan, np.nan, 0)
    for i in np.unique(x[: n - min_tail + 1], return_index=True)[1]:
        m = n - i
        spread = suffix[i] - m * logs[i]
        if spread <= 0:
            continue
        alpha = 1 + m / spread
        fitted = 1 - (x[i:] / x[i]) ** (1 - alpha)
        steps = np.arange(m) / m
        distance = max(np.abs(steps - fitted).max(), np.abs(steps + 1 / m - fitted).max())
        if distance < best[0]:
            best = (distance, alpha, x[i], m)
    distance, alpha, xmin, tail = best
    if tail == 0:
        return {"alpha": None, "xmin": None, "ks_distance": None, "tail": None}
    return {"alpha": float(alpha), "xmin": float(xmin), "ks_distance": float(distance), "tail": int(tail)}


def eigenvalues(weight: Tensor) -> Tensor:
    """Eigenvalues of W W^T (squared singular values), a conv weight's kh x kw slices pooled."""
    slices = weight.flatten(2).permute(2, 0, 1) if weight.dim() > 2 else weight.unsqueeze(0)
    return (torch.linalg.svdvals(slices.double()) ** 2).flatten()


def esd(level: Level) -> Result:
    """``{layer: {alpha, xmin, ks_distance, tail, alpha_init}}`` and each layer's eigenvalues."""
    summary: dict[str, Any] = {}
    tensors: dict[str, Tensor] = {}
    for name, mask in level.masks.items():
        layer = layer_name(name)
        trained = eigenvalues(level.weights[name].detach().cpu())
        start = eigenvalues(level.theta_0[name].detach().cpu() * mask.cpu())
        summary[layer] = power_law_fit(trained.numpy()) | {
            "alpha_init": power_law_fit(start.numpy())["alpha"]
        }
        tensors[f"{layer}.eigenvalues"] = trained.float()
    return summary, tensors
