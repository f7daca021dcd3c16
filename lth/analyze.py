"""``python -m lth.analyze <job or sweep dir> [--only NAME ...] [--redo]``: run analyses on the saved
levels of finished jobs, never training.

For every finished job (a ``DONE`` file) at or below the directory, each analysis (``--only``, else the
job's ``analysis`` list, else the default ones) runs on each saved level, as it does at a level's end
in training: its numbers go into the level's record of ``results.jsonl`` (under ``analysis.<name>``),
its tensors into ``levels/level_NN/analysis/<name>.pt``. A level is read from ``levels/level_NN/``:
``masks.pt``, and ``state.pt`` (the full model state), else ``weights.pt`` (prunable weights only: enough
for every analysis but ``units`` and ``update_spectrum``'s accuracies); theta_0 from ``init.pt``, else
redrawn from the job's config and seed (as training drew it); held-out data rebuilt from the config.
Results are deterministic, so a rerun rewrites the same numbers; analyses every level of a job already
has are skipped unless ``--redo``. Many jobs show a progress bar.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from lth.analysis.level import Level, NeedsModel
from lth.analysis.names import DEFAULT
from lth.analysis.suite import ANALYSES
from lth.lottery.record import ANALYSIS, LevelRecord
from lth.run.job_dir import RunDirectory
from lth.run.readers import read_job_files
from lth.seeds import derived_seed


def finished_jobs(root: Path) -> list[Path]:
    """Job directories at or below ``root`` with a ``DONE`` file."""
    return sorted(p.parent for p in root.rglob("DONE") if (p.parent / "config.yaml").exists())


def _load(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True, map_location="cpu")


def analyse_job(path: Path, names: Sequence[str] | None, redo: bool = False) -> list[str]:
    """Run the analyses on every saved level of the job at ``path``; return one line per problem."""
    from lth.run.building import build_datamodule, model_factory  # torch: only once there is a job

    run_dir = RunDirectory(path)
    records = [LevelRecord.from_dict(r) for r in read_job_files(path)[0]]
    cfg = OmegaConf.load(path / "config.yaml")
    assert isinstance(cfg, DictConfig)
    wanted = list(names or cfg.get("analysis", DEFAULT))
    if not redo:
        wanted = [n for n in wanted if not all(f"{ANALYSIS}/{n}" in r.analyses for r in records)]
    if not wanted:
        return []
    datamodule = build_datamodule(cfg)
    model = model_factory(cfg, datamodule)(derived_seed(cfg.seed, "model"))
    init = path / "init.pt"
    theta_0 = _load(init) if init.exists() else {k: v.clone() for k, v in model.state_dict().items()}
    knobs = cfg.get("analysis_cfg") or {}
    problems: list[str] = []
    previous = None
    for i, record in enumerate(records):
        level_dir = run_dir.level_dir(record.level)
        masks = _load(level_dir / "masks.pt")
        if (level_dir / "state.pt").exists():
            model.load_state_dict(_load(level_dir / "state.pt"))
            weights, full = {n: model.get_parameter(n).detach() for n in masks}, model
        elif (level_dir / "weights.pt").exists():
            weights, full = _load(level_dir / "weights.pt"), None
        else:
            problems.append(f"{path}: level {record.level} has no saved weights (results.save_weights=false)")
            previous = masks
            continue
        level = Level(weights, theta_0, masks, previous, full, datamodule.split("test"), cfg.seed)
        if full is None and "update_spectrum" in wanted:
            problems.append(f"{path}: update_spectrum without accuracies: they need full level states")
        summaries = dict(record.analyses)
        for name in wanted:
            try:
                summary, tensors = ANALYSES[name](level, **dict(knobs.get(name) or {}))
            except NeedsModel:
                problems.append(f"{path}: {name} needs full level states (levels/level_NN/state.pt); skipped")
                wanted = [n for n in wanted if n != name]
                continue
            summaries[f"{ANALYSIS}/{name}"] = summary
            run_dir.save_level_tensors(record.level, {f"{ANALYSIS}/{name}": tensors})
        records[i] = replace(record, analyses=summaries)
        previous = masks
    run_dir.write_records(records)
    return list(dict.fromkeys(problems))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lth.analyze", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a job directory or a sweep directory")
    parser.add_argument("--only", nargs="+", choices=sorted(ANALYSES), metavar="NAME", help="these analyses")
    parser.add_argument("--redo", action="store_true", help="rerun analyses the levels already have")
    args = parser.parse_args(argv)
    jobs = finished_jobs(args.dir)
    if not jobs:
        raise SystemExit(f"lth.analyze: no finished job (a DONE file) at or below {args.dir}")
    problems = []
    for job in tqdm(jobs, desc="lth.analyze", unit="job", disable=len(jobs) == 1, file=sys.stderr):
        problems += analyse_job(job, args.only, args.redo)
    for line in problems:
        print(f"lth.analyze: {line}", file=sys.stderr)
    print(f"lth.analyze: {len(jobs)} job(s) analysed under {args.dir}")


if __name__ == "__main__":
    main()
