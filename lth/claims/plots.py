"""The figures of the claims: lines over weights remaining, bars per arm, a chance or threshold line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lth.claims.measure import Curve

PANEL = (5.2, 4.0)  # inches per panel
DPI = 100


def figure(panels: int, title: str) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(PANEL[0] * panels, PANEL[1]), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, panels, k + 1) for k in range(panels)]
    fig.suptitle(title, fontsize=10)
    return fig, axes


def lines(ax: Axes, curves: Mapping[str, Curve], ylabel: str, scale: float = 100.0) -> None:
    """Each arm's mean over seeds (band: one std) against the percent of weights remaining, log x."""
    for label, c in curves.items():
        x = c.weights * 100
        ax.plot(x, c.mean * scale, marker="o", markersize=3, label=label)
        ax.fill_between(x, (c.mean - c.std) * scale, (c.mean + c.std) * scale, alpha=0.2)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ticks = sorted({round(float(w) * 100, 1) for c in curves.values() for w in c.weights})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks], fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel("percent of weights remaining")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def colour(label: str) -> str | None:
    """The same colour for the same kind of arm across bars: dense grey, magnitude blue, random orange."""
    for word, c in (("dense", "grey"), ("magnitude", "C0"), ("random", "C1")):
        if label.startswith(word):
            return c
    return None


def bars(ax: Axes, groups: Mapping[str, Sequence[float]], ylabel: str, scale: float = 100.0) -> None:
    """One bar per arm at its mean (error bar: one std), every seed's value as a dot."""
    for k, (label, found) in enumerate(groups.items()):
        v = np.asarray(found, dtype=float) * scale
        ax.bar(
            k, v.mean(), yerr=v.std(ddof=1) if len(v) > 1 else 0, capsize=4, alpha=0.6, color=colour(label)
        )
        ax.plot(np.full(len(v), k), v, "k.", markersize=5)
    ax.set_xticks(range(len(groups)), list(groups), rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)


def hline(ax: Axes, y: float, label: str) -> None:
    ax.axhline(y, color="grey", linestyle="--", linewidth=1, label=label)
    ax.legend(fontsize=7)


def save(fig: Figure, path: Path) -> None:
    fig.savefig(path)
