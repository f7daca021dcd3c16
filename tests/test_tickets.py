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
from datafiles import write_cifar, write_mnist
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import lth
from lth.errors import ConfigError
from lth.report import report
from lth.run.config import CONF_DIR, precheck
from lth.run.job import build_job, execute
from lth.run.job_dir import RunDirectory
from lth.run.provenance import PACKAGES, git_state
from lth.seeds import derived_seed
from tests.conftest import FAST, ROOT, Crash, CrashAt

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


# --- init=ticket ------------------------------------------------------------------------------------


def compose_job(output_dir: Path, data_root: Path, *overrides: str) -> DictConfig:
    base = [f"paths.output_dir={output_dir}", f"data.root={data_root}", "logger=none", *FAST]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=[*base, *overrides])


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A finished default job (MLP on MNIST-1D, levels 0-2), the ticket source of the tests below."""
    cfg = compose_job(tmp_path_factory.mktemp("source") / "job", data_root)
    execute(build_job(cfg))
    return Path(cfg.paths.output_dir)


def ticket(path: Path, *more: str) -> list[str]:
    return ["init=ticket", f"init.ticket.from={path}", *more]


def comparable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("wall_s", "ticket_source")}


@pytest.mark.parametrize("init", [["init=winning_ticket"], ["init=rewind", "init.rewind_step=5"]])
def test_a_reloaded_ticket_repeats_its_source_exactly(
    init: list[str], make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """The level-1 ticket of a 3-level job, trained under the job's own config with one more pruning event,
    repeats the job's levels 1 and 2: records, masks, full states, bit for bit on the CPU."""
    cfg = make_cfg(*init)
    cfg.paths.output_dir = str(tmp_path / "source")
    execute(build_job(cfg))
    ticket_cfg = make_cfg(*ticket(tmp_path / "source", "init.ticket.level=1"), "prune.levels=1")
    job = build_job(ticket_cfg)
    records = execute(job)
    original, again = RunDirectory(tmp_path / "source"), RunDirectory(ticket_cfg.paths.output_dir)
    assert [r["level"] for r in records] == [1, 2]
    assert [comparable(r) for r in records] == [comparable(r) for r in original.read_records()[1:]]
    for level in (1, 2):
        assert_states_equal(again.load_masks(level), original.load_masks(level))
        assert_states_equal(again.load_state(level), original.load_state(level))
    assert_states_equal(load(again.init_file), load(original.init_file))
    assert again.rewind_file.exists() == original.rewind_file.exists() == (init[0] == "init=rewind")
    if original.rewind_file.exists():
        assert_states_equal(load(again.rewind_file), load(original.rewind_file))
    meta = json.loads((tmp_path / "source" / "meta.json").read_text())
    assert records[0]["ticket_source"] == {
        "directory": str(tmp_path / "source"),
        "level": 1,
        "weights_remaining": original.read_records()[1]["weights_remaining"],
        "git_commit": meta["git_commit"],
        "git_dirty": meta["git_dirty"],
        "data_step": 30,  # level 1 of the source trained steps 31-60 of its data stream
    }
    assert records[1]["ticket_source"] == records[0]["ticket_source"]


def test_a_ticket_job_killed_and_resumed_ends_as_an_uninterrupted_one(
    source: Path, make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = make_cfg(*ticket(source), "prune.levels=1", "train.checkpoint_every=10")
    job = build_job(cfg)
    job.trainer.callbacks.append(CrashAt(45))  # in level 3 (the ticket's level 2, then one more event)
    with pytest.raises(Crash):
        execute(job)
    resumed = execute(build_job(cfg))
    cfg.paths.output_dir = str(tmp_path / "uninterrupted")
    uninterrupted = execute(build_job(cfg))
    assert [comparable(r) for r in resumed] == [comparable(r) for r in uninterrupted]
    assert [r["level"] for r in resumed] == [2, 3] and resumed[0]["ticket_source"]["data_step"] == 60
    a, b = RunDirectory(tmp_path / "run"), RunDirectory(tmp_path / "uninterrupted")
    for level in (2, 3):
        assert_states_equal(a.load_masks(level), b.load_masks(level))
        assert_states_equal(a.load_state(level), b.load_state(level))


def test_a_ticket_found_on_fashion_mnist_trains_on_mnist(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    write_mnist(tmp_path / "fashion", train=300, test=100, seed=1)
    write_mnist(tmp_path / "mnist", train=300, test=100, seed=2)
    small = ["data.val_size=50", "train.steps=20", "prune.levels=1"]
    found = make_cfg("data=fashion_mnist", f"data.root={tmp_path / 'fashion'}", *small)
    found.paths.output_dir = str(tmp_path / "found")
    execute(build_job(found))
    cfg = make_cfg(
        "data=mnist", f"data.root={tmp_path / 'mnist'}", *small, *ticket(tmp_path / "found"), "prune.levels=0"
    )
    job = build_job(cfg)
    (record,) = execute(job)  # prune.levels=0: the ticket (of the last level, 1) trained once
    source = RunDirectory(tmp_path / "found")
    assert record["level"] == 1 and record["status"] == "ok" and record["ticket_source"]["level"] == 1
    assert record["weights_remaining"] == source.read_records()[1]["weights_remaining"]
    assert_states_equal(RunDirectory(cfg.paths.output_dir).load_masks(1), source.load_masks(1))
    assert_states_equal(job.lottery.state.theta_0, load(source.init_file))
    assert record["test_acc"] != source.read_records()[1]["test_acc"]  # another dataset


def test_output_layer_reinit_transfers_every_other_tensor_to_another_class_count(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    write_cifar(tmp_path / "data", classes=10, per_batch=20, test=20)
    write_cifar(tmp_path / "data", classes=100, per_batch=20, test=20)
    small = [f"data.root={tmp_path / 'data'}", "data.val_size=20", "data.augment=false", "train.steps=10"]
    found = make_cfg("data=cifar10", *small, "prune.levels=1")
    found.paths.output_dir = str(tmp_path / "found")
    execute(build_job(found))
    kept = refusal(make_cfg, "data=cifar100", *small, *ticket(tmp_path / "found"))
    assert kept == (
        f"lth: invalid config: init.ticket.from='{tmp_path / 'found'}': tensor fc3.weight is (10, 100) in the "
        "ticket's init.pt and (100, 100) in this job's model; allowed: the same tensors and shapes "
        "(init.ticket.output_layer=reinit draws the output layer fresh)"
    )
    cfg = make_cfg("data=cifar100", *small, *ticket(tmp_path / "found"), "init.ticket.output_layer=reinit")
    job = build_job(cfg)
    records = execute(job)
    assert [(r["level"], r["status"]) for r in records] == [(1, "ok"), (2, "ok"), (3, "ok")]
    theta_0, source = job.lottery.state.theta_0, RunDirectory(tmp_path / "found")
    found_init, found_masks = load(source.init_file), source.load_masks(1)
    own = job.lottery.fresh_state(derived_seed(cfg.seed, "model"))  # this job's model as drawn
    assert theta_0["fc3.weight"].shape == (100, 100) and found_init["fc3.weight"].shape == (10, 100)
    assert torch.equal(theta_0["fc3.weight"], own["fc3.weight"]) and torch.equal(
        theta_0["fc3.bias"], own["fc3.bias"]
    )
    for name in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
        assert torch.equal(theta_0[name], found_init[name]), name
    masks = RunDirectory(cfg.paths.output_dir).load_masks(1)
    assert torch.equal(masks["fc1.weight"], found_masks["fc1.weight"]) and bool(masks["fc3.weight"].all())
    assert torch.equal(masks["fc2.weight"], found_masks["fc2.weight"])


def refusal(make_cfg: Callable[..., DictConfig], *args: str) -> str:
    """The one-line error of a job of ``args``: from the pre-run check, else from building the job."""
    message = precheck(list(args))
    if message is None:
        with pytest.raises(ConfigError) as caught:
            build_job(make_cfg(*args))
        message = str(caught.value)
    assert "\n" not in message
    return message


def edited_copy(source: Path, to: Path, edit: Callable[[Path], None]) -> Path:
    shutil.copytree(source, to)
    edit(to)
    return to


def edit_tensors(file: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(job: Path) -> None:
        tensors = load(job / file)
        change(tensors)
        torch.save(tensors, job / file)

    return edit


def edit_config(old: str, new: str) -> Callable[[Path], None]:
    def edit(job: Path) -> None:
        (job / "config.yaml").write_text((job / "config.yaml").read_text().replace(old, new))

    return edit


REFUSED_SOURCES = {  # an edit of a copy of the source -> what the refusal says
    "unfinished": (
        lambda job: (job / "DONE").unlink(),
        "{job} is unfinished (no DONE); allowed: the directory",
    ),
    "not a job": (lambda job: (job / "config.yaml").unlink(), "{job} holds no lth job (no config.yaml)"),
    "reinit": (
        edit_config("name: winning_ticket", "name: reinit"),
        "its init=reinit restarts levels from weights it does not store; allowed: a job run with "
        "init=winning_ticket, rewind, random_prune, ticket",
    ),
    "no weights": (
        lambda job: [
            (job / "init.pt").unlink(),
            edit_config("save_weights: true", "save_weights: false")(job),
        ],
        "{job}/init.pt is missing (it ran with results.save_weights=false)",
    ),
    "missing tensor": (
        edit_tensors("init.pt", lambda t: t.pop("fc2.bias")),
        "tensor fc2.bias is absent in the ticket's init.pt and (100,) in this job's model; allowed: the same "
        "tensors and shapes",
    ),
    "extra tensor": (
        edit_tensors("init.pt", lambda t: t.update(extra=torch.zeros(3))),
        "tensor extra is (3,) in the ticket's init.pt and absent in this job's model",
    ),
    "damaged": (
        lambda job: (job / "init.pt").write_bytes(b"not torch"),
        "lth: damaged file {job}/init.pt: not a tensor file lth wrote (",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED_SOURCES))
def test_a_source_that_holds_no_usable_ticket_is_refused_in_one_line(
    case: str, source: Path, make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    edit, expected = REFUSED_SOURCES[case]
    job = edited_copy(source, tmp_path / "copy", edit)
    assert expected.format(job=job) in refusal(make_cfg, *ticket(job))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["init.ticket.level=7"],
            "lth: invalid config: init.ticket.level=7; allowed: a level of {job}: 0, 1, 2",
        ),
        (
            ["model.hidden=[10]"],
            'its model is {{"_target_": "lth.models.MLP", "hidden": [100, 100]}}, this job\'s '
            '{{"_target_": "lth.models.MLP", "hidden": [10]}}; allowed: a job of this model',
        ),
        (
            ["data=digits"],
            "tensor fc1.weight is (100, 40) in the ticket's init.pt and (100, 64) in this job's model",
        ),
        (
            ["prune.exclude=[fc1.weight]"],
            "tensor fc1.weight is pruned in the ticket but not in this job (prune.exclude); allowed: the tensors "
            "the ticket prunes: fc1.weight, fc2.weight, fc3.weight",
        ),
        (["prune=snip"], "prune.at_init='snip'; allowed: null with init=ticket"),
        (["init.ticket.output_layer=drop"], "init.ticket.output_layer='drop'; allowed: one of keep, reinit"),
    ],
    ids=["level", "model", "input shape", "pruned tensors", "at init", "output layer"],
)
def test_a_ticket_that_does_not_fit_this_job_is_refused_in_one_line(
    args: list[str], expected: str, source: Path, make_cfg: Callable[..., DictConfig]
) -> None:
    assert expected.format(job=source) in refusal(make_cfg, *ticket(source), *args)


def test_init_ticket_needs_a_source() -> None:
    assert precheck(["init=ticket"]) == (
        "lth: invalid config: init.ticket.from=None; allowed: the directory of a finished lth job"
    )


@pytest.mark.parametrize("when", ["before the job starts", "once the model is built"])
def test_the_cli_refuses_a_ticket_with_exit_2_and_writes_nothing(
    when: str, source: Path, lth_cli: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    more = ["init.ticket.level=9"] if when == "before the job starts" else ["data=digits"]
    proc = lth_cli(*ticket(source), *more, "logger=none", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    assert [line for line in proc.stderr.splitlines() if line.startswith("lth: ")] == [proc.stderr.strip()]
    written = {p.name for p in (tmp_path / "run").iterdir()} if (tmp_path / "run").exists() else set()
    assert not written & {"results.jsonl", "meta.json", "DONE", "init.pt", "config.yaml"}
    if when == "before the job starts":
        assert not (tmp_path / "run").exists()
