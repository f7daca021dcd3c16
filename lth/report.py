"""Aggregate a sweep (or a single run) directory into tables and plots, from the jobs' own files only.

``python -m lth.report <sweep or run dir> [--out DIR]`` reads each job's ``results.jsonl``,
``.hydra/overrides.yaml``, ``DONE``, ``config.yaml`` and, if there, ``curves.jsonl`` and ``meta.json`` (never W&B), groups
the jobs by every override that varies across them except ``seed``, and aggregates each level over the
seeds of a group (mean, sample std, n). Only levels with status ``ok`` enter the aggregates; every job
that is not complete (no ``DONE``: unfinished or killed; or a ``DONE`` status other than ``complete``) or
has a level that is not ``ok`` is listed under "Problems". A job whose ``results.jsonl`` or ``DONE`` is
damaged is skipped with a one-line warning (and listed under "Problems"). The code and library versions
the jobs ran with (``meta.json``) are listed, with a warning when they differ. Writes into ``<dir>/report/``:

```
summary.csv      one row per group and level: weights_remaining, n, <metric>_mean, <metric>_std
summary.md       the same as a Markdown table, plus the provenance and the problems
jobs.csv         one row per job: path, the grouping overrides, seed, status, levels recorded, problem
accuracy.png     test accuracy at the end of training and at early stop vs. percent of weights remaining
early_stop.png   early-stop iteration vs. percent of weights remaining
curves.png       a single run with curves.jsonl: test accuracy and val loss vs. step, a line per level
curves/<job>/curves.png   the same for each job of a sweep that has curves.jsonl
analysis/<name>.<measure>.png   each recorded analysis (results.jsonl "analysis") vs. percent of weights
                 remaining, a panel per layer; <name>.<measure>.width.png against model.width_multiplier
                 when the sweep varies it (a line per level)
mask_overlap.csv the mean pairwise Jaccard overlap of the masks (levels/level_NN/masks.pt, all prunable
                 weights) at each level: between the seeds of each group, and between init strategies
                 (jobs alike in every other override and the seed); absent when no job saved masks
analysis/mask_overlap.seeds.png   the overlap between seeds vs. percent of weights remaining
```
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
from omegaconf import OmegaConf

from lth.analysis.mask_overlap import overall
from lth.analysis.suite import flatten
from lth.lottery.record import ANALYSIS
from lth.lottery.record import REPORT_METRICS as METRICS
from lth.run.naming import natural_key
from lth.run.readers import DamagedFile, read_job_files, read_meta, read_overrides

IGNORED_KEYS = ("seed", "train.replicates")  # replicates are seeds
CURVES_FILE = "curves.jsonl"
DPI = 100
PANEL_SIZE = (5.5, 4.8)  # inches per panel of the summary plots, before the legend widens the figure
CURVES_FIGSIZE = (11.0, 4.8)
WEIGHTS_LABEL = "Percent of Weights Remaining"
TICK_GAP_PX = 6.0  # the least space between two x tick labels
LEGEND_ROWS = 14  # entries per legend column: a taller one would reach the title
COLOURS: tuple[tuple[float, ...], ...] = tuple(colormaps["tab10"].colors)
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LEVEL_COLOURS = colormaps["viridis"]
OPTIMIZERS = {"sgd": "SGD", "adam": "Adam"}

Group = tuple[str, ...]  # a group's value of each varying override key
Limits = tuple[float, float]  # the possible range of a metric
Panel = tuple[str, str]  # (metric, panel title)
Configs = Mapping[Path, Mapping[str, Any]]  # job directory -> its resolved config


@dataclass
class Job:
    """One job directory as written by ``lth.train``."""

    path: Path
    overrides: dict[str, str]
    records: list[dict[str, Any]]
    done: dict[str, Any] | None
    damage: str | None = None  # why its files cannot be read; the job is skipped
    meta: dict[str, Any] | None = None  # its meta.json (None: absent or damaged)

    @property
    def status(self) -> str:
        if self.damage:
            return "damaged"
        return "unfinished" if self.done is None else str(self.done["status"])

    @property
    def problem(self) -> str | None:
        """Why the job is not a clean, complete lottery (None if it is)."""
        if self.damage:
            return self.damage
        bad = [r for r in self.records if r.get("status") != "ok"]
        if self.status == "complete" and not bad:
            return None
        text = f"{self.status}: {len(self.records)} level(s) recorded"
        if bad:
            text += f"; level {bad[0]['level']} {bad[0].get('status')}"
        return text


@dataclass
class Row:
    """One group at one level, aggregated over its seeds."""

    group: tuple[str, ...]
    level: int
    weights_remaining: float
    n: int
    stats: dict[str, tuple[float, float]]  # metric -> (mean, sample std)


def _parse_override(text: str) -> tuple[str, str]:
    key, _, value = text.lstrip("+~").partition("=")
    return key, value


def load_job(path: Path) -> Job:
    """A job directory; replicate ``k`` of a ``train.replicates`` job (``<job>/replicate_k``) is a job of
    its own, with the stack's overrides and its own seed."""
    stack = path.parent if path.name.startswith("replicate_") else path
    parsed: dict[str, str] = {}
    try:
        parsed = dict(_parse_override(o) for o in read_overrides(stack / ".hydra" / "overrides.yaml"))
        if stack != path:
            parsed |= {"seed": str(read_config(path).get("seed", ""))}
        job = Job(path, parsed, *read_job_files(path))
    except DamagedFile as exc:
        return Job(path, parsed, [], None, damage=str(exc).removeprefix("lth: "))
    try:
        job.meta = read_meta(path / "meta.json")
    except DamagedFile as exc:  # the results stand; only their provenance is unknown
        print(f"lth.report: warning: {str(exc).removeprefix('lth: ')}", file=sys.stderr)
    return job


def find_jobs(root: Path) -> list[Job]:
    """Every job directory at or below ``root``: where Hydra or lth wrote a job's files (a
    ``train.replicates`` job's replicates, not the job itself)."""
    dirs = {p.parent for name in ("results.jsonl", "DONE") for p in root.rglob(name)}
    dirs |= {p.parent.parent for p in root.rglob(".hydra/overrides.yaml")}
    # not W&B's files, nor a hidden directory's (a stacked sweep's stacks, .stacks/: their lotteries are jobs)
    jobs = [
        d
        for d in sorted(dirs)
        if not any(part == "wandb" or part.startswith(".") for part in d.relative_to(root).parts)
    ]
    return [load_job(d) for d in jobs if not (d / "replicate_0").is_dir()]


def varying_keys(jobs: Sequence[Job]) -> list[str]:
    """Override keys whose value differs between jobs (a key some jobs lack counts), minus the seed."""
    keys = list(dict.fromkeys(k for job in jobs for k in job.overrides))
    return [k for k in keys if k not in IGNORED_KEYS and len({job.overrides.get(k) for job in jobs}) > 1]


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else math.nan


def _sort_key(value: str | None) -> tuple[int, float, str]:
    try:
        return 0, float(value or ""), ""
    except ValueError:
        return 1, 0.0, value or ""


def aggregate(jobs: Sequence[Job], keys: Sequence[str]) -> list[Row]:
    """Mean, sample std and n over the seeds of each group, per level; only ``ok`` levels count. The
    analyses' numbers enter the stats as ``analysis.<name>.<layer>.<measure>``."""
    by_level: dict[tuple[tuple[str, ...], int], list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        group = tuple(job.overrides.get(k, "default") for k in keys)
        for record in job.records:
            if record.get("status") == "ok":
                by_level[group, record["level"]].append(
                    record | flatten(record.get(ANALYSIS, {}), "analysis.")
                )
    rows = []
    for (group, level), records in by_level.items():
        metrics = dict.fromkeys([*METRICS, *(k for r in records for k in r if k.startswith("analysis."))])
        stats = {m: _mean_std([r[m] for r in records if isinstance(r.get(m), int | float)]) for m in metrics}
        weights = float(np.mean([r["weights_remaining"] for r in records]))
        rows.append(Row(group, level, weights, len(records), stats))
    return sorted(rows, key=lambda r: ([_sort_key(v) for v in r.group], r.level))


def label(keys: Sequence[str], group: Sequence[str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(keys, group, strict=True)) or "all jobs"


# --- the jobs' configs: context for the titles, the seed of a job that did not sweep it -----------------


def read_config(path: Path) -> dict[str, Any]:
    """The resolved ``config.yaml`` lth wrote into the job directory ``path``; ``{}`` if absent or unreadable."""
    try:
        config = OmegaConf.to_container(OmegaConf.load(path / "config.yaml"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}


def seed_of(job: Job, config: Mapping[str, Any]) -> str:
    """The job's seed: its override, else its config's, else ``""`` (unknown)."""
    return job.overrides.get("seed", str(config.get("seed", "")))


def _class_name(target: object, suffix: str = "") -> str:
    name = str(target).rsplit(".", 1)[-1]
    return name.removesuffix(suffix) or name


def describe_model(model: Mapping[str, Any]) -> str:
    """The model's class and size: ``MLP 100-100``, ``ConvNet 2 conv, fc 256-256``, ``ResNet-20``."""
    text = _class_name(model.get("_target_", "?"))
    if "depth" in model:
        text += f"-{model['depth']}"
    convs = sum(1 for item in model.get("plan") or [] if item != "M")
    if convs:
        text += f" {convs} conv"
    multiplier = model.get("width_multiplier", 1)
    widths = [max(1, round(multiplier * w)) for w in model.get("hidden") or model.get("teacher_hidden") or []]
    if widths:
        text += (", fc " if convs else " ") + "-".join(map(str, widths))
    return text


def _describe_optimizer(optim: Mapping[str, Any]) -> str:
    name = str(optim.get("name", "?"))
    return OPTIMIZERS.get(name, name)


@dataclass(frozen=True)
class Context:
    """What a report's jobs trained, from their configs: each field lists the distinct values, ' / '-joined."""

    dataset: str
    model: str
    optimizer: str
    max_steps: int | None  # the most steps of a level (records' steps, train.steps): bounds early stop

    def title(self, *more: str) -> str:
        return " · ".join(part for part in (self.dataset, self.model, self.optimizer, *more) if part)


def context(jobs: Sequence[Job], configs: Sequence[Mapping[str, Any]]) -> Context:
    """The context of ``jobs`` from their ``configs`` (an empty config, a missing file, adds nothing)."""
    known = [c for c in configs if c]

    def values(describe: Callable[[Mapping[str, Any]], str]) -> str:
        return " / ".join(dict.fromkeys(describe(c) for c in known))

    steps = [r["steps"] for job in jobs for r in job.records if isinstance(r.get("steps"), int)]
    steps += [c["train"]["steps"] for c in known if isinstance(c.get("train", {}).get("steps"), int)]
    return Context(
        values(lambda c: _class_name(c.get("data", {}).get("_target_", "?"), "DataModule")),
        values(lambda c: describe_model(c.get("model", {}))),
        values(lambda c: _describe_optimizer(c.get("optim", {}))),
        max(steps, default=None),
    )


# --- tables -------------------------------------------------------------------------------------------


def csv_number(column: str, value: float) -> float | int | str:
    """``value`` rounded to what ``column`` means: accuracies and weights remaining (fractions) to 4
    decimals (0.01 percentage points), steps to integers, anything else (losses) to 4 significant digits."""
    if not math.isfinite(value):
        return str(value)
    if "acc" in column or column.startswith("weights_remaining"):
        return round(value, 4)
    if "step" in column:
        return round(value)
    return float(f"{value:.4g}")


def write_csv(path: Path, keys: Sequence[str], rows: Iterable[Row]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        stats = [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]
        writer.writerow([*keys, "level", "weights_remaining", "n", *stats])
        for r in rows:
            values = [v for m in METRICS for v in r.stats[m]]
            numbers = [csv_number(column, v) for column, v in zip(stats, values, strict=True)]
            weights = csv_number("weights_remaining", r.weights_remaining)
            writer.writerow([*r.group, r.level, weights, r.n, *numbers])


def write_jobs_csv(
    path: Path, keys: Sequence[str], jobs: Iterable[Job], root: Path, configs: Configs
) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["job", *keys, "seed", "status", "levels", "problem"])
        for job in jobs:
            values = [job.overrides.get(k, "default") for k in keys]
            seed = seed_of(job, configs[job.path])
            relative = job.path.relative_to(root)
            writer.writerow([relative, *values, seed, job.status, len(job.records), job.problem or ""])


def _pm(mean: float, std: float, scale: float = 1.0, digits: int = 2) -> str:
    if math.isnan(mean):
        return "-"
    text = f"{scale * mean:.{digits}f}"
    return text if math.isnan(std) else f"{text} ± {scale * std:.{digits}f}"


def markdown(keys: Sequence[str], rows: Sequence[Row], jobs: Sequence[Job], root: Path, ctx: Context) -> str:
    """The summary table (accuracies in %, mean ± sample std over n seeds) and the problems list."""
    head = ["group", "level", "weights %", "n", "test acc %", "test acc % @ early stop", "early-stop iter"]
    skipped = sum(1 for job in jobs if job.damage)
    count = f"{len(jobs)} job(s)" + (f", {skipped} skipped (damaged files)" if skipped else "")
    lines = [f"# lth report: {root}", "", ctx.title(seeds_text(group_sizes(rows))), ""]
    lines += [f"{count}; groups by: {', '.join(keys) or '-'}", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [
            label(keys, r.group),
            str(r.level),
            f"{100 * r.weights_remaining:.2f}",
            str(r.n),
            _pm(*r.stats["test_acc"], scale=100),
            _pm(*r.stats["test_acc_at_early_stop"], scale=100),
            _pm(*r.stats["early_stop_step"], digits=0),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += provenance_markdown(provenance(jobs, root), jobs)
    problems = [(job, job.problem) for job in jobs if job.problem]
    lines += ["", "## Problems", ""]
    lines += [f"- `{job.path.relative_to(root)}`: {problem}" for job, problem in problems] or ["none"]
    return "\n".join(lines) + "\n"


# --- provenance: the code and library versions the jobs ran with ------------------------------------


def provenance_values(meta: Mapping[str, Any]) -> dict[str, str]:
    """One start's code and versions by label: ``lth``, ``commit`` (12 hex digits, `` (dirty)`` with
    uncommitted changes, ``none`` outside a git checkout), ``python``, ``torch``, ..."""
    commit = meta.get("git_commit")
    text = "none" if commit is None else str(commit)[:12] + (" (dirty)" if meta.get("git_dirty") else "")
    versions = {name: str(version) for name, version in (meta.get("versions") or {}).items()}
    return {"lth": str(meta.get("lth_version")), "commit": text} | versions


def provenance(jobs: Sequence[Job], root: Path) -> dict[str, dict[str, list[str]]]:
    """For each label, each value the jobs ran with and the jobs (relative paths) that ran with it; a
    resumed job counts every start."""
    found: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for job in jobs:
        for start in (job.meta or {}).get("starts") or ([job.meta] if job.meta else []):
            for key, value in provenance_values(start).items():
                names = found[key].setdefault(value, [])
                if str(job.path.relative_to(root)) not in names:
                    names.append(str(job.path.relative_to(root)))
    return dict(found)


def _count(names: Sequence[str]) -> str:
    return f"{len(names)} job" + "s" * (len(names) != 1)


def provenance_warnings(found: Mapping[str, Mapping[str, Sequence[str]]]) -> list[str]:
    """One line for each label whose value differs between the jobs."""
    return [
        f"the jobs ran with different {key}: " + ", ".join(f"{v} ({_count(n)})" for v, n in values.items())
        for key, values in found.items()
        if len(values) > 1
    ]


def provenance_markdown(found: Mapping[str, Mapping[str, Sequence[str]]], jobs: Sequence[Job]) -> list[str]:
    """The Provenance section: one line per label, the jobs of each value where they differ."""
    lines = ["", "## Provenance", ""]
    for key, values in found.items():
        if len(values) == 1:
            lines.append(f"- {key}: {next(iter(values))}")
            continue
        lines.append(f"- **{key} differs**:")
        lines += [f"  - {value}: " + ", ".join(f"`{n}`" for n in names) for value, names in values.items()]
    unknown = [job for job in jobs if job.meta is None and not job.damage]
    if unknown:
        lines.append(f"- unknown (no readable meta.json): {_count(unknown)}")
    return lines


# --- groups: n and line style ---------------------------------------------------------------------------


def group_sizes(rows: Iterable[Row]) -> dict[Group, tuple[int, int]]:
    """The fewest and the most seeds of each group over its levels (n shrinks where seeds died)."""
    sizes: dict[Group, list[int]] = defaultdict(list)
    for r in rows:
        sizes[r.group].append(r.n)
    return {group: (min(n), max(n)) for group, n in sizes.items()}


def seeds_text(sizes: Mapping[Group, tuple[int, int]]) -> str:
    """``n=3 seeds`` if every group has as many, else the range with a pointer to the legend."""
    most = sorted({hi for _, hi in sizes.values()})
    if len(most) == 1:
        return f"n={most[0]} seed" + "s" * (most[0] != 1)
    return f"n={most[0]}-{most[-1]} seeds per group" if most else ""


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


def _figure(figsize: tuple[float, float]) -> Figure:
    """A figure rendered by Agg, outside pyplot (no global state, no display needed)."""
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _legend_outside(fig: Figure, handles: Sequence[Artist], labels: Sequence[str], title: str | None) -> None:
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
    fig = _figure((PANEL_SIZE[0] * len(panels), PANEL_SIZE[1]))
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
    _legend_outside(fig, axes[0].get_lines(), labels, title=None)
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
    fig = _figure((PANEL_SIZE[0] * len(panels), PANEL_SIZE[1]))
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
    _legend_outside(fig, *axes[0].get_legend_handles_labels(), title=None)
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
    fig = _figure(CURVES_FIGSIZE)
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
    _legend_outside(fig, *axes[0].get_legend_handles_labels(), title="level: weights left")
    return fig


# --- mask overlap between seeds and between init strategies ------------------------------------------

MASKS_FILE = "masks.pt"
INIT = "init"


@dataclass
class Overlap:
    """The mean pairwise Jaccard overlap of all prunable weights' masks at one level: between the seeds of
    a group, or between two init strategies (same other overrides, same seed)."""

    between: str  # "seeds", or "init=a vs init=b"
    group: Group  # the group's values of the varying keys (for init pairs: init itself left out)
    level: int
    weights_remaining: float
    jaccard: tuple[float, float]  # (mean, sample std) over the pairs
    pairs: int
    seeds: int  # the seeds compared


def read_masks(job: Job) -> dict[int, tuple[float, dict[str, torch.Tensor]]]:
    """level -> (weights remaining, masks) of each ``ok`` level of the job that saved its masks."""
    found = {}
    for record in job.records:
        path = job.path / "levels" / f"level_{record['level']:02d}" / MASKS_FILE
        if record.get("status") == "ok" and path.exists():
            found[record["level"]] = (
                record["weights_remaining"],
                torch.load(path, map_location="cpu", weights_only=True),
            )
    return found


def _overlap(between: str, group: Group, level: int, pairs: Sequence[tuple[Any, Any]], seeds: int) -> Overlap:
    weights = float(np.mean([w for pair in pairs for w, _ in pair]))
    jaccard = _mean_std([overall(a, b) for (_, a), (_, b) in pairs])
    return Overlap(between, group, level, weights, jaccard, len(pairs), seeds)


def mask_overlaps(jobs: Sequence[Job], keys: Sequence[str], configs: Configs) -> list[Overlap]:
    """Between the seeds of each group at each level, and between the init strategies of jobs alike in
    every other override and the seed (when the sweep varies ``init``); nothing when no job has masks."""
    masks = {job.path: read_masks(job) for job in jobs if not job.damage}
    by_group: dict[tuple[Group, int], list[Any]] = defaultdict(list)
    by_seed: dict[tuple[Group, str, int], dict[str, Any]] = defaultdict(dict)
    at = keys.index(INIT) if INIT in keys else None
    for job in jobs:
        group = tuple(job.overrides.get(k, "default") for k in keys)
        for level, found in masks.get(job.path, {}).items():
            by_group[group, level].append(found)
            if at is not None:
                rest, seed = group[:at] + group[at + 1 :], seed_of(job, configs.get(job.path, {}))
                by_seed[rest, seed, level][group[at]] = found
    overlaps = [
        _overlap("seeds", group, level, list(itertools.combinations(found, 2)), len(found))
        for (group, level), found in by_group.items()
        if len(found) > 1
    ]
    by_inits: dict[tuple[str, Group, int], list[Any]] = defaultdict(list)
    for (rest, _, level), inits in by_seed.items():
        for a, b in itertools.combinations(sorted(inits, key=_sort_key), 2):
            by_inits[f"{INIT}={a} vs {INIT}={b}", rest, level].append((inits[a], inits[b]))
    overlaps += [
        _overlap(between, rest, level, pairs, len(pairs))
        for (between, rest, level), pairs in by_inits.items()
    ]
    return sorted(
        overlaps, key=lambda o: (o.between != "seeds", o.between, [_sort_key(v) for v in o.group], o.level)
    )


def write_overlap_csv(path: Path, keys: Sequence[str], overlaps: Iterable[Overlap]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["between", "group", "level", "weights_remaining", "jaccard_mean", "jaccard_std", "n_pairs"]
        )
        for o in overlaps:
            others = [k for k in keys if k != INIT] if o.between != "seeds" else keys
            writer.writerow(
                [
                    o.between,
                    label(others, o.group),
                    o.level,
                    csv_number("weights_remaining", o.weights_remaining),
                ]
                + [csv_number("jaccard", v) for v in o.jaccard]
                + [o.pairs]
            )


def overlap_figure(keys: Sequence[str], overlaps: Sequence[Overlap], ctx: Context) -> Figure:
    """Jaccard overlap between seeds' masks vs percent of weights remaining, a line per group (n: seeds)."""
    rows = [
        Row(
            o.group,
            o.level,
            o.weights_remaining,
            o.seeds,
            {"jaccard": o.jaccard},
        )
        for o in overlaps
        if o.between == "seeds"
    ]
    fig = summary_figure(
        keys, rows, ctx, (("jaccard", "Mask overlap between seeds"),), scale=1, limits=(0.0, 1.0)
    )
    fig.axes[0].set_ylabel("Jaccard Overlap of the Masks")
    return fig


def plot_mask_overlap(
    out: Path, keys: Sequence[str], jobs: Sequence[Job], ctx: Context, configs: Configs
) -> None:
    """``mask_overlap.csv`` and ``analysis/mask_overlap.seeds.png``; nothing when no job saved masks."""
    overlaps = mask_overlaps(jobs, keys, configs)
    if not overlaps:
        return
    write_overlap_csv(out / "mask_overlap.csv", keys, overlaps)
    if any(o.between == "seeds" for o in overlaps):
        (out / "analysis").mkdir(parents=True, exist_ok=True)
        overlap_figure(keys, overlaps, ctx).savefig(out / "analysis" / "mask_overlap.seeds.png", dpi=DPI)


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


def report(root: Path, out: Path | None = None) -> Path:
    """Write the report of the jobs under ``root`` into ``out`` (default ``root/report``); return ``out``."""
    jobs = sorted(find_jobs(root), key=lambda job: natural_key(str(job.path.relative_to(root))))
    if not jobs:
        raise SystemExit(f"lth.report: no job directories under {root}")
    damaged = [job for job in jobs if job.damage]
    for job in damaged:
        print(f"lth.report: warning: skipping a job: {job.damage}", file=sys.stderr)
    if damaged:
        print(f"lth.report: skipped {len(damaged)} job(s) with damaged files", file=sys.stderr)
    for warning in provenance_warnings(provenance(jobs, root)):
        print(f"lth.report: warning: {warning}", file=sys.stderr)
    out = out or root / "report"
    out.mkdir(parents=True, exist_ok=True)
    configs = {job.path: read_config(job.path) for job in jobs}
    ctx = context(jobs, list(configs.values()))
    keys = varying_keys(jobs)
    rows = aggregate(jobs, keys)
    write_csv(out / "summary.csv", keys, rows)
    write_jobs_csv(out / "jobs.csv", keys, jobs, root, configs)
    (out / "summary.md").write_text(markdown(keys, rows, jobs, root, ctx))
    if rows:
        accuracy_figure(keys, rows, ctx).savefig(out / "accuracy.png", dpi=DPI)
        early_stop_figure(keys, rows, ctx).savefig(out / "early_stop.png", dpi=DPI)
        plot_analyses(out, keys, rows, ctx)
    plot_mask_overlap(out, keys, jobs, ctx, configs)
    plot_curves(out, root, keys, jobs, configs)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lth.report", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a sweep directory (multirun/...) or one run's directory")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: <dir>/report)")
    args = parser.parse_args(argv)
    out = report(args.dir, args.out)
    print((out / "summary.md").read_text(), end="")
    print(f"\nwritten to {out}/: {', '.join(sorted(p.name for p in out.iterdir()))}")


if __name__ == "__main__":
    main()
