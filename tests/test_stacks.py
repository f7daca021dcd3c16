"""Stacks of lotteries given as configs (``build_job(cfg, members)``): each member of a stack that differs
in seed, optimizer hyperparameters, LR schedule, pruning, restart, levels or label noise ends as its
single job to the bit (MLP on the CPU at one thread), writes that job's files, and resumes after a crash;
``incompatibility`` names the key that keeps two configs out of one stack."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from lth.errors import ConfigError
from lth.lottery.stacked_optim import StackedAdam, StackedSGD
from lth.run.job import Job, build_job, execute, run
from lth.run.job_dir import RunDirectory
from lth.run.stack import incompatibility, stack_key
from tests.conftest import Crash, CrashAt
from tests.test_replicates import QUIET, assert_same_lottery
from tests.test_resume import assert_same_results

Members = dict[str, tuple[str, ...]]


def stack_and_singles(
    make_cfg: Callable[..., DictConfig],
    tmp_path: Path,
    members: Members,
    host: tuple[str, ...] = (),
    levels: dict[str, int] | None = None,
) -> list[list[dict]]:
    """Run the stack of ``members`` (host job ``host``), then each member alone; each member's files
    equal its single job's. Returns the stack's records."""
    host_cfg = make_cfg(f"paths.output_dir={tmp_path / 'host'}", *QUIET, *host)
    configs = [make_cfg(f"paths.output_dir={tmp_path / 'stack' / n}", *QUIET, *o) for n, o in members.items()]
    job = build_job(host_cfg, configs)
    assert job.stacked and len(job.group) == len(members)
    records = execute(job)
    for name, overrides in members.items():
        single = tmp_path / "single" / name
        execute(build_job(make_cfg(f"paths.output_dir={single}", *QUIET, *overrides)))
        assert_same_lottery(tmp_path / "stack" / name, single, levels=(levels or {}).get(name, 3))
        for file in ("config.yaml", "results.jsonl", "curves.jsonl", "meta.json", "init.pt"):
            assert (tmp_path / "stack" / name / file).exists(), (name, file)
        stacked_config = (tmp_path / "stack" / name / "config.yaml").read_text()
        assert stacked_config == (single / "config.yaml").read_text().replace(
            str(single), str(tmp_path / "stack" / name)
        )
    assert json.loads((tmp_path / "host" / "DONE").read_text())["status"] == "complete"
    assert not list((tmp_path / "host" / "checkpoints").glob("*.ckpt"))
    return records  # type: ignore[return-value]


def test_members_differing_in_lr_rate_init_and_seed_end_as_their_single_jobs(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    members = {
        "ticket": ("seed=1", "optim.lr=0.01", "prune.rate=0.2", "init=winning_ticket"),
        "reinit": ("seed=2", "optim.lr=0.1", "prune.rate=0.5", "init=reinit", "prune.scope=global"),
        "rewind": ("seed=3", "optim.lr=0.01", "prune.rate=0.3", "init=rewind", "init.rewind_step=5"),
        "random": (
            "seed=4",
            "optim.lr=0.1",
            "prune.rate=0.4",
            "init=random_prune",
            "model.init=glorot_normal",
        ),
    }
    stack_and_singles(make_cfg, tmp_path, members)


def test_sgd_members_with_their_own_momentum_weight_decay_and_schedule(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    members = {
        "cosine": ("optim.momentum=0.0", "optim.weight_decay=0.001", "optim.schedule=cosine"),
        "warmup": ("optim.momentum=0.5", "optim.warmup_steps=10", "optim.schedule=constant", "optim.lr=0.05"),
        "nesterov": ("optim.nesterov=true", "optim.schedule=linear", "seed=1"),
    }
    stack_and_singles(make_cfg, tmp_path, members)


def test_adam_members_with_their_own_learning_rates(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    members = {
        "small": ("optim=adam", "optim.lr=0.001"),
        "large": ("optim=adam", "optim.lr=0.01", "optim.betas=[0.8,0.99]", "optim.schedule=step"),
    }
    stack_and_singles(make_cfg, tmp_path, members, host=("optim=adam",))
    host = make_cfg(f"paths.output_dir={tmp_path / 'again'}", "optim=adam")
    configs = [make_cfg(f"paths.output_dir={tmp_path / 'again' / n}", *o) for n, o in members.items()]
    optimizer = build_job(host, configs).module.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, StackedAdam) and optimizer.param_groups[0]["beta1"].tolist() == [0.9, 0.8]


def test_a_learning_rate_is_each_lotterys_own(make_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    host = make_cfg(f"paths.output_dir={tmp_path / 'host'}", *QUIET)
    configs = [
        make_cfg(f"paths.output_dir={tmp_path / n}", *QUIET, *o)
        for n, o in (("a", ("optim.lr=0.01",)), ("b", ("optim.lr=0.1", "optim.momentum=0.5")))
    ]
    job = build_job(host, configs)
    optimizer = job.module.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, StackedSGD)
    assert optimizer.param_groups[0]["lr"].tolist() == [0.01, 0.1]
    assert optimizer.param_groups[0]["momentum"].tolist() == [0.9, 0.5]


def test_a_member_with_fewer_levels_finishes_first_and_is_complete(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    members = {"short": ("prune.levels=1", "seed=1"), "long": ("prune.levels=2",)}
    records = stack_and_singles(make_cfg, tmp_path, members, levels={"short": 2})
    assert [len(r) for r in records] == [2, 3]
    assert json.loads((tmp_path / "stack" / "short" / "DONE").read_text()) == {
        "status": "complete",
        "levels": 2,
    }


def test_members_with_their_own_label_noise(make_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    members = {
        "clean": ("data.label_noise=0", "optim.lr=0.01"),
        "noisy": ("data.label_noise=0.3", "optim.lr=0.01", "seed=1"),
        "noisier": ("data.label_noise=0.5", "optim.lr=0.01"),
    }
    stack_and_singles(make_cfg, tmp_path, members, host=("data.label_noise=0.2",))


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.hidden=[64]", "model.hidden"),
        ("train.batch_size=32", "train.batch_size"),
        ("optim=adam", "optim.name"),
    ],
)
def test_incompatibility_names_the_key_that_differs(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, override: str, key: str
) -> None:
    a = make_cfg(f"paths.output_dir={tmp_path / 'a'}")
    b = make_cfg(f"paths.output_dir={tmp_path / 'b'}", override)
    why = incompatibility([a, b])
    assert why is not None and why.startswith(f"{key} differs: ") and "\n" not in why
    with pytest.raises(ConfigError, match=rf"^lth: invalid config: the members of one stack differ: {key} "):
        build_job(a, [a, b])


def test_compatible_members_have_one_stack_key(make_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    a = make_cfg(f"paths.output_dir={tmp_path / 'a'}", "logger=csv")
    b = make_cfg(
        f"paths.output_dir={tmp_path / 'b'}",
        "logger=csv",
        "seed=7",
        "optim.lr=0.3",
        "prune.rate=0.5",
        "init=rewind",
        "data.label_noise=0.1",
        "prune.levels=4",
        "model.init=glorot_normal",
    )
    assert incompatibility([a, b]) is None and stack_key(a) == stack_key(b)
    flops = ("train.budget=flops", "prune.scope=global")
    why = incompatibility([make_cfg(*flops), make_cfg(*flops, "seed=1", "paths.output_dir=x")])
    assert why is not None and why.startswith("train.budget=flops")
    assert incompatibility([make_cfg("train.budget=flops"), make_cfg("train.budget=flops", "prune.rate=0.5")])
    learned = ("prune=learned_supermask", "prune.levels=0", "optim=adam")
    why = incompatibility([make_cfg(*learned), make_cfg(*learned, "optim.lr=0.01", "paths.output_dir=y")])
    assert why is not None and why.startswith("optim differs: networks side by side")


def test_a_crashed_stack_resumes_and_ends_as_an_uninterrupted_one(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """Member "short" finishes at step 60; the stack crashes at step 75 and resumes from step 70."""
    members = {
        "short": ("prune.levels=1", "seed=1", "optim.lr=0.01"),
        "long": ("optim.schedule=cosine", "init=rewind", "init.rewind_step=5"),
    }

    def job(root: Path) -> tuple[Job, DictConfig, list[DictConfig]]:
        host = make_cfg(f"paths.output_dir={root / 'host'}", *QUIET, "train.checkpoint_every=10")
        configs = [
            make_cfg(f"paths.output_dir={root / n}", *QUIET, "train.checkpoint_every=10", *o)
            for n, o in members.items()
        ]
        return build_job(host, configs), host, configs

    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    execute(job(reference)[0])
    crashing = job(interrupted)[0]
    crashing.trainer.callbacks.append(CrashAt(75))
    with pytest.raises(Crash):
        execute(crashing)
    assert (interrupted / "short" / "DONE").exists() and not (interrupted / "long" / "DONE").exists()
    assert not (interrupted / "host" / "DONE").exists()
    assert (
        torch.load(interrupted / "host" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 70
    )
    resumed, host, configs = job(interrupted)
    execute(resumed)
    for name in members:
        assert_same_results(reference / name, interrupted / name)
        assert (interrupted / name / "DONE").read_text() == (reference / name / "DONE").read_text()
    assert json.loads((interrupted / "host" / "DONE").read_text())["status"] == "complete"
    records = run(host, configs)  # finished: read back
    assert [len(r) for r in records] == [2, 3]
    assert RunDirectory(interrupted / "long").read_records() == records[1]


HETERO = {
    "a": ("optim.lr=0.01", "optim.schedule=cosine", "seed=1"),
    "b": ("optim.lr=0.02", "optim.momentum=0.5", "optim.warmup_steps=10", "prune.rate=0.4"),
}


def test_the_captured_stacked_step_uncaptured_gives_the_eager_members(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """The step a GPU captures (batches drawn on the device, learning rates set in place before each
    replay), run on CPU: each member's records and masks are the eager stack's."""
    for path, drawn in (("eager", False), ("drawn", True)):
        host = make_cfg(f"paths.output_dir={tmp_path / path / 'host'}", *QUIET)
        configs = [make_cfg(f"paths.output_dir={tmp_path / path / n}", *QUIET, *o) for n, o in HETERO.items()]
        job = build_job(host, configs)
        job.module.drawn_steps = drawn
        execute(job)
        assert (job.module.step_graph is not None) == drawn
    for name in HETERO:
        assert_same_lottery(tmp_path / "drawn" / name, tmp_path / "eager" / name)


def test_a_bf16_mixed_stack_of_members_ends_as_their_single_jobs(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """Lightning-stepped (mixed precision): each member's own optimizer and schedule, within bfloat16's
    rounding of other sums (as replicates: tests/test_replicates.py)."""
    bf16 = ("trainer.precision=bf16-mixed",)
    host = make_cfg(f"paths.output_dir={tmp_path / 'host'}", *QUIET, *bf16)
    configs = [
        make_cfg(f"paths.output_dir={tmp_path / 'stack' / n}", *QUIET, *bf16, *o) for n, o in HETERO.items()
    ]
    job = build_job(host, configs)
    execute(job)
    assert not job.module.plain_steps and job.module.per_lottery
    for name, overrides in HETERO.items():
        single = tmp_path / "single" / name
        execute(build_job(make_cfg(f"paths.output_dir={single}", *QUIET, *bf16, *overrides)))
        assert_same_lottery(tmp_path / "stack" / name, single, 1e-5)
