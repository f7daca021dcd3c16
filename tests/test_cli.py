"""``python -m lth.train`` as a user runs it: real Hydra (multirun), real wandb offline, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lth.errors import ConfigError
from lth.run.config import precheck
from lth.run.job import build_job

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


BAD_INPUT = [
    (["prune.rate=1.5"], "prune.rate=1.5", "(0, 1)"),
    (["prune.rate=0"], "prune.rate=0", "(0, 1)"),
    (["prune.levels=-1"], "prune.levels=-1", "integer >= 0"),
    (["optim.lr=0"], "optim.lr=0", "> 0"),
    (["optim.lr=-0.1"], "optim.lr=-0.1", "> 0"),
    (["train.steps=0"], "train.steps=0", "integer >= 1"),
    (["train.budget=epochs"], "train.budget='epochs'", "one of flops, steps"),
    (["train.budget_cap=0.5"], "train.budget_cap=0.5", "a number >= 1"),
    (["init=foo"], "init=foo", "random_prune, reinit, reshuffle, rewind, scratch, signed_constant"),
    (["init.pruned_weights=init"], "init.pruned_weights='init'", "frozen_init, zero"),
    (["optim=rmsprop"], "optim=rmsprop", "adam, sgd"),
    (["model=vgg99"], "model=vgg99", "lenet300_100, lenet5, mlp, resnet20, student, vgg16, vgg19"),
    (["init=rewind", "init.rewind_step=500", "train.steps=100"], "init.rewind_step=500", "[0, 100]"),
    (["prune.scope=globl"], "prune.scope='globl'", "global, layer"),
    (["prune.structure=row"], "prune.structure='row'", "filter, neuron, unstructured"),
    (["prune.structure=neuron", "prune.scope=global"], "prune.scope='global'", "one of layer"),
    (["prune.structure=filter", "prune.criterion=movement"], "prune.criterion='movement'", "large_final"),
    (["prune.norm=3"], "prune.norm=3", "one of 1, 2"),
    (["prune=learned_supermask", "prune.levels=2"], "prune.levels=2", "an integer in [0, 0]"),
    (["prune.at_init=snap"], "prune.at_init='snap'", "null or one of snip, grasp, synflow"),
    (["prune=synflow", "prune.iterations=0"], "prune.iterations=0", "integer >= 1"),
    (["prune=snipp"], "prune=snipp", "grasp, imp, learned_supermask, oneshot, snip, synflow"),
    (["prune.criterion=movment"], "prune.criterion='movment'", "large_init_large_final, magnitude"),
    (["prune.rat=0.3"], "prune.rat", "rate"),
    (["prune.exclude=[fc9.weight]"], "prune.exclude='fc9.weight'", "fc1.weight, fc2.weight, fc3.weight"),
    (
        ["prune.exclude=[fc1.weight,fc2.weight,fc3.weight]"],
        "prune.exclude=['fc1.weight', 'fc2.weight', 'fc3.weight']",
        "a list that leaves at least one of fc1.weight, fc2.weight, fc3.weight",
    ),
    (["prune.rates={fc9.weight:0.5}"], "prune.rates='fc9.weight'", "fc1.weight, fc2.weight, fc3.weight"),
    (["prune.rates={fc1.weight:1.0}"], "prune.rates=", "a mapping of tensor names to rates in [0, 1)"),
    (
        ["experiment=liu_scratch", "prune.rates={features.conv9.weight:0.1}"],
        "prune.rates: Key 'features.conv9.weight' is not in struct",
        "~prune.rates '+prune.rates={...}'",
    ),
    (["logger.offline=maybe"], "logger.offline='maybe'", "auto, true, false"),
    (["logger.tags=imp"], "logger.tags='imp'", "a list of tags"),
    (["-m", "optim.lr=0.1,-1"], "optim.lr=-1", "> 0"),
    (["data.val_size=5000"], "data.val_size=5000", "[1, 3999]"),
    (["train.batch_size=3600"], "train.batch_size=3600", "3500 training examples"),
    (["data=teacher_student", "model=student", "prune=snip"], "prune.at_init='snip'", "synflow"),
    (["-m", "init=winning_ticket,reinitt"], "init=reinitt", "winning_ticket"),
    (["data=mnist", "data.mirrors=[ftp://x/]"], "data.mirrors=", "http(s) base URLs"),
    (["data=cifar10", "data.md5={cifar-10-python.tar.gz:C58F}"], "data.md5=", "lowercase hex MD5s"),
    (["trainer.precision=bf16-true"], "trainer.precision='bf16-true'", "16-mixed, 32-true, bf16-mixed"),
    (["trainer.cuda_graphs=always"], "trainer.cuda_graphs='always'", "one of auto, true, false"),
    (["+trainer.gradient_clip_val=1.0"], "trainer.gradient_clip_val=1.0", "null"),
    (
        ["+trainer.accumulate_grad_batches=4"],
        "trainer.accumulate_grad_batches=4",
        "1 (raise train.batch_size)",
    ),
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
    [
        ["prune.rate=1.5"],
        ["-m", "init=winning_ticket,reinitt"],
        ["prune.exclude=[fc9.weight]"],
        ["data.val_size=5000"],
    ],
    ids=["value", "sweep choice", "tensor name", "found with the data"],
)
def test_bad_input_exits_2_before_any_output(lth_cli, tmp_path: Path, args: list[str]) -> None:
    proc = lth_cli(
        *args, "logger=none", f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("lth: invalid config")]
    assert len(errors) == 1, proc.stderr
    assert proc.stdout == ""  # not even the output directory a refused job will not have
    assert not list(tmp_path.rglob("results.jsonl")) and not list(tmp_path.rglob("DONE"))
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    ("args", "override", "grammar"),
    [
        (["prune.rate=0.2=3"], "'prune.rate=0.2=3'", "mismatched input '=' expecting <EOF>"),
        (["-m", "prune.rate=0.2=3"], "'prune.rate=0.2=3'", "mismatched input '=' expecting <EOF>"),
        (["-m", "prune.rate=0.2,"], "'prune.rate=0.2,'", "mismatched input '<EOF>' expecting"),
        (["prune.rate='a"], '"prune.rate=\'a"', 'unexpected character "\'" at position 12'),
    ],
    ids=["single run", "multirun", "multirun, trailing comma", "lexer error"],
)
def test_an_override_hydra_cannot_parse_is_one_line_and_exit_2(
    lth_cli, tmp_path: Path, args: list[str], override: str, grammar: str
) -> None:
    proc = lth_cli(*args)  # from an empty tmp_path: Hydra's default outputs/ and multirun/ would land here
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [proc.stderr.strip()] and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"lth: invalid config: override {override} cannot be parsed: "), lines[0]
    assert grammar in lines[0] and "override_grammar" in lines[0], lines[0]
    assert list(tmp_path.iterdir()) == []


def test_an_output_dir_that_cannot_be_created_is_refused_before_running(lth_cli, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    proc = lth_cli(f"hydra.run.dir={blocker}/run")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"lth: invalid config: hydra.run.dir='{blocker}/run'; allowed: a directory lth can create and write "
        f"({blocker} is not a writable directory)"
    ]
