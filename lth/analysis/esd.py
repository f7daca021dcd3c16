"""Empirical spectral density (Martin & Mahoney 2018): the eigenvalues of X = W W^T per layer and the
power-law exponent alpha of their tail.

Training moves the ESD from a Marchenko-Pastur bulk toward heavy tails; smaller alpha means more
implicit regularisation (2-4 in well-trained layers). Conv layers as weightwatcher treats them: each of
the kh x kw slices ``W[:, :, i, j]`` is a matrix, their eigenvalues pooled. The fit is the
``powerlaw`` package's (Alstott et al. 2014, the one under weightwatcher): Clauset, Shalizi & Newman's
(2009) continuous maximum-likelihood alpha for each candidate xmin, and the xmin whose fit has the least
Kolmogorov-Smirnov distance D to the tail's empirical distribution.
Recorded per layer: ``alpha``, ``xmin``, ``ks_distance`` (D, the goodness), ``tail`` (n), ``alpha_init``
(the same fit of W0); the eigenvalues go to ``<layer>.eigenvalues``.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lth.analysis.level import Level, Result, layer_name

MIN_TAIL = 10  # the fewest eigenvalues a fitted tail holds
EMPTY: dict[str, float | int | None] = {"alpha": None, "xmin": None, "ks_distance": None, "tail": None}


def power_law_fit(values: np.ndarray, min_tail: int = MIN_TAIL) -> dict[str, float | int | None]:
    """``alpha``, ``xmin``, ``ks_distance`` and ``tail`` of ``powerlaw``'s fit of the positive ``values``'
    tail; all None when fewer than ``min_tail`` values are positive or no fit is found."""
    import powerlaw  # here, not at the top: checking a config must not import it

    x = np.sort(values[values > 0].astype(float))
    if len(x) < min_tail:
        return dict(EMPTY)
    with warnings.catch_warnings(), np.errstate(all="ignore"), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        # xmin: x[0] .. x[last], each leaving a tail of at least min_tail (powerlaw searches a range's
        # values below its end but one); alpha unbounded above (powerlaw 2's default stops at 3)
        last = len(x) - min_tail
        xmin = x[0] if last == 0 else (x[0], x[min(last + 2, len(x) - 1)])
        fit = powerlaw.Fit(x, xmin=xmin, verbose=False, parameter_ranges={"alpha": [1, None]})
        if not np.isfinite(fit.xmin):  # fewer than two distinct candidates for xmin
            return dict(EMPTY)
        law = fit.power_law
        alpha, xmin, distance, tail = law.alpha, law.xmin, law.D, law.n
    if not np.isfinite([alpha, xmin, distance]).all() or tail < min_tail:
        return dict(EMPTY)
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
