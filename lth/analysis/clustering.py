"""Weight clustering (Brutzkus & Globerson 2019): do the incoming weight vectors of a layer's units
cluster around a few directions after training?

Per layer with at least ``k`` units: the rows of the ``(units, fan-in)`` matrix (a unit's or conv
filter's surviving incoming weights; all-zero rows left out), normalised to unit length, clustered by
K-means (scikit-learn, ``k`` centres, seeded); each vector's angle to its centre, in degrees. The same
for W0 (theta_0 under the mask). Recorded: ``mean_angle``, ``within_15`` (fraction within 15 degrees)
and ``mean_angle_init``, ``within_15_init``; tensors ``<layer>.angles``, ``<layer>.angles_init``,
``<layer>.centres``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from lth.analysis.level import Level, Result
from lth.seeds import derived_seed

CLOSE_DEGREES = 15.0


def cluster_angles(vectors: Tensor, k: int, seed: int) -> tuple[Tensor, Tensor]:
    """K-means of the non-zero rows of ``vectors``, normalised: each row's angle (degrees) to its
    centre, and the centres (unit length)."""
    from sklearn.cluster import KMeans  # scikit-learn loads in ~1 s: only when clustering runs

    rows = vectors[vectors.norm(dim=1) > 0].double()
    unit = (rows / rows.norm(dim=1, keepdim=True)).numpy()
    fit = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(unit)
    centres = fit.cluster_centers_ / np.linalg.norm(fit.cluster_centers_, axis=1, keepdims=True).clip(1e-12)
    cosines = (unit * centres[fit.labels_]).sum(1).clip(-1.0, 1.0)
    return torch.from_numpy(np.degrees(np.arccos(cosines))), torch.from_numpy(centres)


def clustering(level: Level, k: int = 4) -> Result:
    """``{layer: {mean_angle, within_15, mean_angle_init, within_15_init}}`` (layers with >= k units)."""
    summary: dict[str, Any] = {}
    tensors: dict[str, Tensor] = {}
    for layer, weight, start, _ in level.layers():
        if min((weight.norm(dim=1) > 0).sum(), (start.norm(dim=1) > 0).sum()) < k:
            continue
        seed = derived_seed(level.seed, f"clustering/{layer}")
        angles, centres = cluster_angles(weight, k, seed)
        angles_init, _ = cluster_angles(start, k, seed)
        summary[layer] = {
            "mean_angle": float(angles.mean()),
            "within_15": float((angles <= CLOSE_DEGREES).double().mean()),
            "mean_angle_init": float(angles_init.mean()),
            "within_15_init": float((angles_init <= CLOSE_DEGREES).double().mean()),
        }
        tensors |= {f"{layer}.angles": angles.float(), f"{layer}.angles_init": angles_init.float()}
        tensors[f"{layer}.centres"] = centres.float()
    return summary, tensors
