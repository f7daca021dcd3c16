"""``python -m lth.claims``: the command line, the report of a claim, and a claim that fails when the thing
it checks is broken (every test runs real sweeps in subprocesses, at the smallest scale)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lth.claims.catalogue import CLAIMS

# teacher_student at its quick scale, shortened further: it passes at this scale (test_report_...)
TINY = [
    "--quick",
    "--only",
    "teacher_student",
    "--override",
    "train.steps=200",
    "--override",
    "train.eval_every=100",
]


def claims(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lth.claims", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def tiny(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:
    """The tiny teacher_student claim run twice at once: as it is, and broken (below); each in its own directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    runs = {"intact": [], "broken": ["--override", "init.name=winning_ticket"]}
    started = {}
    for name, extra in runs.items():
        cwd = tmp_path_factory.mktemp(name)
        argv = [sys.executable, "-m", "lth.claims", *TINY, *extra, "--out", "out"]
        started[name] = (
            cwd,
            subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            ),
        )
    done = {}
    for name, (cwd, process) in started.items():
        stdout, stderr = process.communicate(timeout=300)
        done[name] = (cwd, subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return done


def test_list_names_every_claim(tmp_path: Path, cli_env: dict[str, str]) -> None:
    done = claims(tmp_path, cli_env, "--list")
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == [c.name for c in CLAIMS]


@pytest.mark.parametrize("args", [["--only", "frankle,nonsense"], ["--only", "nonsense"], ["--jobs", "0"]])
def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, cli_env: dict[str, str], args: list[str]) -> None:
    done = claims(tmp_path, cli_env, *args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    if "--only" in args:
        assert (
            done.stderr
            == f"lth.claims: unknown claim 'nonsense'; allowed: {', '.join(c.name for c in CLAIMS)}\n"
        )
    assert not (tmp_path / "claims").exists()


def test_a_quick_claim_writes_its_report_table_plot_and_jobs(tiny: dict[str, tuple[Path, Any]]) -> None:
    tmp_path, done = tiny["intact"]
    assert done.returncode == 0, done.stdout + done.stderr
    line = done.stdout.splitlines()[0]
    assert re.fullmatch(
        r"PASS teacher_student \(.*\): test loss random/magnitude .* >= 1\.2; .* \[\d+ s\]", line
    )
    out = tmp_path / "out"
    report = (out / "report.md").read_text()
    assert "| claim | paper | measured | threshold | verdict | seconds |" in report
    assert re.search(r"\| teacher_student \| .* \| >= 1\.2; >= 0\.02 \| PASS \| \d+ \|", report)
    assert (out / "teacher_student.png").read_bytes()[:4] == b"\x89PNG"
    assert "![teacher_student](teacher_student.png)" in report
    jobs = sorted(p.parent.name for p in (out / "teacher_student").glob("*/DONE"))
    assert jobs == [
        "0_init=winning_ticket,seed=0",
        "1_init=winning_ticket,seed=1",
        "2_init=random_prune,seed=0",
        "3_init=random_prune,seed=1",
    ]
    from lth.report import find_jobs

    assert all(job.problem is None for job in find_jobs(out / "teacher_student"))  # lth.report reads them


def test_a_claim_fails_when_random_pruning_keeps_the_magnitude_mask(
    tiny: dict[str, tuple[Path, Any]],
) -> None:
    """The same sweep as above, but every restart is in truth the winning ticket (``init.name`` overridden
    under ``init=random_prune``): the random-pruning arm keeps the magnitude mask, so the claim must fail."""
    tmp_path, done = tiny["broken"]
    assert done.returncode == 1, done.stdout + done.stderr
    line = done.stdout.splitlines()[0]
    found = re.fullmatch(
        r"FAIL teacher_student \(.*\): test loss random/magnitude \(lr 0\.1\) (\S+) >= 1\.2; .*", line
    )
    assert found, line
    assert float(found[1]) == pytest.approx(1.0, abs=1e-6)  # the two arms are one lottery
    assert "| FAIL |" in (tmp_path / "out" / "report.md").read_text()
