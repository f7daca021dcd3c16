"""Node specialisation (Tian et al., "Luck Matters"): how well student hidden nodes match teacher nodes.

For hidden layer k of teacher and student (post-ReLU activations on a fixed input batch), ``corr[i, j]``
is the Pearson correlation of teacher node i with student node j (0 where a node is constant). Summary
per layer: the mean over teacher nodes of the best-matching student's correlation, and how many student
nodes match a teacher node above ``threshold`` (mean over teacher nodes, and the fraction of teacher
nodes matched at least once).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


@torch.no_grad()
def hidden_activations(model: nn.Sequential, x: Tensor) -> list[Tensor]:
    """Outputs of every ReLU of ``model`` on ``x``, each ``(samples, nodes)``."""
    out: list[Tensor] = []
    for module in model:
        x = module(x)
        if isinstance(module, nn.ReLU):
            out.append(x.flatten(1))
    return out


def pearson(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Correlation of every column of ``a`` (n, p) with every column of ``b`` (n, q): shape (p, q)."""
    a, b = a - a.mean(0), b - b.mean(0)
    a_norm, b_norm = a.norm(dim=0), b.norm(dim=0)
    corr = (a.T @ b) / (a_norm[:, None] * b_norm[None, :]).clamp_min(eps)
    constant = (a_norm[:, None] < eps) | (b_norm[None, :] < eps)
    return corr.masked_fill(constant, 0.0).clamp(-1.0, 1.0)


def specialisation(
    teacher: nn.Sequential, student: nn.Sequential, x: Tensor, threshold: float
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Per hidden layer (``layer1`` ...): summary numbers and the full ``(teacher, student)`` matrix.

    Layer k of the teacher is compared with layer k of the student; layers beyond the shallower one are skipped.
    """
    teacher_acts = hidden_activations(teacher, x.to(next(teacher.parameters()).device))
    student_acts = hidden_activations(student, x.to(next(student.parameters()).device))
    summary: dict[str, Any] = {}
    matrices: dict[str, Tensor] = {}
    for k, (t, s) in enumerate(zip(teacher_acts, student_acts, strict=False), start=1):
        corr = pearson(t.cpu().double(), s.cpu().double()).float()
        matches = (corr > threshold).sum(dim=1)
        summary[f"layer{k}"] = {
            "mean_best_corr": corr.max(dim=1).values.mean().item(),
            "mean_matches": matches.float().mean().item(),
            "teacher_nodes_matched": (matches > 0).float().mean().item(),
        }
        matrices[f"layer{k}"] = corr
    return summary, matrices
