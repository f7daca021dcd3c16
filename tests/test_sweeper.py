"""hydra/sweeper=stacked: a sweep's compatible lotteries train as stacks, each lottery still the job
directory the unstacked sweep gives it (lth.run.sweeper)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from lth.report import report
from lth.run.stack_memory import AUTO_MAX_STACK, auto_fit, lottery_bytes
from lth.run.sweeper import max_stack_size
from tests.conftest import LTH_TRAIN
from tests.test_replicates import assert_same_lottery
from tests.test_resume import assert_same_results, kill_twice
from tests.wandb_reader import read_run

TINY = ["train.steps=30", "train.eval_every=10", "prune.levels=1", "logger=none", "trainer.accelerator=cpu"]
GRID = ["prune.rate=0.2,0.5", "optim.lr=0.01,0.05", "init=winning_ticket,reinit", "seed=0,1"]
STACKED = "hydra/sweeper=stacked"

Cli = Callable[..., subprocess.CompletedProcess[str]]


def job_dirs(sweep: Path) -> list[str]:
    return sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))


def files(job: Path) -> list[str]:
    """What a job directory holds but its (emptied) checkpoints and Hydra's log (a stack's is its own)."""
    return sorted(p.name for p in job.iterdir() if p.name != "checkpoints" and p.suffix != ".log")


def jobs_table(sweep: Path, out: Path) -> list[dict[str, str]]:
    """``lth.report``'s jobs.csv rows, without wall time and the job's own path."""
    report(sweep, out)
    with (out / "jobs.csv").open() as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in row.items() if "wall" not in k and k not in ("path", "dir")} for row in rows]


def lines_starting(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(prefix)]


def test_a_stacked_sweep_gives_the_unstacked_sweeps_job_directories_and_lotteries(
    lth_cli: Cli, tmp_path: Path
) -> None:
    stacked, single = tmp_path / "stacked", tmp_path / "single"
    result = lth_cli("-m", STACKED, *TINY, *GRID, f"hydra.sweep.dir={stacked}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert lines_starting(result.stdout, "lth: 16 jobs") == ["lth: 16 jobs in 1 stack"]
    result = lth_cli("-m", *TINY, *GRID, f"hydra.sweep.dir={single}")
    assert result.returncode == 0, result.stderr[-3000:]

    names = job_dirs(single)
    assert len(names) == 16 and job_dirs(stacked) == names
    assert [p.name for p in (stacked / ".stacks").iterdir() if p.is_dir()] != []
    for name in names:
        a, b = stacked / name, single / name
        assert (a / ".hydra" / "overrides.yaml").read_text() == (b / ".hydra" / "overrides.yaml").read_text()
        assert (a / "config.yaml").read_text().replace(str(a), "X") == (
            b / "config.yaml"
        ).read_text().replace(str(b), "X")
        assert_same_lottery(a, b, rel=1e-5, levels=2)
        overrides = json.loads((a / "meta.json").read_text())["overrides"]
        assert overrides == json.loads((b / "meta.json").read_text())["overrides"]
    assert jobs_table(stacked, tmp_path / "report_stacked") == jobs_table(single, tmp_path / "report_single")


def test_a_grid_of_incompatible_lotteries_splits_into_stacks_and_says_why(
    lth_cli: Cli, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    result = lth_cli("-m", STACKED, *TINY, "train.batch_size=32,64", "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert lines_starting(result.stdout, "lth: 4 jobs") == [
        "lth: 4 jobs in 2 stacks (they differ in train.batch_size)"
    ]
    assert len([p for p in (sweep / ".stacks").iterdir() if p.is_dir()]) == 2
    assert len(job_dirs(sweep)) == 4 and all((sweep / n / "DONE").exists() for n in job_dirs(sweep))
    table = result.stdout.split("┏")[-1]  # the sweep's table (its title wraps where the path is long)
    assert table.count("│ complete │") == 4 and "stack_" not in table  # of the lotteries, not the stacks


def test_max_stack_caps_a_stack_and_a_stack_of_one_is_the_plain_job(lth_cli: Cli, tmp_path: Path) -> None:
    stacked, single = tmp_path / "stacked", tmp_path / "single"
    grid = ["seed=0,1,2"]
    result = lth_cli("-m", STACKED, "hydra.sweeper.max_stack=2", *TINY, *grid, f"hydra.sweep.dir={stacked}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert lines_starting(result.stdout, "lth: 3 jobs") == [
        "lth: 3 jobs in 2 stacks (at most hydra.sweeper.max_stack each)"
    ]
    assert len([p for p in (stacked / ".stacks").iterdir() if p.is_dir()]) == 1  # the one of 2
    assert lth_cli("-m", *TINY, *grid, f"hydra.sweep.dir={single}").returncode == 0
    assert job_dirs(stacked) == job_dirs(single)
    for name in job_dirs(single):
        assert_same_lottery(stacked / name, single / name, rel=1e-5, levels=2)
        assert "torch thread(s)" in (stacked / name / "train.log").read_text()  # its stack's, or its own


def test_jobs_of_replicates_join_one_stack_each_as_its_unstacked_job(lth_cli: Cli, tmp_path: Path) -> None:
    """train.replicates=2 in a stacked sweep: the two jobs' four replicates train as one stack; each job
    holds its replicates (replicate_k/), its config and DONE, as in the unstacked sweep."""
    stacked, single = tmp_path / "stacked", tmp_path / "single"
    grid = ["optim.lr=0.01,0.05", "train.replicates=2"]
    result = lth_cli("-m", STACKED, *TINY, *grid, f"hydra.sweep.dir={stacked}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert lines_starting(result.stdout, "lth: 2 jobs") == ["lth: 2 jobs (4 lotteries) in 1 stack"]
    assert lth_cli("-m", *TINY, *grid, f"hydra.sweep.dir={single}").returncode == 0
    assert job_dirs(stacked) == job_dirs(single) and len(job_dirs(single)) == 2
    for name in job_dirs(single):
        a, b = stacked / name, single / name
        assert files(a) == files(b) == [".hydra", "DONE", "config.yaml", "replicate_0", "replicate_1"]
        assert (a / "config.yaml").read_text().replace(str(a), "X") == (
            b / "config.yaml"
        ).read_text().replace(str(b), "X")
        assert json.loads((a / "DONE").read_text())["status"] == "complete"
        for k in range(2):
            assert_same_lottery(a / f"replicate_{k}", b / f"replicate_{k}", rel=1e-5, levels=2)
    assert jobs_table(stacked, tmp_path / "report_stacked") == jobs_table(single, tmp_path / "report_single")


def test_max_stack_counts_a_jobs_replicates_and_never_splits_them(lth_cli: Cli, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    grid = ["optim.lr=0.01,0.05,0.1", "train.replicates=2", "hydra.sweeper.max_stack=5"]
    result = lth_cli("-m", STACKED, *TINY, "train.steps=10", *grid, f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert lines_starting(result.stdout, "lth: 3 jobs") == [
        "lth: 3 jobs (6 lotteries) in 2 stacks (at most hydra.sweeper.max_stack each)"
    ]
    assert len([p for p in (sweep / ".stacks").iterdir() if p.is_dir()]) == 1  # 2 jobs; the third alone
    assert all((sweep / n / f"replicate_{k}" / "DONE").exists() for n in job_dirs(sweep) for k in range(2))


@pytest.mark.parametrize(
    ("grid", "expected"),
    [
        (["seed=0,1"], {"0_seed=0": 0, "1_seed=1": 1}),
        (
            ["seed=0,5", "train.replicates=2"],
            {
                f"{job}/replicate_{k}": seed + k
                for job, seed in (("0_seed=0", 0), ("1_seed=5", 5))
                for k in (0, 1)
            },
        ),
    ],
    ids=["lotteries", "replicates"],
)
def test_each_lottery_of_a_stack_is_its_own_wandb_run_as_in_the_unstacked_sweep(
    lth_cli: Cli, tmp_path: Path, grid: list[str], expected: dict[str, int]
) -> None:
    """W&B offline: one run per lottery (a job's replicates: one each), named by its directory, grouped by
    the sweep, its seed in its config, its curves logged: as the unstacked sweep's runs."""
    runs = {}
    for name, sweeper in (("stacked", [STACKED]), ("single", [])):
        sweep = tmp_path / name
        tiny = [o for o in TINY if o != "logger=none"]
        result = lth_cli("-m", *sweeper, *tiny, "logger=wandb", *grid, f"hydra.sweep.dir={sweep}")
        assert result.returncode == 0, result.stderr[-3000:]
        found = {}
        for log in sorted(sweep.rglob("run-*.wandb")):
            run = read_run(log)
            found[str(log.relative_to(sweep)).split("/wandb/")[0]] = (
                run.run.display_name,
                run.run.run_group == str(sweep)[-128:],  # grouped by its sweep
                run.config["seed"],
                len(run.history),
            )
        runs[name] = found
    assert runs["stacked"] == runs["single"]
    assert {job: run[:3] for job, run in runs["single"].items()} == {
        job: (job, True, seed) for job, seed in expected.items()
    }


def test_rerunning_a_finished_stacked_sweep_trains_nothing(lth_cli: Cli, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", STACKED, *TINY, "optim.lr=0.01,0.05", "seed=0,1", f"hydra.sweep.dir={sweep}"]
    first = lth_cli(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    before = {p: p.stat().st_mtime_ns for p in sweep.rglob("results.jsonl")}
    again = lth_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert lines_starting(again.stdout, "lth: 4 jobs") == ["lth: 4 jobs in 1 stack"]
    assert "Launching" not in again.stdout + again.stderr and "lotteries, level" not in again.stderr
    assert {p: p.stat().st_mtime_ns for p in sweep.rglob("results.jsonl")} == before
    assert again.stdout.count("complete") == 4  # the sweep's table


def stack_checkpoint(proc: subprocess.Popen[str], sweep: Path) -> Path:
    """The checkpoint of the sweep's (first) stack, once its directory exists."""
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        found = sorted(p for p in (sweep / ".stacks").glob("stack_*") if p.is_dir())
        if found:
            return found[0] / "checkpoints" / "last.ckpt"
        time.sleep(0.01)
    return sweep / ".stacks" / "none"


def test_kill_9_of_a_stacked_sweep_then_rerun_equals_an_uninterrupted_one(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    job = [
        "train.steps=150",
        "train.eval_every=10",
        "train.checkpoint_every=7",
        "train.batch_size=32",
        "prune.levels=2",
        "logger=none",
        "trainer.accelerator=cpu",
        "optim.lr=0.01,0.05",
        "seed=0,1",
    ]

    def start(sweep: Path) -> subprocess.Popen[str]:
        log = open(f"{sweep}.log", "a")  # noqa: SIM115 (closed with the process)
        args = [*LTH_TRAIN, "-m", STACKED, *job, f"hydra.sweep.dir={sweep}"]
        env = cli_env | {"OMP_NUM_THREADS": "1"}
        return subprocess.Popen(args, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)

    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    assert start(reference).wait(timeout=300) == 0
    kills = kill_twice(lambda: start(interrupted), lambda proc: stack_checkpoint(proc, interrupted))
    assert kills == 2
    assert not all((interrupted / n / "DONE").exists() for n in job_dirs(interrupted))
    assert start(interrupted).wait(timeout=300) == 0
    assert Path(f"{interrupted}.log").read_text().count("resuming from") >= kills
    names = job_dirs(reference)
    assert len(names) == 4 and job_dirs(interrupted) == names
    for name in names:
        assert_same_results(reference / name, interrupted / name)


@pytest.mark.parametrize(("value", "size"), [("auto", None), (3, 3)])
def test_max_stack_is_a_positive_integer_or_auto(value: object, size: int | None) -> None:
    assert max_stack_size(value) == size


def test_auto_estimates_a_lotterys_memory_from_its_model_and_batch(
    make_cfg: Callable[..., DictConfig],
) -> None:
    """The estimate grows with the model (its parameters) and the batch (its activations); the fit is
    half the memory over it, at least 1 and at most AUTO_MAX_STACK."""
    base = lottery_bytes(make_cfg())
    wide = lottery_bytes(make_cfg("model.hidden=[1000,1000]"))
    big_batch = lottery_bytes(make_cfg("train.batch_size=1024"))
    params = 40 * 1000 + 1000 * 1000 + 1000 * 10
    assert base < big_batch < wide and wide > 10 * 4 * params  # ten float copies of ~1M parameters
    fit = auto_fit(make_cfg("model.hidden=[1000,1000]"), memory_gb=1.0)
    assert fit.lotteries == int(0.5 * 1e9 // wide) and fit.where == "hydra.sweeper.memory_gb"
    assert auto_fit(make_cfg(), memory_gb=1e-6).lotteries == 1
    assert auto_fit(make_cfg(), memory_gb=1e6).lotteries == AUTO_MAX_STACK


def test_auto_splits_a_grid_that_does_not_fit_in_memory_and_says_so(lth_cli: Cli, tmp_path: Path) -> None:
    """max_stack=auto with 10 MB: 3 default lotteries (~1.4 MB each, half the memory) to a stack."""
    stacked, single = tmp_path / "stacked", tmp_path / "single"
    grid = ["seed=0,1,2,3,4"]
    result = lth_cli(
        "-m", STACKED, "hydra.sweeper.memory_gb=0.01", *TINY, *grid, f"hydra.sweep.dir={stacked}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert lines_starting(result.stdout, "lth: 5 jobs") == [
        "lth: 5 jobs in 2 stacks (max_stack=auto: 3 lotteries of ~1.4 MB each in half of 10.0 MB "
        "(hydra.sweeper.memory_gb))"
    ]
    assert lth_cli("-m", *TINY, *grid, f"hydra.sweep.dir={single}").returncode == 0
    assert job_dirs(stacked) == job_dirs(single)
    stack_logs = [p.read_text() for p in (stacked / ".stacks").glob("*/train.log")]
    assert len(stack_logs) == 2 and all("torch thread(s)" in log for log in stack_logs)
    for name in job_dirs(single):
        assert_same_lottery(stacked / name, single / name, rel=1e-5, levels=2)
        assert (stacked / name / "train.log").read_text() in stack_logs  # its stack's, where its job's is


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("hydra.sweeper.max_stack=0", "hydra.sweeper.max_stack=0; allowed: an integer >= 1 or auto"),
        (
            "hydra.sweeper.memory_gb=0",
            "hydra.sweeper.memory_gb=0; allowed: a number of GB > 0, or null (the free memory found)",
        ),
        (
            "hydra.output_subdir=null",
            "hydra.output_subdir=None; allowed: a directory name with hydra/sweeper=stacked (it reads each "
            "job's config there)",
        ),
    ],
)
def test_what_the_stacked_sweeper_cannot_run_with_is_one_line(
    lth_cli: Cli, tmp_path: Path, setting: str, message: str
) -> None:
    sweep = tmp_path / "s"
    result = lth_cli("-m", STACKED, setting, *TINY, "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 2 and not sweep.exists()
    assert result.stderr.strip().splitlines() == [f"lth: invalid config: {message}"]


def test_the_precheck_checks_every_job_of_a_stacked_sweep(lth_cli: Cli, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = lth_cli("-m", STACKED, *TINY, "prune.rate=0.2,1.5", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 2 and not sweep.exists()
    assert result.stderr.strip().splitlines() == [
        "lth: invalid config: prune.rate=1.5; allowed: a number in (0, 1)"
    ]


def test_submitit_local_launches_the_stacks(lth_cli: Cli, tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    stacked, single = tmp_path / "stacked", tmp_path / "single"
    grid = ["train.batch_size=32,64", "seed=0,1"]
    launcher = "hydra/launcher=submitit_local"
    result = lth_cli("-m", STACKED, launcher, *TINY, *grid, f"hydra.sweep.dir={stacked}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert lines_starting(result.stdout, "lth: 4 jobs") == [
        "lth: 4 jobs in 2 stacks (they differ in train.batch_size)"
    ]
    assert lth_cli("-m", *TINY, *grid, f"hydra.sweep.dir={single}").returncode == 0
    assert job_dirs(stacked) == job_dirs(single) and len(job_dirs(single)) == 4
    stack_logs = [p.read_text() for p in (stacked / ".stacks").glob("*/train.log")]
    for name in job_dirs(single):
        assert_same_lottery(stacked / name, single / name, rel=1e-5, levels=2)
        log = (stacked / name / "train.log").read_text()  # its stack's, up to submitit's own last lines
        assert "torch thread(s)" in log and any(stack.startswith(log) for stack in stack_logs)


def test_the_sweep_bench_times_the_missions_sweep_unstacked_and_stacked(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """``python -m lth.bench --sweep`` runs both sweeps of its round (tiny levels here: no timing is
    asserted) and prints each round's ratio and the verdict against the target."""
    tiny = ["train.steps=20", "train.eval_every=10", "prune.levels=1", "analysis=[]"]
    command = [sys.executable, "-m", "lth.bench", "--sweep", "--rounds", "1", *tiny]
    result = subprocess.run(command, cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(
        "sweep -m prune.rate=0.2,0.5 optim.lr=0.01,0.1 seed=0,1 (default job, 1 thread"
    )
    assert re.fullmatch(r"  unstacked \d+ s, stacked \d+ s: \d+\.\d\dx", lines[1]), lines[1]
    assert re.fullmatch(r"  \(one round \d+\.\d\dx; target >= 2\.5x: (ok|MISSED)\)", lines[2]), lines[2]
