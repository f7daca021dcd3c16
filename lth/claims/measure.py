"""Reading a claim's sweep: its jobs (``lth.report.find_jobs``), the arms they form, and their numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lth.claims.spec import ClaimError
from lth.report import find_jobs

if TYPE_CHECKING:
    from lth.report import Job


def load(root: Path) -> list[Job]:
    """The sweep's jobs; any job that is not a clean, complete lottery makes the claim unanswerable."""
    jobs = find_jobs(root)
    if not jobs:
        raise ClaimError(f"no job under {root}")
    problems = [f"{job.path.name}: {job.problem}" for job in jobs if job.problem]
    if problems:
        raise ClaimError(f"{len(problems)} job(s) not complete, e.g. {problems[0]}")
    return jobs


def select(jobs: Sequence[Job], **overrides: object) -> list[Job]:
    """The jobs whose overrides give each ``key=value`` (dots in keys written as ``__``)."""
    wanted = {key.replace("__", "."): str(value) for key, value in overrides.items()}
    chosen = [job for job in jobs if all(job.overrides.get(k) == v for k, v in wanted.items())]
    if not chosen:
        raise ClaimError(f"no job with {', '.join(f'{k}={v}' for k, v in wanted.items())}")
    return chosen


def lookup(record: dict[str, Any], metric: str) -> float:
    """A record's number at the dotted path ``metric`` (``specialisation.layer1.mean_best_corr``); nan if absent."""
    value: Any = record
    for part in metric.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else math.nan


def values(jobs: Sequence[Job], metric: str, level: int = -1) -> np.ndarray:
    """``metric`` of each job at ``level`` (-1: each job's last level)."""
    out = []
    for job in jobs:
        records = [r for r in job.records if r["level"] == level] if level >= 0 else job.records[-1:]
        if not records:
            raise ClaimError(f"{job.path.name} has no level {level}")
        out.append(lookup(records[0], metric))
    return np.asarray(out, dtype=float)


def mean(jobs: Sequence[Job], metric: str, level: int = -1) -> float:
    return float(np.mean(values(jobs, metric, level)))


def levels(jobs: Sequence[Job]) -> list[int]:
    return [r["level"] for r in jobs[0].records]


@dataclass
class Curve:
    """A metric per level over an arm's seeds: weights remaining, mean and std (0 for one seed)."""

    weights: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def curve(jobs: Sequence[Job], metric: str) -> Curve:
    weights, means, stds = [], [], []
    for level in levels(jobs):
        found = values(jobs, metric, level)
        weights.append(float(np.mean(values(jobs, "weights_remaining", level))))
        means.append(float(np.mean(found)))
        stds.append(float(np.std(found, ddof=1)) if len(found) > 1 else 0.0)
    return Curve(np.asarray(weights), np.asarray(means), np.asarray(stds))
