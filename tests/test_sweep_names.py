"""Job directory names: short, flat and unique (lth.run.naming); the printed command that resumes a run."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lth.report import find_jobs
from lth.run.naming import MAX_NAME_BYTES, job_dir, job_name
from lth.run.resume import announce, fixed_keys, pinned_argv

# the command of issue 18 that ended in "OSError: [Errno 36] File name too long", with tiny steps
LONG_COMMAND = [
    "-m", "seed=0", "prune.levels=0", "data.val_size=500", "train.batch_size=60", "optim=adam",
    "optim.lr=0.0012", "optim.weight_decay=0.0001", "optim.schedule=cosine", "optim.warmup_steps=2",
    "prune.rate=0.2", "prune.scope=global", "prune.criterion=magnitude", "init=rewind", "init.rewind_step=2",
    "train.checkpoint_every=100", "results.save_weights=false", "trainer.log_every_n_steps=5",
    "model.init=glorot_normal", "logger=none", "train.steps=4", "train.eval_every=2",
]  # fmt: skip
TINY = ["train.steps=4", "train.eval_every=2", "prune.levels=0", "logger=none"]


def test_a_name_is_the_job_number_and_the_swept_overrides_sorted_with_paths_cut_to_their_last_part() -> None:
    overrides = ["seed=1", "data.root=/some/where/", "optim.lr=0.1", "+trainer.x='a b'", "~prune.rates"]
    assert (
        job_name(3, overrides, exclude=["optim.lr"]) == "3_data.root=where,seed=1,trainer.x=a b,~prune.rates"
    )
    assert job_name(0, ["data.mirrors=[https://a.org/x/,http://b.org/y]"]) == "0_data.mirrors=[x,y]"
    assert job_name(7, ["seed=1"], exclude=["seed"]) == "7"  # a sweep of one job varies nothing


def test_long_names_are_cut_with_a_hash_of_all_overrides_and_stay_unique() -> None:
    common = ["optim.lr=0.1", "data.root=/d/" + "x" * 110]
    a, b = job_name(12, [*common, "seed=0"]), job_name(12, [*common, "seed=1"])  # differ past the cut
    assert a != b and a[:-8] == b[:-8]
    assert a.startswith("12_data.root=xxx") and a[-10:-8] == ".."
    assert all(len(n.encode()) == MAX_NAME_BYTES for n in (a, b))
    # cut on a character boundary: the name stays valid UTF-8
    accented = job_name(0, ["data.root='/d/a" + "é" * 100 + "'"])  # the cut falls inside an é
    assert len(accented.encode()) == MAX_NAME_BYTES - 1 and accented.startswith("0_data.root=aéé")


def test_a_job_directory_of_the_earlier_scheme_is_kept_so_old_sweeps_resume(tmp_path: Path) -> None:
    overrides = ["optim.lr=0.1", "seed=0"]
    assert job_dir(1, overrides, ["optim.lr"], str(tmp_path)) == "1_seed=0"
    (tmp_path / "1_optim.lr=0.1,seed=0").mkdir()
    assert job_dir(1, overrides, ["optim.lr"], str(tmp_path)) == "1_optim.lr=0.1,seed=0"
    nested = ["data.root=/d/x", "seed=0"]  # the earlier scheme nested a path-valued sweep
    (tmp_path / "2_data.root=" / "d" / "x,seed=0").mkdir(parents=True)
    assert job_dir(2, nested, ["seed"], str(tmp_path)) == "2_data.root=/d/x,seed=0"


def test_fixed_keys_are_those_every_job_sets_alike() -> None:
    jobs = [
        ["seed=0", "optim.lr=0.1", "+x=1"],
        ["seed=1", "optim.lr=0.1"],
        ["seed=2", "optim.lr=0.1", "+x=1"],
    ]
    assert fixed_keys(jobs) == ["optim.lr"]


def test_a_single_run_is_pinned_to_its_timestamped_directory(capsys) -> None:
    """... and its directory is announced once the job passed its checks (a refused one prints none)."""
    argv = ["prune.rate=0.5", "logger=none"]
    pinned = pinned_argv(argv)
    assert pinned[:2] == argv and pinned[2].startswith("hydra.run.dir=outputs/") and len(pinned) == 3
    directory = pinned[2].split("=", 1)[1]
    assert capsys.readouterr().out == ""
    announce()
    announce()  # once
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"lth: output directory {directory}; to resume it, rerun:",
        f"  python -m lth.train prune.rate=0.5 logger=none hydra.run.dir={directory}",
    ]


def rerun_command(stdout: str) -> list[str]:
    """The command ``lth.train`` printed to resume the sweep, run with this interpreter."""
    lines = stdout.splitlines()
    command = shlex.split(lines[lines.index(next(x for x in lines if "to resume it" in x)) + 1])
    assert command[:3] == ["python", "-m", "lth.train"]
    return command[3:]


def test_the_long_override_list_of_the_issue_runs_and_its_printed_command_resumes_it(
    lth_cli, tmp_path: Path
) -> None:
    proc = lth_cli(*LONG_COMMAND)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (tmp_path / "multirun").glob("*/*")
    assert f"lth: sweep directory {sweep.relative_to(tmp_path)}; to resume it, rerun:" in proc.stdout
    assert [p.name for p in sweep.iterdir() if p.is_dir()] == ["0"]
    assert json.loads((sweep / "0" / "DONE").read_text()) == {"status": "complete", "levels": 1}
    assert OmegaConf.load(sweep / "0" / ".hydra" / "overrides.yaml")[-1] == "train.eval_every=2"
    rerun = lth_cli(*rerun_command(proc.stdout))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "is already finished; nothing to do" in rerun.stdout + rerun.stderr
    assert list((tmp_path / "multirun").glob("*/*")) == [sweep]


def test_a_sweep_over_paths_makes_flat_directories_named_by_the_paths_last_parts(
    lth_cli, tmp_path: Path, data_root: Path
) -> None:
    """Two data roots (links to the test data) whose last parts differ only past the cut of the name."""
    long = "mnist1d_" + "x" * 120
    roots = [tmp_path / "a" / "data" / f"{long}{i}" for i in (1, 2)]
    for root in roots:
        root.parent.mkdir(parents=True, exist_ok=True)
        root.symlink_to(data_root)
    sweep = tmp_path / "sweep"
    proc = lth_cli("-m", f"data.root={roots[0]},{roots[1]}", "seed=0,1", *TINY, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name.split("_")[0] for p in jobs] == ["0", "1", "2", "3"]
    assert all((job / "DONE").exists() and len(job.name.encode()) <= MAX_NAME_BYTES for job in jobs)
    assert all(job.name.startswith(f"{job.name[0]}_data.root=mnist1d_xxx") for job in jobs)
    assert len({job.name.split("_", 1)[1] for job in jobs}) == 4  # unique beyond the job number
    for job in jobs:
        overrides = list(OmegaConf.load(job / ".hydra" / "overrides.yaml"))
        assert job.name == job_name(int(job.name[0]), overrides, exclude=[o.split("=")[0] for o in TINY])
        assert any(o == f"data.root={roots[0]}" or o == f"data.root={roots[1]}" for o in overrides)
    assert sorted(job.path for job in find_jobs(sweep)) == jobs


@pytest.mark.parametrize("flag", ["--cfg=job", "--help"])
def test_nothing_is_pinned_or_printed_when_hydra_runs_no_job(flag: str, capsys) -> None:
    argv = [flag, "seed=1"]
    assert pinned_argv(argv) == argv
    assert capsys.readouterr().out == ""
