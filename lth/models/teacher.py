"""The teacher of teacher-student regression (Tian et al., "Luck Matters"): a fixed random ReLU MLP."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lth.models.layers import WEIGHTED_MODULES
from lth.models.mlp import MLP

LUCK_MATTERS_VALUES = (-0.5, -0.25, 0.0, 0.25, 0.5)


def make_teacher(input_dim: int, hidden: Sequence[int], output_dim: int, weights: str, seed: int) -> MLP:
    """A frozen ReLU MLP drawn from ``seed``: ``gaussian`` N(0, 1/fan_in) weights and biases, or ``discrete``
    weights and biases from {-0.5, -0.25, 0, 0.25, 0.5} with each row (weights and bias) scaled to unit norm."""
    generator = torch.Generator().manual_seed(seed)
    teacher = MLP((input_dim,), output_dim, hidden)
    with torch.no_grad():
        for layer in (m for m in teacher.modules() if isinstance(m, WEIGHTED_MODULES)):
            shape = (layer.out_features, layer.in_features + 1)
            if weights == "gaussian":
                rows = torch.randn(shape, generator=generator) / layer.in_features**0.5
            else:
                values = torch.tensor(LUCK_MATTERS_VALUES)
                rows = values[torch.randint(len(values), shape, generator=generator)]
                rows = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
            layer.weight.copy_(rows[:, :-1])
            layer.bias.copy_(rows[:, -1])
    return teacher.requires_grad_(False).eval()
