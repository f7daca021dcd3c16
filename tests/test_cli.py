"""``python -m lth.train`` as a user runs it: real Hydra (multirun), real wandb offline, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lth.config import ConfigError, precheck
from lth.train import build_job

FAST = ["train.steps=20", "train.eval_every=10", "train.batch_size=64", "prune.levels=2"]


def test_the_users_multirun_runs_four_complete_lotteries(lth_cli, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = lth_cli(
        "-m", "prune.rate=0.2,0.5", "optim.lr=0.01,0.1", *FAST, "logger=csv", f"hydra.sweep.dir={sweep}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "results.jsonl").exists())
    assert [j.name.split("_", 1)[0] for j in jobs] == ["0", "1", "2", "3"]
    seen = set()
    for job in jobs:
        records = [json.loads(line) for line in (job / "results.jsonl").read_text().splitlines()]
        overrides = dict(o.split("=") for o in job.name.split("_", 1)[1].split(","))
        rate, lr = float(overrides["prune.rate"]), float(overrides["optim.lr"])
        seen.add((rate, lr))
        assert [r["level"] for r in records] == [0, 1, 2]
        assert all(r["status"] == "ok" for r in records)
        assert json.loads((job / "DONE").read_text())["status"] == "complete"
        assert records[2]["layers"]["fc1.weight"] == pytest.approx((1 - rate) ** 2, abs=1e-3)
        assert records[2]["layers"]["fc3.weight"] == pytest.approx((1 - rate / 2) ** 2, abs=1e-3)
        masks = torch.load(job / "levels" / "level_02" / "masks.pt", weights_only=True)
        assert (
            int(masks["fc1.weight"].sum()) / masks["fc1.weight"].numel() == records[2]["layers"]["fc1.weight"]
        )
        assert (job / "csv" / "metrics.csv").stat().st_size > 0
    assert seen == {(0.2, 0.01), (0.2, 0.1), (0.5, 0.01), (0.5, 0.1)}


def test_default_logger_is_wandb_offline_without_credentials(lth_cli, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = lth_cli(*FAST, "prune.levels=1", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    (log,) = offline.glob("run-*.wandb")
    assert log.stat().st_size > 0
    assert len((run_dir / "results.jsonl").read_text().splitlines()) == 2


BAD_INPUT = [
    (["prune.rate=1.5"], "prune.rate=1.5", "(0, 1)"),
    (["prune.rate=0"], "prune.rate=0", "(0, 1)"),
    (["prune.levels=-1"], "prune.levels=-1", "integer >= 0"),
    (["optim.lr=0"], "optim.lr=0", "> 0"),
    (["optim.lr=-0.1"], "optim.lr=-0.1", "> 0"),
    (["train.steps=0"], "train.steps=0", "integer >= 1"),
    (["init=foo"], "init=foo", "random_prune, reinit, rewind, winning_ticket"),
    (["optim=rmsprop"], "optim=rmsprop", "adam, sgd"),
    (["model=vgg99"], "model=vgg99", "lenet300_100, lenet5, mlp, resnet20, vgg16, vgg19"),
    (["init=rewind", "init.rewind_step=500", "train.steps=100"], "init.rewind_step=500", "[0, 100]"),
    (["prune.scope=globl"], "prune.scope='globl'", "global, layer"),
    (["prune.rat=0.3"], "prune.rat", "rate"),
    (["prune.exclude=[fc9.weight]"], "prune.exclude='fc9.weight'", "fc1.weight, fc2.weight, fc3.weight"),
    (["-m", "optim.lr=0.1,-1"], "optim.lr=-1", "> 0"),
    (["-m", "init=winning_ticket,reinitt"], "init=reinitt", "winning_ticket"),
]


@pytest.mark.parametrize(("args", "key", "allowed"), BAD_INPUT, ids=[" ".join(a) for a, _, _ in BAD_INPUT])
def test_bad_input_is_one_line_naming_key_and_allowed_values(
    make_cfg, args: list[str], key: str, allowed: str
) -> None:
    message = precheck(args)
    if message is None:  # found only once the model is built (tensor names)
        with pytest.raises(ConfigError) as caught:
            build_job(make_cfg(*args))
        message = str(caught.value)
    assert message.startswith("lth: invalid config") and "\n" not in message
    assert key in message and allowed in message, message


@pytest.mark.parametrize(
    "args",
    [["prune.rate=1.5"], ["-m", "init=winning_ticket,reinitt"], ["prune.exclude=[fc9.weight]"]],
    ids=["value", "sweep choice", "tensor name"],
)
def test_bad_input_exits_2_before_any_output(lth_cli, tmp_path: Path, args: list[str]) -> None:
    proc = lth_cli(
        *args, "logger=none", f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("lth: invalid config")]
    assert len(errors) == 1, proc.stderr
    assert not list(tmp_path.rglob("results.jsonl")) and not list(tmp_path.rglob("DONE"))
    assert not (tmp_path / "sweep").exists()
