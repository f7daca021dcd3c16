"""Each job's training curves (its optional ``curves.jsonl``): test accuracy and validation loss against
training iterations, a line per level."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from lth.report.jobs import Configs, Job, context, label, seed_of
from lth.report.plots import DPI, LEVEL_COLOURS, figure, legend_outside

CURVES_FILE = "curves.jsonl"
CURVES_FIGSIZE = (11.0, 4.8)


def read_curves(path: Path) -> list[dict[str, Any]]:
    """The evaluations of the job directory ``path``, from its optional ``curves.jsonl``; ``[]`` without it.

    ``curves.jsonl`` holds one JSON object per evaluation (every ``train.eval_every`` steps of a level and
    at its end), in the order they ran::

        {"level": 1, "step": 100, "train_loss": 0.41, "val_loss": 0.38, "val_acc": 0.87,
         "test_loss": 0.39, "test_acc": 0.86}

    ``level`` as in ``results.jsonl``; ``step`` counts from the level's start (as ``early_stop_step``);
    ``train_loss`` is the mean training loss since the previous evaluation; accuracies are fractions in
    [0, 1], ``null`` for regression; a non-finite loss is written as ``NaN`` or ``Infinity`` (Python's
    ``json``). A (level, step) written twice (a resumed job evaluates again from its checkpoint) counts
    once, the last line winning; a line that does not parse (cut short by a kill) is skipped.
    """
    file = path / CURVES_FILE
    if not file.exists():
        return []
    entries: dict[tuple[int, int], dict[str, Any]] = {}
    for line in file.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        entries[entry["level"], entry["step"]] = entry
    return sorted(entries.values(), key=lambda e: (e["level"], e["step"]))


def _finite(values: Iterable[float | None], scale: float) -> np.ndarray:
    array = np.array([math.nan if v is None else scale * v for v in values], dtype=float)
    return np.where(np.isfinite(array), array, math.nan)


def curves_figure(
    curves: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]], title: str
) -> Figure:
    """Frankle & Carbin's Figure 3 for one job: test accuracy (test loss for regression) and validation
    loss against training iterations, one line per level, labelled with its percent of weights remaining."""
    fig = figure(CURVES_FIGSIZE)
    axes = fig.subplots(1, 2)
    accuracy = any(e.get("test_acc") is not None for e in curves)
    first = ("test_acc", 100.0, "Test Accuracy (%)") if accuracy else ("test_loss", 1.0, "Test Loss")
    panels = (first, ("val_loss", 1.0, "Validation Loss"))
    remaining = {r["level"]: r["weights_remaining"] for r in records}
    levels = sorted({e["level"] for e in curves})
    for i, level in enumerate(levels):
        entries = [e for e in curves if e["level"] == level]
        color = LEVEL_COLOURS(0.9 * i / max(1, len(levels) - 1))  # viridis' last tenth is too pale
        text = f"{level}: {100 * remaining[level]:.3g}%" if level in remaining else f"{level}"
        for ax, (metric, scale, _) in zip(axes, panels, strict=True):
            values = _finite((e.get(metric) for e in entries), scale)
            ax.plot([e["step"] for e in entries], values, color=color, label=text)
    for ax, (_, _, ylabel) in zip(axes, panels, strict=True):
        ax.set_xlabel("Training Iterations")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    legend_outside(fig, *axes[0].get_legend_handles_labels(), title="level: weights left")
    return fig


def plot_curves(out: Path, root: Path, keys: Sequence[str], jobs: Iterable[Job], configs: Configs) -> None:
    """``curves.png`` for each job that has a ``curves.jsonl``: ``<out>/curves.png`` for a single run,
    ``<out>/curves/<job dir>/curves.png`` in a sweep."""
    for job in jobs:
        curves = read_curves(job.path)
        if not curves:
            continue
        config, relative = configs[job.path], job.path.relative_to(root)
        values = [job.overrides.get(k, "default") for k in keys]
        title = context([job], [config]).title(label([*keys, "seed"], [*values, seed_of(job, config)]))
        path = out / "curves.png" if relative == Path() else out / "curves" / relative / "curves.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        curves_figure(curves, job.records, title).savefig(path, dpi=DPI)
