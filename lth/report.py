"""Aggregate a sweep (or a single run) directory into tables and plots, from the jobs' own files only.

``python -m lth.report <sweep or run dir> [--out DIR]`` reads each job's ``results.jsonl``,
``.hydra/overrides.yaml`` and ``DONE`` (never W&B), groups the jobs by every override that varies
across them except ``seed``, and aggregates each level over the seeds of a group (mean, sample std, n).
Only levels with status ``ok`` enter the aggregates; every job that is not complete (no ``DONE``:
unfinished or killed; or a ``DONE`` status other than ``complete``) or has a level that is not ``ok``
is listed under "Problems". A job whose ``results.jsonl`` or ``DONE`` is damaged is skipped with a
one-line warning (and listed under "Problems"). Writes into ``<dir>/report/``:

```
summary.csv      one row per group and level: weights_remaining, n, <metric>_mean, <metric>_std
summary.md       the same as a Markdown table, plus the problems
jobs.csv         one row per job: path, the grouping overrides, seed, status, levels recorded, problem
accuracy.png     test accuracy at the end of training and at early stop vs. percent of weights remaining
early_stop.png   early-stop iteration vs. percent of weights remaining
```
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator
from omegaconf import OmegaConf

from lth.run.readers import DamagedFile, read_job_files

METRICS = ("test_acc", "test_acc_at_early_stop", "early_stop_step", "test_loss")
IGNORED_KEYS = ("seed",)
DPI = 100
ACCURACY_FIGSIZE = (12.0, 4.5)  # inches: 1200 x 450 pixels at DPI
EARLY_STOP_FIGSIZE = (6.4, 4.8)  # 640 x 480 pixels
WEIGHTS_LABEL = "Percent of Weights Remaining"
MAX_TICKS = 8


@dataclass
class Job:
    """One job directory as written by ``lth.train``."""

    path: Path
    overrides: dict[str, str]
    records: list[dict[str, Any]]
    done: dict[str, Any] | None
    damage: str | None = None  # why its files cannot be read; the job is skipped

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
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = OmegaConf.to_container(OmegaConf.load(overrides_file)) if overrides_file.exists() else []
    parsed = dict(_parse_override(str(o)) for o in overrides or [])
    try:
        return Job(path, parsed, *read_job_files(path))
    except DamagedFile as exc:
        return Job(path, parsed, [], None, damage=str(exc).removeprefix("lth: "))


def find_jobs(root: Path) -> list[Job]:
    """Every job directory at or below ``root``: where Hydra or lth wrote a job's files."""
    dirs = {p.parent for name in ("results.jsonl", "DONE") for p in root.rglob(name)}
    dirs |= {p.parent.parent for p in root.rglob(".hydra/overrides.yaml")}
    return [load_job(d) for d in sorted(dirs) if "wandb" not in d.relative_to(root).parts]


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
    """Mean, sample std and n over the seeds of each group, per level; only ``ok`` levels count."""
    by_level: dict[tuple[tuple[str, ...], int], list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        group = tuple(job.overrides.get(k, "default") for k in keys)
        for record in job.records:
            if record.get("status") == "ok":
                by_level[group, record["level"]].append(record)
    rows = []
    for (group, level), records in by_level.items():
        stats = {m: _mean_std([r[m] for r in records if isinstance(r.get(m), int | float)]) for m in METRICS}
        weights = float(np.mean([r["weights_remaining"] for r in records]))
        rows.append(Row(group, level, weights, len(records), stats))
    return sorted(rows, key=lambda r: ([_sort_key(v) for v in r.group], r.level))


def label(keys: Sequence[str], group: Sequence[str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(keys, group, strict=True)) or "all jobs"


def write_csv(path: Path, keys: Sequence[str], rows: Iterable[Row]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        stats = [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]
        writer.writerow([*keys, "level", "weights_remaining", "n", *stats])
        for r in rows:
            values = [v for m in METRICS for v in r.stats[m]]
            writer.writerow([*r.group, r.level, r.weights_remaining, r.n, *values])


def write_jobs_csv(path: Path, keys: Sequence[str], jobs: Iterable[Job], root: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["job", *keys, "seed", "status", "levels", "problem"])
        for job in jobs:
            values = [job.overrides.get(k, "default") for k in keys]
            seed = job.overrides.get("seed", "default")
            relative = job.path.relative_to(root)
            writer.writerow([relative, *values, seed, job.status, len(job.records), job.problem or ""])


def _pm(mean: float, std: float, scale: float = 1.0, digits: int = 2) -> str:
    if math.isnan(mean):
        return "-"
    text = f"{scale * mean:.{digits}f}"
    return text if math.isnan(std) else f"{text} ± {scale * std:.{digits}f}"


def markdown(keys: Sequence[str], rows: Sequence[Row], jobs: Sequence[Job], root: Path) -> str:
    """The summary table (accuracies in %, mean ± sample std over n seeds) and the problems list."""
    head = ["group", "level", "weights %", "n", "test acc %", "test acc % @ early stop", "early-stop iter"]
    skipped = sum(1 for job in jobs if job.damage)
    count = f"{len(jobs)} job(s)" + (f", {skipped} skipped (damaged files)" if skipped else "")
    lines = [f"# lth report: {root}", "", f"{count}; groups by: {', '.join(keys) or '-'}", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [
            label(keys, r.group),
            str(r.level),
            f"{100 * r.weights_remaining:.1f}",
            str(r.n),
            _pm(*r.stats["test_acc"], scale=100),
            _pm(*r.stats["test_acc_at_early_stop"], scale=100),
            _pm(*r.stats["early_stop_step"], digits=0),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    problems = [(job, job.problem) for job in jobs if job.problem]
    lines += ["", "## Problems", ""]
    lines += [f"- `{job.path.relative_to(root)}`: {problem}" for job, problem in problems] or ["none"]
    return "\n".join(lines) + "\n"


def _weights_axis(ax: Axes, rows: Sequence[Row]) -> None:
    """Log x axis from 100% down to the sparsest level, ticks at the levels (as in Frankle & Carbin)."""
    percents = sorted({round(100 * r.weights_remaining, 1) for r in rows}, reverse=True)
    ticks = percents[:: max(1, math.ceil(len(percents) / MAX_TICKS))]
    ax.set_xscale("log")
    ax.set_xlim(percents[0] * 1.08, percents[-1] / 1.08)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.set_xlabel(WEIGHTS_LABEL)
    ax.grid(True, alpha=0.3)


def _plot(ax: Axes, keys: Sequence[str], rows: Sequence[Row], metric: str, scale: float) -> None:
    groups = dict.fromkeys(r.group for r in rows)
    for group in groups:
        points = [r for r in rows if r.group == group and not math.isnan(r.stats[metric][0])]
        x = np.array([100 * r.weights_remaining for r in points])
        mean = np.array([scale * r.stats[metric][0] for r in points])
        std = np.nan_to_num(np.array([scale * r.stats[metric][1] for r in points]))
        (line,) = ax.plot(x, mean, marker="o", markersize=3, label=label(keys, group))
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    _weights_axis(ax, rows)


def _figure(figsize: tuple[float, float]) -> Figure:
    """A figure rendered by Agg, outside pyplot (no global state, no display needed)."""
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_accuracy(path: Path, keys: Sequence[str], rows: Sequence[Row]) -> None:
    axes = _figure(ACCURACY_FIGSIZE).subplots(1, 2, sharey=True)
    for ax, metric, title in zip(
        axes, ("test_acc", "test_acc_at_early_stop"), ("End of training", "At early stop"), strict=True
    ):
        _plot(ax, keys, rows, metric, scale=100)
        ax.set_title(title)
    axes[0].set_ylabel("Test Accuracy (%)")
    axes[1].legend(fontsize="small")
    axes[0].figure.savefig(path, dpi=DPI)


def plot_early_stop(path: Path, keys: Sequence[str], rows: Sequence[Row]) -> None:
    ax = _figure(EARLY_STOP_FIGSIZE).subplots()
    _plot(ax, keys, rows, "early_stop_step", scale=1)
    ax.set_ylabel("Early-Stop Iteration (Val.)")
    ax.legend(fontsize="small")
    ax.figure.savefig(path, dpi=DPI)


def report(root: Path, out: Path | None = None) -> Path:
    """Write the report of the jobs under ``root`` into ``out`` (default ``root/report``); return ``out``."""
    jobs = find_jobs(root)
    if not jobs:
        raise SystemExit(f"lth.report: no job directories under {root}")
    damaged = [job for job in jobs if job.damage]
    for job in damaged:
        print(f"lth.report: warning: skipping a job: {job.damage}", file=sys.stderr)
    if damaged:
        print(f"lth.report: skipped {len(damaged)} job(s) with damaged files", file=sys.stderr)
    out = out or root / "report"
    out.mkdir(parents=True, exist_ok=True)
    keys = varying_keys(jobs)
    rows = aggregate(jobs, keys)
    write_csv(out / "summary.csv", keys, rows)
    write_jobs_csv(out / "jobs.csv", keys, jobs, root)
    (out / "summary.md").write_text(markdown(keys, rows, jobs, root))
    if rows:
        plot_accuracy(out / "accuracy.png", keys, rows)
        plot_early_stop(out / "early_stop.png", keys, rows)
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
