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
import sys
from collections.abc import Sequence
from pathlib import Path

from lth.report.curves import plot_curves
from lth.report.jobs import context, find_jobs, read_config, varying_keys
from lth.report.overlap import plot_mask_overlap
from lth.report.plots import DPI, accuracy_figure, early_stop_figure, plot_analyses
from lth.report.tables import aggregate, markdown, provenance, provenance_warnings, write_csv, write_jobs_csv
from lth.run.naming import natural_key


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
