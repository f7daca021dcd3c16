"""The overlap of the jobs' masks (``levels/level_NN/masks.pt``): between the seeds of each group and
between init strategies, as ``mask_overlap.csv`` and a plot."""

from __future__ import annotations

import csv
import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from lth.analysis.mask_overlap import overall
from lth.report.jobs import Configs, Context, Group, Job, label, seed_of
from lth.report.plots import DPI, summary_figure
from lth.report.tables import Row, csv_number, mean_std, sort_key

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
    jaccard = mean_std([overall(a, b) for (_, a), (_, b) in pairs])
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
        for a, b in itertools.combinations(sorted(inits, key=sort_key), 2):
            by_inits[f"{INIT}={a} vs {INIT}={b}", rest, level].append((inits[a], inits[b]))
    overlaps += [
        _overlap(between, rest, level, pairs, len(pairs))
        for (between, rest, level), pairs in by_inits.items()
    ]
    return sorted(
        overlaps, key=lambda o: (o.between != "seeds", o.between, [sort_key(v) for v in o.group], o.level)
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
