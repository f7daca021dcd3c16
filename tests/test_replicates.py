"""train.replicates=K: replicate k of a stack is the single job with seed seed+k; files, resume, refusals."""

from __future__ import annotations

import csv
import json
import math
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from rich.console import Console

from lth.errors import ConfigError
from lth.lottery import prunable_weight_names
from lth.lottery.stacked import StackedNetworks
from lth.models import MLP, ResNet
from lth.report import report
from lth.run.config import check_config
from lth.run.console import sweep_table
from lth.run.job import Job, build_job, execute, run
from lth.run.job_dir import RunDirectory
from tests.conftest import LTH_TRAIN, Crash, CrashAt
from tests.test_resume import JOB as RESUME_JOB
from tests.test_resume import assert_same_results, kill_twice

# A replicate against its single job: the MLP's stack (StackedChain) and the side-by-side stack run each
# replicate with its single job's kernels, so on the CPU at one thread weights, masks and evaluations are
# equal to the bit (REL 0); only the recorded mean training loss sums its batch in another order (its
# gradient is the same), within TRAIN_LOSS_REL. vmap stacks sum in another order (TOLERANCES: relative,
# and the levels each case has at least).
REL = 0.0
TRAIN_LOSS_REL = 1e-6
QUIET = ("trainer.enable_progress_bar=false",)


def assert_close(x: object, y: object, where: tuple, rel: float = REL) -> None:
    """Equal, floats within ``rel`` (nested in dicts, e.g. the analyses' numbers)."""
    if isinstance(x, dict):
        assert isinstance(y, dict) and x.keys() == y.keys(), where
        for key in x:
            exact_but_the_loss = rel == 0 and key == "train_loss"
            assert_close(x[key], y[key], (*where, key), TRAIN_LOSS_REL if exact_but_the_loss else rel)
    elif isinstance(x, float):
        assert x == y if rel == 0 else math.isclose(x, y, rel_tol=rel, abs_tol=1e-7), (*where, x, y)
    else:
        assert x == y, where


def assert_same_lottery(replicate: Path, single: Path, rel: float = REL, levels: int = 3) -> None:
    """Same masks at every level; every metric within ``rel``; the same steps, levels and statuses."""
    a, b = RunDirectory(replicate).read_records(), RunDirectory(single).read_records()
    assert [r["level"] for r in a] == [r["level"] for r in b] and len(a) >= levels
    for x, y in zip(a, b, strict=True):
        ignored = {"wall_s"} | (
            {"analysis"} if rel >= BATCH_NORM_REL else set()
        )  # distances: small differences
        assert_close(
            {k: v for k, v in x.items() if k not in ignored},
            {k: v for k, v in y.items() if k not in ignored},
            (x["level"],),
            rel,
        )
        masks_a, masks_b = (
            RunDirectory(replicate).load_masks(x["level"]),
            RunDirectory(single).load_masks(x["level"]),
        )
        assert all(torch.equal(masks_a[n], masks_b[n]) for n in masks_b), x["level"]
    assert json.loads((replicate / "DONE").read_text()) == json.loads((single / "DONE").read_text())


# A BatchNorm model through vmap. At lr 0.01 a ReLU input that one summation order puts at exactly 0 and
# the other at 5e-7 sends a 1e-2 gradient difference (about once in 30 steps, in the single job as in
# the stack, each against float64), and the metrics part by up to 0.9. On an AMD EPYC (AVX2, torch 2.13)
# the batched convolutions and batch norms give gradients within 1e-5 relative of the single ones at
# each step, and after 30 steps at lr 1e-4 the metrics agree to 1e-4 (to 2e-7 on the first machine).
BATCH_NORM = ("model=resnet20", "model.width_multiplier=0.25", "data=digits", "optim=sgd", "optim.lr=0.0001")
BATCH_NORM_REL = 1e-3
CONV2 = ("model=conv2", "data=digits", "optim=sgd", "optim.lr=0.01")  # vmap; lr 0.1 is chaotic here
SUPERMASK = ("prune=learned_supermask", "prune.levels=0", "optim=adam", "optim.lr=0.1")  # side by side
# (rel, levels at least) where not (REL, 3)
TOLERANCES = {BATCH_NORM: (BATCH_NORM_REL, 3), CONV2: (1e-5, 3), SUPERMASK: (REL, 1)}


@pytest.mark.parametrize(
    "overrides",
    [
        ("init=winning_ticket", "prune.scope=layer", "optim=sgd"),
        ("init=rewind", "init.rewind_step=5", "prune.scope=global", "optim=adam"),
        ("init=reinit", "prune.scope=layer", "optim=adam", "optim.weight_decay=0.01"),
        ("init=random_prune", "prune.scope=global", "optim=sgd", "optim.schedule=cosine"),
        ("prune=snip", "init.pruned_weights=frozen_init", "optim=sgd"),
        ("train.budget=flops", "init=random_prune", "prune.scope=layer", "optim=sgd"),
        ("train.budget=flops", "prune.structure=neuron", "optim=adam"),
        CONV2,
        BATCH_NORM,
        ("data.label_noise=0.5", "optim=sgd", "optim.lr=0.01"),
        SUPERMASK,
    ],
    ids=[
        "winning_ticket-layer-sgd",
        "rewind-global-adam",
        "reinit-layer-adam-wd",
        "random_prune-global-sgd",
        "snip-frozen_init-sgd",
        "flops-random_prune-layer-sgd",
        "flops-neuron-adam",
        "vmap-conv2-digits-sgd",
        "vmap-batchnorm-resnet20-digits-sgd",
        "label_noise-sgd",
        "learned_supermask-adam",
    ],
)
def test_replicate_k_ends_as_the_single_job_with_seed_plus_k(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, overrides: tuple[str, ...]
) -> None:
    stacked = make_cfg("seed=3", "train.replicates=2", f"paths.output_dir={tmp_path / 'stack'}", *overrides)
    execute(build_job(stacked))
    for k in range(2):
        single = make_cfg(f"seed={3 + k}", f"paths.output_dir={tmp_path / f'single{k}'}", *QUIET, *overrides)
        execute(build_job(single))
        rel, levels = TOLERANCES.get(overrides, (REL, 3))
        assert_same_lottery(tmp_path / "stack" / f"replicate_{k}", tmp_path / f"single{k}", rel, levels)


def test_the_job_directory_holds_one_job_directory_per_replicate_and_reports_them_as_seeds(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = make_cfg("seed=5", "train.replicates=3", "prune.levels=1")
    out = Path(cfg.paths.output_dir)
    records = run(cfg)
    assert [len(r) for r in records] == [2, 2, 2]
    for k in range(3):
        job = out / f"replicate_{k}"
        assert (job / "results.jsonl").exists() and (job / "curves.jsonl").exists()
        assert (job / "levels" / "level_01" / "masks.pt").exists() and (
            job / "levels" / "level_01" / "state.pt"
        ).exists()
        assert (job / "init.pt").exists() and json.loads((job / "meta.json").read_text())["end_time"]
        assert json.loads((job / "DONE").read_text()) == {"status": "complete", "levels": 2}
        assert "seed: " + str(5 + k) in (job / "config.yaml").read_text()
    assert json.loads((out / "DONE").read_text())["status"] == "complete"
    assert not list((out / "checkpoints").glob("*.ckpt"))
    assert run(cfg) == records  # finished: read back, not rerun
    console = Console(record=True, width=120)
    console.print(sweep_table(tmp_path))  # a sweep's closing table: a row per replicate
    rows = [line for line in console.export_text().splitlines() if "replicate_" in line]
    assert [row.split()[1] for row in rows] == [f"run/replicate_{k}" for k in range(3)]
    assert all("complete" in row for row in rows)
    summary = (report(out, tmp_path / "report") / "jobs.csv").read_text().splitlines()
    assert sorted(line.split(",")[1] for line in summary[1:]) == ["5", "6", "7"]  # the seeds column


def test_logger_csv_writes_each_replicates_metrics_in_its_directory(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    records = run(make_cfg("train.replicates=2", "logger=csv"))
    for k in range(2):
        with (tmp_path / "run" / f"replicate_{k}" / "csv" / "metrics.csv").open() as f:
            rows = list(csv.DictReader(f))
        levels = [float(row["level/test_acc"]) for row in rows if row["level/test_acc"]]
        assert levels == [r["test_acc"] for r in records[k]]
        evals = [int(row["step"]) for row in rows if row["val/loss"]]
        assert evals == list(range(10, 91, 10))  # every evaluation, at its global step


def diverging(job: Job, k: int) -> Job:
    """``job`` with replicate ``k``'s weights made NaN: its first evaluation finds it diverged."""
    with torch.no_grad():
        job.stack.params["fc1.weight"][k] = math.nan
    return job


def test_a_diverged_replicate_is_frozen_and_the_others_go_on(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    job = diverging(build_job(make_cfg("train.replicates=2", f"paths.output_dir={tmp_path / 'stack'}")), 1)
    execute(job)
    stack = tmp_path / "stack"
    assert json.loads((stack / "replicate_1" / "DONE").read_text()) == {"status": "diverged", "levels": 1}
    at_divergence = RunDirectory(stack / "replicate_1").load_state(0)
    for name, weight in job.stack.networks[1].model_state().items():  # frozen: never trained again
        torch.testing.assert_close(weight, at_divergence[name], rtol=0, atol=0, equal_nan=True)
    assert json.loads((stack / "DONE").read_text())["status"] == "diverged"
    execute(build_job(make_cfg(f"paths.output_dir={tmp_path / 'single'}", *QUIET)))
    assert_same_lottery(stack / "replicate_0", tmp_path / "single")


def test_a_job_resumed_after_a_replicate_diverged_ends_as_an_uninterrupted_one(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """Replicate 1 diverges at step 10; the job crashes at step 45 and resumes from its checkpoint at 40:
    replicate 1 stays frozen at the weights it diverged with, replicate 0 ends as without the crash."""
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    config = ("train.replicates=2", "train.checkpoint_every=10")
    uninterrupted = diverging(build_job(make_cfg(*config, f"paths.output_dir={reference}")), 1)
    execute(uninterrupted)
    crashing = diverging(build_job(make_cfg(*config, f"paths.output_dir={interrupted}")), 1)
    crashing.trainer.callbacks.append(CrashAt(45))
    with pytest.raises(Crash):
        execute(crashing)
    assert json.loads((interrupted / "replicate_1" / "DONE").read_text())["status"] == "diverged"
    assert not (interrupted / "DONE").exists()
    assert torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 40
    resumed = build_job(make_cfg(*config, f"paths.output_dir={interrupted}"))
    execute(resumed)
    held, at_divergence = (
        resumed.stack.networks[1].model_state(),
        uninterrupted.stack.networks[1].model_state(),
    )
    for name, weight in held.items():
        torch.testing.assert_close(weight, at_divergence[name], rtol=0, atol=0, equal_nan=True)
    for k in range(2):
        assert_same_results(reference / f"replicate_{k}", interrupted / f"replicate_{k}")
    assert [len(RunDirectory(interrupted / f"replicate_{k}").read_records()) for k in range(2)] == [3, 1]


REPLICATES_JOB = ["train.replicates=4", *RESUME_JOB]  # the single-job kill -9 test's job, stacked


def test_kill_9_mid_level_then_rerun_equals_an_uninterrupted_run(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    def start(run_dir: Path) -> subprocess.Popen[str]:
        log = open(f"{run_dir}.log", "a")  # noqa: SIM115 (closed with the process)
        args = [*LTH_TRAIN, *REPLICATES_JOB, f"hydra.run.dir={run_dir}"]
        env = cli_env | {"OMP_NUM_THREADS": "1"}
        return subprocess.Popen(args, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)

    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    assert start(reference).wait(timeout=300) == 0
    kills = kill_twice(lambda: start(interrupted), lambda _: interrupted / "checkpoints" / "last.ckpt")
    assert kills == 2 and not (interrupted / "DONE").exists()
    assert start(interrupted).wait(timeout=300) == 0
    assert Path(f"{interrupted}.log").read_text().count("resuming from") >= kills
    for k in range(4):
        assert_same_results(reference / f"replicate_{k}", interrupted / f"replicate_{k}")


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.budget=flops prune.scope=global", "train.budget"),
        ("train.budget=flops prune=snip prune.levels=0", "train.budget"),  # global scope at init
        ("trainer.devices=8 trainer.accelerator=cpu trainer.oversubscribe=true", "trainer.devices"),
    ],
)
def test_combinations_that_cannot_work_are_refused_in_one_line(
    make_cfg: Callable[..., DictConfig], override: str, key: str
) -> None:
    check_config(make_cfg(*override.split()))  # fine alone
    with pytest.raises(ConfigError, match=rf"^lth: invalid config: {key}=.*with train.replicates=4[^\n]*$"):
        check_config(make_cfg(*override.split(), "train.replicates=4"))


def test_a_refused_replicate_job_exits_2_with_one_line(
    lth_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = lth_cli("train.replicates=2", "train.budget=flops", "prune.scope=global", "logger=none")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "lth: invalid config: train.budget='flops'; allowed: steps with train.replicates=2 and prune.scope=global "
        "(each replicate would keep its own count per tensor, so its own level lengths, and the stack trains in "
        "lockstep); flops with prune.scope=layer"
    ]


def test_replicates_whose_levels_come_to_differ_in_length_stop_with_a_runtime_error(
    make_cfg: Callable[..., DictConfig],
) -> None:
    """The config checks allow flops only where survivor counts agree; replicate 1 is made to prune fc1
    at another rate regardless, so its level 1 is shorter than replicate 0's."""
    job = build_job(make_cfg("train.replicates=2", "train.budget=flops", "prune.scope=layer"))
    plan = job.group.lotteries[1].plan
    job.group.lotteries[1].plan = replace(plan, rates=dict(plan.rates) | {"fc1.weight": 0.5})
    with pytest.raises(
        RuntimeError, match=r"^lth: the live lotteries' levels differ \(start step, length: \[\(30, "
    ):
        execute(job)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_stacked_step_runs_on_cuda(make_cfg: Callable[..., DictConfig]) -> None:
    job = build_job(make_cfg("train.replicates=4"))
    execute(job)
    assert all(p.is_cuda for p in job.stack.parameters()) and job.datamodule.replicas.x.is_cuda
    assert all(m.is_cuda for m in job.stack.masks.values())
    assert all(lottery.state.status == "complete" for lottery in job.group.lotteries)
    masks = job.stack.networks[0].mask_dict()
    assert all(m.is_cuda for m in masks.values()) and masks[next(iter(masks))].float().mean() < 1


def test_the_batched_matmul_and_the_vmap_forward_give_each_replicate_its_own_loss() -> None:
    models = [MLP((40,), 10, [16, 8]) for _ in range(3)]
    x, y = torch.randn(3, 5, 40), torch.randint(0, 10, (3, 5))
    alone = torch.stack([F.cross_entropy(m(x[k]), y[k]) for k, m in enumerate(models)])
    stacked = StackedNetworks(models, prunable_weight_names(models[0]))
    assert stacked.chain
    torch.testing.assert_close(stacked.losses(x, y, F.cross_entropy), alone)
    torch.testing.assert_close(stacked.vmapped_losses(x, y, F.cross_entropy), alone)


@pytest.mark.parametrize(
    "layers",
    [
        lambda: [torch.nn.Flatten(), torch.nn.Linear(40, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)],
        lambda: [
            torch.nn.ReLU(),
            torch.nn.Linear(40, 32, bias=False),
            torch.nn.ReLU(),
            torch.nn.ReLU(),
            torch.nn.Linear(32, 24),
            torch.nn.Linear(24, 10),
            torch.nn.ReLU(),
        ],
    ],
    ids=["mlp", "relu-first-no-bias-relu-last"],
)
def test_the_stacked_chain_gives_each_replicate_its_single_forward_and_gradients_to_the_bit(layers) -> None:
    """One autograd node for the chain, ReLUs in place: every replicate's output, loss, weight and bias
    gradients and input gradient equal its own module's (one thread, the CPU; matrices of the sizes
    torch multiplies with its BLAS, not its loop for tiny ones)."""
    models = [torch.nn.Sequential(*layers()) for _ in range(3)]
    x, y = torch.randn(3, 32, 40), torch.randint(0, 10, (3, 32))
    stacked = StackedNetworks(models, prunable_weight_names(models[0]))
    assert stacked.chain
    xs = x.clone().requires_grad_()
    stacked.objective(stacked.losses(xs, y, F.cross_entropy)).backward()
    for k, model in enumerate(models):
        alone = torch.nn.Sequential(*layers())
        alone.load_state_dict(model.state_dict())
        xk = x[k].clone().requires_grad_()
        out = alone(xk)
        F.cross_entropy(out, y[k]).backward()
        assert torch.equal(stacked.outputs(x)[k], out)
        assert torch.equal(xs.grad[k], xk.grad)
        for name, p in alone.named_parameters():
            assert torch.equal(stacked.params[name].grad[k], p.grad), name


def test_each_replicates_batch_norm_statistics_move_as_in_its_single_job(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """The stacked step updates the stacked running means, variances and batch counts in place: after
    30 steps replicate k's (views of its slice, which its evaluation reads) are the single job's."""
    stack = build_job(make_cfg("seed=3", "train.replicates=2", "prune.levels=0", *BATCH_NORM))
    execute(stack)
    for k in range(2):
        overrides = (f"seed={3 + k}", f"paths.output_dir={tmp_path / f'single{k}'}", "prune.levels=0")
        single = build_job(make_cfg(*overrides, *QUIET, *BATCH_NORM))
        execute(single)
        alone = dict(single.module.network.model.named_buffers())
        replicate = dict(stack.stack.networks[k].model.named_buffers())
        assert replicate.keys() == alone.keys() and any(n.endswith("running_var") for n in alone)
        for name, buffer in alone.items():
            if name.endswith("num_batches_tracked"):
                assert replicate[name].item() == buffer.item() == 30, name
            else:
                torch.testing.assert_close(replicate[name], buffer, rtol=BATCH_NORM_REL, atol=1e-4, msg=name)


def test_a_frozen_replicate_keeps_its_batch_norm_statistics() -> None:
    models = [ResNet((1, 8, 8), 10, depth=8, width=4) for _ in range(2)]
    stacked = StackedNetworks(models, prunable_weight_names(models[0]))
    optimizer = torch.optim.SGD(stacked.parameters(), lr=0.01)
    x, y = torch.randn(2, 16, 1, 8, 8), torch.randint(0, 10, (2, 16))
    stacked.step(x, y, F.cross_entropy, optimizer)
    stacked.freeze(1)
    frozen, live = stacked.networks[1].model_state(), stacked.networks[0].model_state()
    for _ in range(3):
        stacked.step(x, y, F.cross_entropy, optimizer)
    assert all(torch.equal(t, frozen[n]) for n, t in stacked.networks[1].model_state().items())
    assert stacked.buffers["bn.num_batches_tracked"].tolist() == [4, 1]
    assert not torch.equal(stacked.networks[0].model_state()["bn.running_mean"], live["bn.running_mean"])


def test_replicates_retrain_one_ticket_each_with_its_own_seeds_data_order(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """init=ticket with train.replicates=2: replicate k is the ticket job with seed 3+k (the same ticket,
    seed 3+k's data order)."""
    sgd = ("optim=sgd", "optim.lr=0.01")
    execute(build_job(make_cfg(*sgd, f"paths.output_dir={tmp_path / 'source'}")))
    ticket = (
        "init=ticket",
        f"init.ticket.from={tmp_path / 'source'}",
        "init.ticket.level=1",
        "prune.levels=1",
    )
    execute(
        build_job(
            make_cfg("seed=3", "train.replicates=2", f"paths.output_dir={tmp_path / 'stack'}", *sgd, *ticket)
        )
    )
    for k in range(2):
        single = tmp_path / f"single{k}"
        execute(build_job(make_cfg(f"seed={3 + k}", f"paths.output_dir={single}", *QUIET, *sgd, *ticket)))
        assert_same_lottery(tmp_path / "stack" / f"replicate_{k}", single, levels=2)
    starts = [RunDirectory(tmp_path / "stack" / f"replicate_{k}").load_masks(1) for k in range(2)]
    assert all(torch.equal(starts[0][n], starts[1][n]) for n in starts[0])  # one ticket
    curves = [(tmp_path / "stack" / f"replicate_{k}" / "curves.jsonl").read_text() for k in range(2)]
    assert curves[0] != curves[1]  # two data orders


# Mixed precision: Lightning's bfloat16 autocast around each step (on CPU Lightning runs 16-mixed as
# bf16-mixed, with a warning). The batched and the single matmuls accumulate in float32 in another order
# and round to bfloat16: nearly always to the same value, now and then one bf16 ulp (2^-8) apart. Measured
# on this AMD EPYC (AVX2, torch 2.13, Lightning 2.6, 1 thread), K=2 stacks against their single jobs over
# 3 levels of 30 steps:
# - SGD lr 0.01, seeds 0-7: same masks at every level, metrics within 1.2e-6 relative (seeds 3, 4: 3.2e-7).
# - Adam lr 1.2e-3, seeds 0-13: Adam divides by sqrt(v), which blows a one-ulp difference in a small
#   gradient up to a full step. 12 seeds keep the same masks (metrics within 1.3e-5); seeds 1 and 3 part:
#   masks agree on >= 0.9942 of each tensor (seed 3: level 2, 0.9994), losses within 2.8e-4 relative,
#   accuracies by at most one example in 1000 (1e-3).
BF16 = ("trainer.precision=bf16-mixed",)
MIXED_AGREE, MIXED_LOSS_REL, MIXED_ACC_ABS = 0.99, 1e-3, 5e-3  # Adam's, with margin


def assert_near_lottery(replicate: Path, single: Path) -> None:
    """Masks agree on at least ``MIXED_AGREE`` of each tensor at every level; losses within ``MIXED_LOSS_REL``,
    accuracies within ``MIXED_ACC_ABS``; the same levels, weights remaining, steps, statuses and DONE."""
    a, b = RunDirectory(replicate).read_records(), RunDirectory(single).read_records()
    assert [r["level"] for r in a] == [r["level"] for r in b] == [0, 1, 2]
    for x, y in zip(a, b, strict=True):
        level = x["level"]
        for key in ("weights_remaining", "layers", "steps", "early_stop_step", "status", "forward_macs"):
            assert x[key] == y[key], (level, key)
        for key, value in y.items():
            if key.endswith("_loss") or "_loss_" in key:
                assert math.isclose(x[key], value, rel_tol=MIXED_LOSS_REL), (level, key, x[key], value)
            elif key.endswith("_acc") or "_acc_" in key:
                assert abs(x[key] - value) <= MIXED_ACC_ABS, (level, key, x[key], value)
        masks_a, masks_b = RunDirectory(replicate).load_masks(level), RunDirectory(single).load_masks(level)
        assert masks_a.keys() == masks_b.keys()
        for name, mask in masks_b.items():
            assert (masks_a[name] == mask).float().mean().item() >= MIXED_AGREE, (level, name)
    assert json.loads((replicate / "DONE").read_text()) == json.loads((single / "DONE").read_text())


@pytest.mark.parametrize("optim", [("optim=sgd", "optim.lr=0.01"), ("optim=adam",)], ids=["sgd", "adam"])
def test_a_bf16_mixed_replicate_ends_as_the_single_job_with_seed_plus_k(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, optim: tuple[str, ...]
) -> None:
    """With SGD at lr 0.01 as exactly as in full precision (same masks, metrics within 1e-5); with Adam
    within bfloat16's rounding (see above)."""
    stacked = build_job(
        make_cfg("seed=3", "train.replicates=2", f"paths.output_dir={tmp_path / 'stack'}", *BF16, *optim)
    )
    execute(stacked)
    assert not stacked.module.plain_steps and stacked.trainer.precision == "bf16-mixed"  # Lightning's steps
    for k in range(2):
        single = build_job(
            make_cfg(f"seed={3 + k}", f"paths.output_dir={tmp_path / f'single{k}'}", *QUIET, *BF16, *optim)
        )
        execute(single)
        assert not single.module.plain_steps
        replicate = tmp_path / "stack" / f"replicate_{k}"
        if optim[0] == "optim=sgd":
            assert_same_lottery(replicate, tmp_path / f"single{k}", 1e-5)  # bf16 roundings of other sums
        else:
            assert_near_lottery(replicate, tmp_path / f"single{k}")
