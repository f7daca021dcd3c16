"""``results.jsonl`` and ``DONE`` damaged from outside: one line naming the file and the line, never a traceback."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lth.report import main as report_main
from lth.run.job import run as train
from lth.run.readers import DamagedFile, read_job_files
from tests.conftest import FAST
from tests.test_report import record, write_job

TINY = ["train.steps=4", "train.eval_every=2", "prune.levels=1", "logger=none"]
RECORD = json.dumps(record(0, 0.9, 10))

DAMAGE = [
    (
        "results.jsonl",
        RECORD + "\n" + RECORD[:40],
        "results.jsonl, line 2: not valid JSON (Unterminated string",
    ),
    ("results.jsonl", RECORD + "\n\n[1, 2]\n", "results.jsonl, line 3: not a JSON object with level"),
    ("results.jsonl", b"\xff\xfe\n", "results.jsonl, line 1: not UTF-8 text"),
    ("results.jsonl", RECORD + "\n", "results.jsonl, line 2: 1 record(s), but"),  # a copy cut at a line end
    ("DONE", '{"status": "comp', "DONE, line 1: not valid JSON"),
    ("DONE", "", "DONE, line 1: not valid JSON (Expecting value: column 1)"),
    ("DONE", '{"status": "complete",\n "levels": "2"}\n', 'DONE, line 1: not a JSON object {"status"'),
]


@pytest.mark.parametrize(("name", "content", "message"), DAMAGE, ids=[m for _, _, m in DAMAGE])
def test_a_damaged_file_is_named_with_its_line(tmp_path: Path, name: str, content: str | bytes, message: str):
    job = write_job(tmp_path, 0, ["seed=0"], [record(0, 0.9, 10), record(1, 0.8, 10)], "complete")
    path = job / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DamagedFile) as caught:
        read_job_files(job)
    text = str(caught.value)
    assert text.startswith(f"lth: damaged file {path.parent}/{message}") and "\n" not in text, text
    assert text.endswith(f"; restore it, or delete {job} to run the job again")


def test_a_rerun_of_a_job_with_a_damaged_results_file_exits_2_in_one_line(
    lth_cli, make_cfg, tmp_path: Path
) -> None:
    run = tmp_path / "run"  # make_cfg's output directory: the job runs here first, in this process
    train(make_cfg(*TINY))
    results = run / "results.jsonl"
    lines = results.read_text().splitlines()
    results.write_text(lines[0] + "\n" + lines[1][:-7])  # the second line cut short
    proc = lth_cli(*FAST, *TINY, f"hydra.run.dir={run}")
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"lth: damaged file {results}, line 2: not valid JSON (Expecting ")
    assert line.endswith(f"; restore it, or delete {run} to run the job again")


def test_the_report_skips_a_damaged_job_with_a_warning_and_counts_it(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    for seed in range(3):
        records = [record(lv, 0.9 - 0.01 * seed, 10) for lv in range(2)]
        write_job(sweep, seed, ["init=reinit", f"seed={seed}"], records, "complete")
    damaged = sweep / "1_init=reinit,seed=1" / "results.jsonl"
    damaged.write_text(damaged.read_text()[:-20])
    report_main([str(sweep)])
    warning, count = capsys.readouterr().err.splitlines()
    assert warning.startswith(
        f"lth.report: warning: skipping a job: damaged file {damaged}, line 2: not valid JSON"
    )
    assert warning.endswith(f"; restore it, or delete {damaged.parent} to run the job again")
    assert count == "lth.report: skipped 1 job(s) with damaged files"
    with (sweep / "report" / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["n"], float(r["test_acc_mean"])) for r in rows] == [("2", pytest.approx(0.89))] * 2
    summary = (sweep / "report" / "summary.md").read_text()
    assert "3 job(s), 1 skipped (damaged files)" in summary
    assert f"- `1_init=reinit,seed=1`: damaged file {damaged}, line 2" in summary
    with (sweep / "report" / "jobs.csv").open() as f:
        assert [j["status"] for j in csv.DictReader(f)] == ["complete", "damaged", "complete"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "- init=reinit\n- seed=1\n- 'optim.lr=0.1\n",
            "line 4: not valid YAML (found unexpected end of stream)",
        ),
        ("init: reinit\n", "line 1: not a YAML list of overrides"),
    ],
)
def test_the_report_skips_a_job_with_damaged_hydra_overrides(
    tmp_path: Path, capsys, content: str, message: str
):
    """Hydra's ``.hydra/overrides.yaml`` damaged: the job is skipped in one line, as for lth's own files."""
    sweep = tmp_path / "sweep"
    for seed in range(2):
        write_job(sweep, seed, ["init=reinit", f"seed={seed}"], [record(0, 0.9, 10)], "complete")
    overrides = sweep / "1_init=reinit,seed=1" / ".hydra" / "overrides.yaml"
    overrides.write_text(content)
    report_main([str(sweep)])
    warning, count = capsys.readouterr().err.splitlines()
    assert warning.startswith(f"lth.report: warning: skipping a job: damaged file {overrides}, {message}")
    assert warning.endswith(f"; restore it, or delete {overrides.parent.parent} to run the job again")
    assert count == "lth.report: skipped 1 job(s) with damaged files"
