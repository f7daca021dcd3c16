"""``python -m lth.analyze``: the analyses of finished jobs from their saved levels, as in training."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from lth.analyze import main
from lth.report import report
from lth.run.job import build_job, execute

EVERY = "analysis=[distance,node_distribution,mask_overlap,update_spectrum,esd,clustering,units]"


def analysis_files(job: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {
        str(p.relative_to(job)): torch.load(p, weights_only=True) for p in job.glob("levels/*/analysis/*.pt")
    }


def test_analyze_on_a_finished_sweep_writes_what_training_wrote(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "sweep"
    jobs = [sweep / f"{i}_seed_{i}" for i in range(2)]
    for i, job in enumerate(jobs):
        execute(build_job(make_cfg(EVERY, f"seed={i}", f"paths.output_dir={job}", "prune.levels=1")))
    trained = [(job / "results.jsonl").read_text() for job in jobs]
    files = [analysis_files(job) for job in jobs]
    assert len(files[0]) >= 2 * 3  # node_distribution, esd, clustering, ... have tensors, at 2 levels
    for job in jobs:  # the jobs as they were before analyses ran in training
        records = [json.loads(line) for line in (job / "results.jsonl").read_text().splitlines()]
        (job / "results.jsonl").write_text("".join(json.dumps(r | {"analysis": {}}) + "\n" for r in records))
        for path in job.glob("levels/*/analysis/*.pt"):
            path.unlink()
    main([str(sweep)])  # from init.pt, masks.pt and state.pt
    assert [(job / "results.jsonl").read_text() for job in jobs] == trained
    for job, expected in zip(jobs, files, strict=True):
        found = analysis_files(job)
        assert found.keys() == expected.keys()
        assert all(torch.equal(found[f][k], expected[f][k]) for f in found for k in found[f])
    assert "2 job(s) analysed" in capsys.readouterr().out

    stamp = [(job / "results.jsonl").stat().st_mtime_ns for job in jobs]
    main([str(sweep)])  # everything there already: nothing to do
    assert [(job / "results.jsonl").stat().st_mtime_ns for job in jobs] == stamp
    for state in jobs[0].glob("levels/*/state.pt"):  # as a job written before full states were kept
        prunable = torch.load(state.with_name("masks.pt"), weights_only=True)
        full = torch.load(state, weights_only=True)
        torch.save({name: full[name] for name in prunable}, state.with_name("weights.pt"))
        state.unlink()
    main([str(jobs[0]), "--only", "units", "--redo"])  # weights.pt only: one line says so
    assert "units needs full level states" in capsys.readouterr().err

    out = report(sweep)
    plots = sorted(p.name for p in (out / "analysis").iterdir())
    assert "distance.relative.png" in plots and "esd.alpha.png" in plots
    assert not any(p.endswith(".width.png") for p in plots)  # the sweep does not vary the width
