"""The report's summary plots against percent of weights remaining (accuracy, early stop, each analysis)
and against the width multiplier: a line style per group, matplotlib figures rendered by Agg."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from lth.report.jobs import Context, Group, label
from lth.report.tables import Row, group_sizes, seeds_text

DPI = 100
PANEL_SIZE = (5.5, 4.8)  # inches per panel of the summary plots, before the legend widens the figure
WEIGHTS_LABEL = "Percent of Weights Remaining"
TICK_GAP_PX = 6.0  # the least space between two x tick labels
LEGEND_ROWS = 14  # entries per legend column: a taller one would reach the title
COLOURS: tuple[tuple[float, ...], ...] = tuple(colormaps["tab10"].colors)
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LEVEL_COLOURS = colormaps["viridis"]

Limits = tuple[float, float]  # the possible range of a metric
Panel = tuple[str, str]  # (metric, panel title)


# --- groups: line style ---------------------------------------------------------------------------------


def legend_label(keys: Sequence[str], group: Group, size: tuple[int, int]) -> str:
    lo, hi = size
    return f"{label(keys, group)} (n={lo if lo == hi else f'{lo}-{hi}'})"


@dataclass(frozen=True)
class Style:
    color: tuple[float, ...]
    linestyle: str
    marker: str
    order: tuple[int, int]  # (colour, style) index: the legend lists groups by colour, then style


def group_styles(groups: Sequence[Group]) -> dict[Group, Style]:
    """Colour for the swept factor with the most values (the first on ties), line style and marker for
    the combination of the others (one factor: colour only)."""
    width = len(groups[0]) if groups else 0
    first = max(range(width), key=lambda i: len({g[i] for g in groups}), default=0)
    split = {g: (g[first : first + 1], g[:first] + g[first + 1 :]) for g in groups}
    colours = list(dict.fromkeys(c for c, _ in split.values()))
    rests = list(dict.fromkeys(r for _, r in split.values()))
    styles = {}
    for g, (c, r) in split.items():
        ci = colours.index(c)
        si = rests.index(r) + len(rests) * (ci // len(COLOURS))  # past the palette: a new style, too
        styles[g] = Style(
            COLOURS[ci % len(COLOURS)],
            LINE_STYLES[si % len(LINE_STYLES)],
            MARKERS[si % len(MARKERS)],
            (ci, si),
        )
    return styles


# --- plots ----------------------------------------------------------------------------------------------


def band(mean: np.ndarray, std: np.ndarray, limits: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """mean ± std clipped to the possible range ``limits``; nan (no band) where std is (a single seed)."""
    return np.clip(mean - std, *limits), np.clip(mean + std, *limits)


def _weights_axis(ax: Axes, rows: Sequence[Row]) -> None:
    """Log x axis from 100% down to the sparsest level, a tick at every level (as in Frankle & Carbin)."""
    percents = sorted({float(f"{100 * r.weights_remaining:.3g}") for r in rows}, reverse=True)
    ax.set_xscale("log")
    ax.set_xlim(percents[0] * 1.08, percents[-1] / 1.08)
    ax.xaxis.set_major_locator(FixedLocator(percents))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(WEIGHTS_LABEL)
    ax.grid(True, alpha=0.3)


def _thin_ticks(ax: Axes) -> None:
    """Drop each x tick whose label, as drawn, would overlap the label of the kept tick to its left."""
    ticks = sorted(ax.xaxis.get_major_ticks(), key=lambda t: t.label1.get_window_extent().x0)
    kept, right = [], -math.inf
    for tick in ticks:
        box = tick.label1.get_window_extent()
        if box.x0 >= right + TICK_GAP_PX:
            kept.append(tick.get_loc())
            right = box.x1
    ax.xaxis.set_major_locator(FixedLocator(kept))


def _plot_group(
    ax: Axes, rows: Sequence[Row], metric: str, scale: float, limits: Limits, style: Style
) -> None:
    points = [r for r in rows if not math.isnan(r.stats.get(metric, (math.nan,))[0])]
    x = np.array([100 * r.weights_remaining for r in points])
    mean = np.array([scale * r.stats[metric][0] for r in points])
    std = np.array([scale * r.stats[metric][1] for r in points])
    ax.plot(x, mean, color=style.color, linestyle=style.linestyle, marker=style.marker, markersize=4)
    ax.fill_between(x, *band(mean, std, limits), color=style.color, alpha=0.15, linewidth=0)


def figure(figsize: tuple[float, float]) -> Figure:
    """A figure rendered by Agg, outside pyplot (no global state, no display needed)."""
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def legend_outside(fig: Figure, handles: Sequence[Artist], labels: Sequence[str], title: str | None) -> None:
    """A figure legend right of the axes; the figure is widened by its width, so the axes keep theirs."""
    ncols = 1 + (len(handles) - 1) // LEGEND_ROWS
    legend = fig.legend(
        handles, labels, loc="outside right center", fontsize="small", ncols=ncols, title=title
    )
    fig.canvas.draw()
    fig.set_figwidth(fig.get_figwidth() + legend.get_window_extent().width / fig.dpi)
    fig.canvas.draw()


def summary_figure(
    keys: Sequence[str],
    rows: Sequence[Row],
    ctx: Context,
    panels: Sequence[Panel],
    scale: float,
    limits: Limits,
) -> Figure:
    """One panel per (metric, title) against percent of weights remaining, a line and ± std band per group,
    the legend right of the panels, the context (dataset, model, optimizer, n seeds) as the title."""
    fig = figure((PANEL_SIZE[0] * len(panels), PANEL_SIZE[1]))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    styles = group_styles(list(dict.fromkeys(r.group for r in rows)))
    groups = sorted(styles, key=lambda g: styles[g].order)
    for ax, (metric, title) in zip(axes, panels, strict=True):
        for group in groups:
            _plot_group(ax, [r for r in rows if r.group == group], metric, scale, limits, styles[group])
        _weights_axis(ax, rows)
        ax.set_title(title)
    sizes = group_sizes(rows)
    fig.suptitle(ctx.title(seeds_text(sizes)))
    labels = [legend_label(keys, g, sizes[g]) for g in groups]
    legend_outside(fig, axes[0].get_lines(), labels, title=None)
    for ax in axes:
        _thin_ticks(ax)
    return fig


def accuracy_figure(keys: Sequence[str], rows: Sequence[Row], ctx: Context) -> Figure:
    """Test accuracy at the end of training and at early stop; bands clipped to [0, 100]."""
    panels = (("test_acc", "End of training"), ("test_acc_at_early_stop", "At early stop"))
    fig = summary_figure(keys, rows, ctx, panels, scale=100, limits=(0.0, 100.0))
    fig.axes[0].set_ylabel("Test Accuracy (%)")
    return fig


def early_stop_figure(keys: Sequence[str], rows: Sequence[Row], ctx: Context) -> Figure:
    """Early-stop iteration; bands clipped to [0, the most steps a level trained]."""
    top = math.inf if ctx.max_steps is None else float(ctx.max_steps)
    fig = summary_figure(keys, rows, ctx, (("early_stop_step", ""),), scale=1, limits=(0.0, top))
    fig.axes[0].set_ylabel("Early-Stop Iteration (Val.)")
    fig.axes[0].set_ylim(bottom=0)
    return fig


# --- the analyses -------------------------------------------------------------------------------------

HEADLINES = {  # what each analysis's plots show, per layer
    "distance": ("relative",),
    "node_distribution": ("incoming.dispersion", "incoming.lift", "incoming.empty"),
    "mask_overlap": ("jaccard",),
    "update_spectrum": ("effective_rank", "rank90"),
    "esd": ("alpha",),
    "clustering": ("mean_angle", "within_15"),
    "units": ("repeated", "removable"),
}
WIDTH = "model.width_multiplier"


def analysis_panels(rows: Sequence[Row]) -> dict[tuple[str, str], list[Panel]]:
    """(analysis, measure) -> a (metric, layer) panel per layer the rows recorded it for."""
    metrics = list(dict.fromkeys(m for r in rows for m in r.stats if m.startswith("analysis.")))
    panels: dict[tuple[str, str], list[Panel]] = {}
    for name, measures in HEADLINES.items():
        for measure in measures:
            start, end = f"analysis.{name}.", f".{measure}"
            found = [
                (m, m[len(start) : -len(end)]) for m in metrics if m.startswith(start) and m.endswith(end)
            ]
            if found:
                panels[name, measure] = found
    return panels


def width_figure(keys: Sequence[str], rows: Sequence[Row], ctx: Context, panels: Sequence[Panel]) -> Figure:
    """Each panel's metric against ``model.width_multiplier`` (log scale), a line per level (and per
    value of the other swept keys, by line style), mean ± std over seeds."""
    fig = figure((PANEL_SIZE[0] * len(panels), PANEL_SIZE[1]))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    at = keys.index(WIDTH)
    others = list(dict.fromkeys(r.group[:at] + r.group[at + 1 :] for r in rows))
    levels = sorted({r.level for r in rows})
    for ax, (metric, title) in zip(axes, panels, strict=True):
        for level, other in itertools.product(levels, others):
            line = sorted(
                (float(r.group[at]), r)
                for r in rows
                if r.level == level and r.group[:at] + r.group[at + 1 :] == other
            )
            line = [(w, r) for w, r in line if not math.isnan(r.stats.get(metric, (math.nan,))[0])]
            if not line:
                continue
            x = np.array([w for w, _ in line])
            mean, std = (np.array([r.stats[metric][i] for _, r in line]) for i in (0, 1))
            color = LEVEL_COLOURS(0.9 * levels.index(level) / max(1, len(levels) - 1))
            style = LINE_STYLES[others.index(other) % len(LINE_STYLES)]
            text = f"level {level}" + (f", {label([k for k in keys if k != WIDTH], other)}" if other else "")
            ax.plot(x, mean, color=color, linestyle=style, marker="o", markersize=4, label=text)
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.15, linewidth=0)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.set_xlabel("Width Multiplier")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    fig.suptitle(ctx.title(seeds_text(group_sizes(rows))))
    legend_outside(fig, *axes[0].get_legend_handles_labels(), title=None)
    return fig


def plot_analyses(out: Path, keys: Sequence[str], rows: Sequence[Row], ctx: Context) -> None:
    """``analysis/<name>.<measure>.png`` per recorded analysis measure (and ``.width.png``)."""
    for (name, measure), panels in analysis_panels(rows).items():
        (out / "analysis").mkdir(parents=True, exist_ok=True)
        path = out / "analysis" / f"{name}.{measure}"
        fig = summary_figure(keys, rows, ctx, panels, scale=1, limits=(-math.inf, math.inf))
        fig.axes[0].set_ylabel(f"{name}: {measure}")
        fig.savefig(f"{path}.png", dpi=DPI)
        if WIDTH in keys:
            fig = width_figure(keys, rows, ctx, panels)
            fig.axes[0].set_ylabel(f"{name}: {measure}")
            fig.savefig(f"{path}.width.png", dpi=DPI)
