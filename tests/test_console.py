"""What a user sees: the level bar, a quiet console, the sweep's table, and no orphan directory."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from lth.run.console import LotteryProgressBar
from lth.run.job import build_job, execute
from tests.conftest import LTH_TRAIN


def test_the_bar_advances_within_each_level_and_leaves_its_full_count(
    make_cfg: Callable[..., DictConfig], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LotteryProgressBar, "REDRAW_S", 0.0)  # redraw after every run of steps
    cfg = make_cfg("train.steps=60", "train.eval_every=30", "trainer.enable_progress_bar=true")
    records = execute(build_job(cfg))
    draws = capsys.readouterr().out.replace("\r", "\n").splitlines()
    for record in records:
        level = record["level"]
        shown = [line for line in draws if line.startswith(f"level {level}/2, weights ")]
        counts = [int(m.group(1)) for line in shown if (m := re.search(r"\| *(\d+)/60 ", line))]
        assert any(0 < c < 60 for c in counts), shown  # it moved within the level
        assert counts == sorted(counts) and counts[-1] == 60
        assert "job " in " ".join(shown) and "ETA" in " ".join(shown)
        assert shown[-1].endswith(f"test acc {100 * record['test_acc']:.2f}%, ok]"), shown[-1]
    weights = {m.group(1) for line in draws if (m := re.match(r"level \d/2, weights ([\d.]+)%", line))}
    assert weights == {"100.0", "80.7", "65.1"}


def test_a_stacks_bar_counts_its_lotteries_and_ends_each_level_with_their_accuracy_range(
    make_cfg: Callable[..., DictConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = make_cfg(
        "train.steps=30", "prune.levels=1", "train.replicates=3", "trainer.enable_progress_bar=true"
    )
    replicates = execute(build_job(cfg))
    draws = capsys.readouterr().out.replace("\r", "\n").splitlines()
    for level in (0, 1):
        accs = sorted(records[level]["test_acc"] for records in replicates)
        shown = [line for line in draws if line.startswith(f"3 lotteries, level {level}/1, weights ")]
        assert len({f"{100 * a:.2f}" for a in accs}) > 1  # the range is two numbers
        assert shown[-1].endswith(f"test acc {100 * accs[0]:.2f}-{100 * accs[-1]:.2f}%, ok]"), shown[-1]


def test_a_default_job_prints_a_few_lines(cli_env: dict[str, str], tmp_path: Path) -> None:
    """Header, one bar per level, the results table and the W&B sync line: W&B and Lightning stay quiet.
    Lines are counted as a terminal shows them: a bar redraws within its line (``\\r``)."""
    env = {k: v for k, v in cli_env.items() if k != "WANDB_SILENT"}

    def lth(*args: str) -> tuple[int, str]:
        proc = subprocess.run([*LTH_TRAIN, *args], cwd=tmp_path, env=env, capture_output=True, timeout=300)
        return proc.returncode, (proc.stdout + proc.stderr).decode()

    code, text = lth("train.steps=40", "train.eval_every=20", f"hydra.run.dir={tmp_path / 'run'}")
    assert code == 0, text[-3000:]
    assert text.count("\n") < 25, text
    assert text.count("wandb sync") == 1
    for noise in ("GPU available", "srun", "wandb: ", "Run history", "Run summary", "fontManager"):
        assert noise not in text, noise
    assert len(re.findall(r"level \d/5, weights [\d.]+%: 100%.*40/40", text)) == 6

    code, text = lth(
        "train.steps=40",
        "prune.levels=0",
        "logger=none",
        "trainer.verbose=true",
        f"hydra.run.dir={tmp_path / 'v'}",
    )
    assert code == 0 and "GPU available" in text


def test_a_multirun_ends_with_one_table_of_its_jobs(lth_cli, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = lth_cli(
        "-m", "seed=0,1", "train.steps=20", "train.eval_every=10", "prune.levels=1", "logger=none",
        f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if re.match(r"│ \d_seed=\d", line)]
    assert [row.split("│")[1].strip() for row in rows] == ["0_seed=0", "1_seed=1"]
    assert all(row.split("│")[3].strip() == "80.7" and "complete" in row for row in rows)


@pytest.mark.parametrize(
    "args",
    [
        ["data.val_size=100000"],
        ["model=conv2"],
        ["prune.rates={fc9.weight:0.1}"],
        ["data=mnist", "data.root=DATA"],
    ],
    ids=["val_size", "model shape", "rates tensor", "missing files"],
)
def test_a_job_refused_before_training_leaves_no_directory(lth_cli, tmp_path: Path, args: list[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [a.replace("DATA", str(empty)) for a in args]
    proc = lth_cli(*args, "logger=none")  # Hydra's default outputs/<date>/<time> under tmp_path
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_a_refused_job_keeps_a_directory_that_holds_a_run(lth_cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert (
        lth_cli(
            "train.steps=20", "train.eval_every=10", "prune.levels=0", "logger=none", f"hydra.run.dir={run}"
        ).returncode
        == 0
    )
    proc = lth_cli(
        "train.steps=20", "prune.levels=0", "logger=none", f"hydra.run.dir={run}"
    )  # another config
    assert proc.returncode == 2 and (run / "results.jsonl").exists()
