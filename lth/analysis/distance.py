"""Distance from init (Neyshabur et al. 2018): per layer ||W - W0||_F and ||W - W0||_F / ||W0||_F.

Neyshabur et al. find the distance shrinks as the layers widen: bigger nets move less.
"""

from __future__ import annotations

from lth.analysis.level import Level, Result


def distance(level: Level) -> Result:
    """``{layer: {"frobenius": ||W - W0||_F, "relative": ||W - W0||_F / ||W0||_F}}``; no tensors."""
    summary = {}
    for layer, weight, start, _ in level.layers():
        moved = (weight - start).norm().item()
        summary[layer] = {"frobenius": moved, "relative": moved / max(start.norm().item(), 1e-12)}
    return summary, {}
