"""The report's tables: each group's levels aggregated over its seeds (``summary.csv``, ``summary.md``),
one row per job (``jobs.csv``), and the provenance the jobs ran with."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lth.analysis.suite import flatten
from lth.lottery.record import ANALYSIS
from lth.lottery.record import REPORT_METRICS as METRICS
from lth.report.jobs import Configs, Context, Group, Job, label, seed_of


@dataclass
class Row:
    """One group at one level, aggregated over its seeds."""

    group: tuple[str, ...]
    level: int
    weights_remaining: float
    n: int
    stats: dict[str, tuple[float, float]]  # metric -> (mean, sample std)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else math.nan


def sort_key(value: str | None) -> tuple[int, float, str]:
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
        stats = {m: mean_std([r[m] for r in records if isinstance(r.get(m), int | float)]) for m in metrics}
        weights = float(np.mean([r["weights_remaining"] for r in records]))
        rows.append(Row(group, level, weights, len(records), stats))
    return sorted(rows, key=lambda r: ([sort_key(v) for v in r.group], r.level))


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


# --- groups: n -------------------------------------------------------------------------------------------


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
