"""Node distribution of a ticket (the seed's own question): how the surviving weights of each layer
spread over its units, against the null of a uniformly random mask with the same per-layer count.

Per layer and side, ``counts[i]`` is the number of surviving weights of unit i: ``incoming`` (a row of
the ``(units, fan-in)`` matrix: a unit's or conv filter's inputs) or ``outgoing`` (an input unit's, or
input channel's, weights to the next units). With N weights of which K survive, in units of ``size``
each, a uniformly random mask gives every unit a Hypergeometric(N, size, K) count, jointly
multivariate hypergeometric. Recorded:

- ``expected``: K size / N, the null's mean count;
- ``dispersion``: the counts' mean squared deviation from ``expected`` over the null's exact variance
  K (size/N) (1 - size/N) (N - K)/(N - 1): 1 under the null, > 1 when survivors concentrate;
- ``p_value``: of the statistic sum_i (c_i - expected)^2 against ``draws`` exact draws of the null
  (a one-sided Monte Carlo test, (1 + #{null >= observed}) / (draws + 1));
- ``empty``, ``empty_null``: fraction of units with no surviving weight, and its exact null probability
  C(N - size, K) / C(N, K);
- ``gini``, ``gini_null``: the Gini coefficient of the counts, and its mean over the null draws;
- ``conditional``: given a unit keeps one weight, the probability that another of its weights survives,
  sum_i c_i (c_i - 1) / (K (size - 1)); ``conditional_null`` = (K - 1)/(N - 1); ``lift`` their ratio.

Conv masks ``(out, in, kh, kw)``: incoming counts per filter, outgoing per input channel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from torch import Tensor

from lth.analysis.level import Level, Result, layer_name
from lth.seeds import derived_seed


def gini(counts: np.ndarray) -> np.ndarray:
    """Gini coefficient of each row of non-negative ``counts`` (0: all equal; -> 1: all in one unit)."""
    counts = np.sort(np.atleast_2d(counts).astype(float), axis=-1)
    n = counts.shape[-1]
    total = counts.sum(-1)
    ranks = np.arange(1, n + 1)
    weighted = (counts * (2 * ranks - n - 1)).sum(-1)
    return np.divide(weighted, n * total, out=np.zeros_like(total), where=total > 0)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def empty_probability(total: int, size: int, kept: int) -> float:
    """P(a unit of ``size`` keeps none of ``kept`` survivors drawn from ``total``): C(N-s, K)/C(N, K)."""
    if kept > total - size:
        return 0.0
    log = math.lgamma(total - size + 1) - math.lgamma(total - size - kept + 1)
    return math.exp(log + math.lgamma(total - kept + 1) - math.lgamma(total + 1))


def spread(counts: Tensor, size: int, draws: int, rng: np.random.Generator) -> dict[str, Any]:
    """How ``counts`` (survivors per unit, each unit of ``size`` weights) compare with a random mask."""
    c = counts.double().cpu().numpy()
    units, kept = len(c), int(c.sum())
    total = units * size
    expected = kept * size / total
    null_var = kept * (size / total) * (1 - size / total) * (total - kept) / max(total - 1, 1)
    statistic = ((c - expected) ** 2).sum()
    null = rng.multivariate_hypergeometric([size] * units, kept, size=draws).astype(float)
    null_statistics = ((null - expected) ** 2).sum(-1)
    p_value = (1 + int((null_statistics >= statistic - 1e-9).sum())) / (draws + 1)
    conditional = _ratio(float((c * (c - 1)).sum()), kept * (size - 1))
    conditional_null = _ratio(kept - 1, total - 1) if kept else None
    return {
        "expected": expected,
        "dispersion": _ratio(float(((c - expected) ** 2).mean()), null_var),
        "p_value": p_value,
        "empty": float((c == 0).mean()),
        "empty_null": empty_probability(total, size, kept),
        "gini": float(gini(c)[0]),
        "gini_null": float(gini(null).mean()),
        "conditional": conditional,
        "conditional_null": conditional_null,
        "lift": None if conditional is None or not conditional_null else conditional / conditional_null,
    }


def node_distribution(level: Level, draws: int = 1000) -> Result:
    """``{layer: {"incoming": {...}, "outgoing": {...}}}`` (the numbers above), and the counts per unit
    (``<layer>.incoming``, ``<layer>.outgoing``)."""
    summary: dict[str, Any] = {}
    tensors: dict[str, Tensor] = {}
    for name, mask in level.masks.items():
        layer, mask = layer_name(name), mask.cpu()
        sides = {"incoming": mask.flatten(1), "outgoing": mask.transpose(0, 1).flatten(1)}
        summary[layer] = {}
        for side, matrix in sides.items():
            rng = np.random.default_rng(derived_seed(level.seed, f"node_distribution/{layer}/{side}"))
            counts = matrix.sum(1)
            summary[layer][side] = spread(counts, matrix.shape[1], draws, rng)
            tensors[f"{layer}.{side}"] = counts
    return summary, tensors
