"""Tickets as artefacts: the whole ticket on disk, the provenance of a job, and a ticket trained by a new job."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

import lth
from lth.report import report
from lth.run.job import build_job, execute
from lth.run.job_dir import RunDirectory
from lth.run.provenance import PACKAGES, git_state
from tests.conftest import ROOT, Crash, CrashAt

RESNET = ["model=resnet20", "data=digits", "train.steps=10", "train.eval_every=5", "train.batch_size=32"]


def load(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def assert_states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_the_job_directory_holds_the_whole_ticket(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg(*RESNET, "prune.levels=1", "init=rewind", "init.rewind_step=3")
    job = build_job(cfg)
    model = job.module.network.model
    execute(job)
    run_dir, state = RunDirectory(cfg.paths.output_dir), job.lottery.state
    for path in run_dir.path.rglob("*.pt"):
        load(path)  # plain tensors only: loads without pickled code
    theta_0, rewind = load(run_dir.init_file), load(run_dir.rewind_file)
    assert theta_0.keys() == model.state_dict().keys()  # every tensor: biases, batch-norm buffers
    assert any(".bn1.running_var" in name for name in theta_0) and "fc.bias" in theta_0
    assert_states_equal(theta_0, state.theta_0)
    assert_states_equal(rewind, state.snapshot)  # theta_k, after 3 steps
    assert not torch.equal(rewind["bn.running_mean"], theta_0["bn.running_mean"])
    final = run_dir.load_state(1)
    assert_states_equal(final, job.module.network.model_state())  # the full state at the level's end
    assert not torch.equal(run_dir.load_state(0)["bn.running_mean"], final["bn.running_mean"])
    assert sorted(p.name for p in run_dir.level_dir(0).iterdir()) == ["masks.pt", "state.pt"]


def test_save_weights_false_keeps_only_the_masks(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg("prune.levels=1", "init=rewind", "init.rewind_step=3", "results.save_weights=false")
    execute(build_job(cfg))
    found = sorted(str(p.relative_to(cfg.paths.output_dir)) for p in Path(cfg.paths.output_dir).rglob("*.pt"))
    assert found == ["levels/level_00/masks.pt", "levels/level_01/masks.pt"]


def git(repo: Path, *args: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def copy_source(to: Path) -> Path:
    """The files an sdist is built from, copied to the new directory ``to``."""
    to.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, to / name)
    for name in ("lth", "conf"):
        shutil.copytree(ROOT / name, to / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    return to


@pytest.mark.skipif(
    Path(lth.__file__).parents[1] != ROOT or not (ROOT / ".git").exists(),
    reason="lth is not run from a checkout",
)
def test_meta_json_holds_the_provenance_of_a_job_run_from_a_checkout(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg("prune.levels=1", "train.steps=20")
    execute(build_job(cfg))
    meta = json.loads((Path(cfg.paths.output_dir) / "meta.json").read_text())
    assert meta["git_commit"] == git(ROOT, "rev-parse", "HEAD")
    assert meta["git_dirty"] == bool(git(ROOT, "status", "--porcelain"))
    assert meta["lth_version"] == lth.__version__ and meta["versions"]["torch"] == torch.__version__
    assert list(meta["versions"]) == ["python", *PACKAGES] and None not in meta["versions"].values()
    assert meta["torch_threads"] == torch.get_num_threads() and meta["world_size"] == 1
    assert meta["device"].startswith("cpu: ") and meta["host"]
    assert meta["start_time"] <= meta["end_time"] and 0 < meta["wall_s"] < 60
    assert meta["starts"] == [{k: v for k, v in meta.items() if k != "starts"}]


def test_the_commit_is_that_of_the_checkout_lth_runs_from(tmp_path: Path) -> None:
    repo = copy_source(tmp_path / "repo")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "x")
    assert git_state(repo / "lth") == (git(repo, "rev-parse", "HEAD"), False)
    (repo / "lth" / "new.py").write_text("")
    assert git_state(repo / "lth") == (git(repo, "rev-parse", "HEAD"), True)
    shutil.copytree(repo / "lth", repo / "site-packages" / "lth")  # installed into a venv inside a checkout
    assert git_state(repo / "site-packages" / "lth") == (None, None)


def test_a_job_run_from_an_sdist_install_records_no_commit(tmp_path: Path, cli_env: dict[str, str]) -> None:
    source = copy_source(tmp_path / "source")
    build = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    built = subprocess.run(
        [sys.executable, "-c", build, str(tmp_path)], cwd=source, capture_output=True, text=True, check=True
    )
    sdist = tmp_path / built.stdout.split()[-1]
    checkout = tmp_path / "checkout"  # a git checkout around the install: still not lth's
    checkout.mkdir()
    git(checkout, "init", "-q")
    install = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
    ]
    subprocess.run(
        [*install, "--target", str(checkout / "site"), str(sdist)], check=True, capture_output=True
    )
    env = cli_env | {"PYTHONPATH": str(checkout / "site")}
    run = [sys.executable, "-m", "lth.train", "data=digits", "logger=none", "prune.levels=0", "train.steps=5"]
    proc = subprocess.run(
        [*run, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert (meta["git_commit"], meta["git_dirty"]) == (None, None)
    assert meta["command"].endswith(f"-m lth.train {' '.join(run[3:])} hydra.run.dir={tmp_path / 'run'}")
    assert meta["overrides"] == run[3:]


def read_meta(job: Path) -> dict:
    return json.loads((job / "meta.json").read_text())


def test_a_resumed_job_keeps_the_provenance_and_times_of_each_start(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg("train.checkpoint_every=10")
    job = build_job(cfg)
    job.trainer.callbacks.append(CrashAt(45))
    with pytest.raises(Crash):
        execute(job)
    crashed = read_meta(Path(cfg.paths.output_dir))
    assert crashed["end_time"] is crashed["wall_s"] is None  # the job is not done
    assert crashed["starts"][0]["end_time"] is not None  # but this start ended
    execute(build_job(cfg))
    meta = read_meta(Path(cfg.paths.output_dir))
    first, second = meta["starts"]
    assert first == crashed["starts"][0] and meta["start_time"] == first["start_time"] <= second["start_time"]
    assert meta["end_time"] == second["end_time"] and meta["wall_s"] == round(
        first["wall_s"] + second["wall_s"], 3
    )


def test_report_lists_the_versions_and_warns_when_they_differ(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = make_cfg("prune.levels=0", "train.steps=10")
    execute(build_job(cfg))
    sweep = tmp_path / "sweep"
    for name in ("0_seed=0", "1_seed=1", "2_seed=2"):
        shutil.copytree(cfg.paths.output_dir, sweep / name)
    meta = read_meta(sweep / "1_seed=1")
    for start in (meta, *meta["starts"]):
        start["versions"]["torch"] = "9.9.9"
    (sweep / "1_seed=1" / "meta.json").write_text(json.dumps(meta))
    (sweep / "2_seed=2" / "meta.json").unlink()  # a job from before meta.json
    report(sweep)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == [
        f"lth.report: warning: the jobs ran with different torch: {torch.__version__} (1 job), 9.9.9 (1 job)"
    ]
    summary = (sweep / "report" / "summary.md").read_text()
    assert f"- lth: {lth.__version__}\n" in summary and f"- numpy: {meta['versions']['numpy']}\n" in summary
    assert f"- **torch differs**:\n  - {torch.__version__}: `0_seed=0`\n  - 9.9.9: `1_seed=1`\n" in summary
    assert "- unknown (no readable meta.json): 1 job\n" in summary
