"""``trainer.cuda_graphs``: the captured step's parts on CPU (batches drawn on the device, its step run
uncaptured against the eager path, the fallback decisions) and, where a GPU is present, the capture."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from lth.data.memory import ReplicateData, ShuffledBatches, epoch_permutation
from lth.run.building import build_datamodule
from lth.run.config import CONF_DIR
from lth.run.cuda_graphs import DeviceLosses, StepGraph, make_capturable, plan_capture
from lth.run.job import build_job, execute
from tests.conftest import Crash, CrashAt

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize(("start", "rank", "world"), [(0, 0, 1), (7, 0, 1), (13, 1, 2)])
def test_batches_drawn_on_the_device_are_the_streams_batches(start: int, rank: int, world: int) -> None:
    """Across epoch boundaries, from any start step, for a DDP rank's rows too."""
    x, y = torch.randn(50, 3), torch.arange(50)
    batches = ShuffledBatches(x, y, 8, seed=4, position=lambda: (start, rank, world))  # 6 batches an epoch
    drawn = batches.on_device(rank, world)
    for step, (xs, ys) in zip(range(start, start + 20), iter(batches), strict=False):
        drawn.prepare(step)
        xd, yd = drawn.draw()
        assert torch.equal(xd, xs) and torch.equal(yd, ys), step


def test_a_jump_in_steps_draws_the_batch_of_the_step_asked_for() -> None:
    x, y = torch.randn(40, 2), torch.arange(40)
    drawn = ShuffledBatches(x, y, 10, seed=1, position=lambda: (0, 0, 1)).on_device()
    drawn.prepare(0)
    drawn.draw()
    drawn.prepare(9)  # epoch 2, batch 1
    rows = epoch_permutation(40, 1, 2)[10:20]
    assert torch.equal(drawn.draw()[1], rows)


def test_replicate_batches_drawn_on_the_device_are_the_stacked_batches() -> None:
    pool = (torch.randn(60, 4), torch.arange(60))
    orders = [torch.randperm(60, generator=torch.Generator().manual_seed(k)) for k in range(3)]
    data = ReplicateData(pool, pool, orders, val_size=10, batch_size=7, seeds=[5, 6, 7])
    drawn = data.on_device()
    for step, (xs, ys) in zip(range(3, 23), data.batches(3), strict=False):  # 7 batches an epoch
        drawn.prepare(step)
        xd, yd = drawn.draw()
        assert xd.shape == (3, 7, 4) and torch.equal(xd, xs) and torch.equal(yd, ys), step


def test_device_losses_keep_each_steps_loss_until_taken() -> None:
    losses = DeviceLosses(4, (2,), CPU)
    for value in (1.0, 2.0, 3.0):
        losses.record(torch.full((2,), value))
    assert torch.equal(losses.take(3), torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))
    losses.record(torch.full((2,), 9.0))
    assert torch.equal(losses.take(1), torch.tensor([[9.0, 9.0]]))


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_a_capturable_optimizer_steps_as_the_eager_one(name: str) -> None:
    """Fused, with its learning rate a tensor filled by the schedule: within float rounding of the default."""
    torch.manual_seed(0)
    start, grads = torch.randn(30, 20), [torch.randn(30, 20) for _ in range(15)]
    finals = []
    for capturable in (False, True):
        p = torch.nn.Parameter(start.clone())
        kwargs = {"momentum": 0.9} if name == "sgd" else {}
        optimizer = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[name](
            [p], lr=0.01, weight_decay=1e-3, **kwargs
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 0.9**t)
        if capturable:
            make_capturable(optimizer)
            lr = optimizer.param_groups[0]["lr"]
        for g in grads:
            p.grad = g.clone()
            optimizer.step()
            scheduler.step()
        if capturable:
            assert optimizer.param_groups[0]["lr"] is lr  # filled in place, never replaced
            assert lr.item() == pytest.approx(0.01 * 0.9**15)
        finals.append(p.detach())
    torch.testing.assert_close(finals[1], finals[0], rtol=1e-6, atol=1e-7)


def test_make_capturable_moves_an_eager_runs_step_count_to_the_device() -> None:
    p = torch.nn.Parameter(torch.randn(3))
    optimizer = torch.optim.Adam([p])
    p.grad = torch.ones(3)
    optimizer.step()
    make_capturable(optimizer)
    make_capturable(optimizer)  # idempotent
    step = optimizer.state[p]["step"]
    assert step.dtype == torch.float32 and step.device == p.device and step.item() == 1
    group = optimizer.param_groups[0]
    assert group["fused"] and group["capturable"] and not group["foreach"]


@pytest.mark.parametrize(
    ("setting", "device", "obstacles", "expected"),
    [
        ("auto", CPU, [], (False, None)),
        ("true", CPU, [], (False, "no CUDA device")),
        ("false", CUDA, [], (False, None)),
        ("auto", CUDA, [], (True, None)),
        ("true", CUDA, ["a", "b"], (False, "a; b")),
        ("auto", CUDA, ["DDP"], (False, "DDP")),
    ],
)
def test_capture_plan(setting: str, device: torch.device, obstacles: list[str], expected: tuple) -> None:
    assert plan_capture(setting, device, obstacles) == expected


def test_a_step_graph_without_capture_runs_its_step_every_time() -> None:
    calls = []
    graph = StepGraph(lambda: calls.append(1), capture=False)
    for _ in range(5):
        graph()
    graph.reset()
    graph()
    assert len(calls) == 6 and graph.graph is None


def _run_lottery(cfg: DictConfig, drawn: bool) -> tuple[list[dict], dict[str, torch.Tensor]]:
    job = build_job(cfg)
    job.module.drawn_steps = drawn
    records = execute(job)
    assert (job.module.step_graph is not None) == drawn  # the path taken
    return records, {k: v.clone() for k, v in job.lottery.network.mask_dict().items()}


@pytest.mark.parametrize(
    "overrides",
    [
        ["optim=adam", "optim.schedule=cosine", "train.batch_size=128", "train.steps=50"],
        ["optim=sgd", "optim.lr=0.05", "init=rewind", "init.rewind_step=10", "prune.scope=global"],
    ],
)
def test_the_captured_steps_uncaptured_give_the_eager_lottery(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, overrides: list[str]
) -> None:
    """The step a GPU captures (batches drawn by the device-side position, fused optimizer with a tensor
    learning rate, losses kept on the device), run on CPU: the eager run's masks, metrics within rounding."""
    eager = _run_lottery(make_cfg(*overrides), drawn=False)
    drawn = _run_lottery(make_cfg(*overrides, f"paths.output_dir={tmp_path / 'drawn'}"), drawn=True)
    for mask, other in zip(eager[1].values(), drawn[1].values(), strict=True):
        assert torch.equal(mask, other)
    for a, b in zip(eager[0], drawn[0], strict=True):
        assert a["weights_remaining"] == b["weights_remaining"]
        for key in ("test_acc", "test_loss", "train_loss", "early_stop_step"):
            assert a[key] == pytest.approx(b[key], rel=1e-4), key


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        (["prune=learned_supermask"], "prune.learned"),
        (["trainer.precision=bf16-mixed"], "DDP and mixed precision"),
    ],
)
def test_what_a_captured_step_cannot_run_is_named(
    make_cfg: Callable[..., DictConfig], overrides: list[str], why: str
) -> None:
    job = build_job(make_cfg(*overrides, "prune.levels=0"))
    execute(job)
    assert [o for o in job.module.capture_obstacles() if why in o]
    assert not job.module.captured


def test_teacher_student_data_cannot_be_drawn_by_a_captured_step(tmp_path: Path) -> None:
    overrides = [f"paths.output_dir={tmp_path}", "logger=none", "data=teacher_student", "model=student"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    assert "data=teacher_student" in build_datamodule(cfg).capture_obstacle


@needs_cuda
@pytest.mark.parametrize("overrides", [[], ["model=lenet300_100", "optim=sgd", "optim.lr=0.05"]])
def test_captured_lottery_on_cuda_gives_the_eager_masks(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, overrides: list[str]
) -> None:
    base = ["trainer.accelerator=gpu", "train.steps=60", "train.eval_every=20"]
    runs = []
    for setting in ("false", "true"):
        cfg = make_cfg(
            *base, *overrides, f"trainer.cuda_graphs={setting}", f"paths.output_dir={tmp_path / setting}"
        )
        job = build_job(cfg)
        records = execute(job)
        assert job.module.captured == (setting == "true")
        if setting == "true":
            assert job.module.step_graph is not None and job.module.step_graph.graph is not None
        runs.append((records, job.lottery.network.mask_dict()))
    for (name, mask), other in zip(runs[0][1].items(), runs[1][1].values(), strict=True):
        assert torch.equal(mask.cpu(), other.cpu()), name
    for a, b in zip(runs[0][0], runs[1][0], strict=True):
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=0.01)


def test_the_captured_steps_path_resumes_where_it_crashed(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """Killed mid-level and rerun, the drawn batches continue at the restored step: the uninterrupted results."""
    overrides = ["train.checkpoint_every=20", "train.batch_size=128"]
    whole = _run_lottery(make_cfg(*overrides, f"paths.output_dir={tmp_path / 'whole'}"), drawn=True)
    job = build_job(make_cfg(*overrides))
    job.module.drawn_steps = True
    job.trainer.callbacks.append(CrashAt(45))  # level 1, after the checkpoint at step 40
    with pytest.raises(Crash):
        execute(job)
    resumed = _run_lottery(make_cfg(*overrides), drawn=True)
    assert [r["test_acc"] for r in resumed[0]] == [r["test_acc"] for r in whole[0]]
    assert [r["train_loss"] for r in resumed[0]] == pytest.approx(
        [r["train_loss"] for r in whole[0]], rel=1e-6
    )
    for mask, other in zip(whole[1].values(), resumed[1].values(), strict=True):
        assert torch.equal(mask, other)


def _run_replicates(cfg: DictConfig, drawn: bool, diverge: int | None = None) -> list[list[dict]]:
    job = build_job(cfg)
    job.module.drawn_steps = drawn
    if diverge is not None:
        with torch.no_grad():
            job.stack.params["fc1.weight"][diverge] = math.nan
    return execute(job)


def test_the_captured_stacked_step_uncaptured_gives_the_eager_replicates(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """Stacked replicates on the captured path (run eagerly on CPU), one of them diverging and frozen:
    each replicate's records are the eager stack's."""
    overrides = [
        "train.replicates=3",
        "optim=adam",
        "optim.schedule=cosine",
        "train.batch_size=128",
        "train.steps=50",
    ]
    eager = _run_replicates(make_cfg(*overrides, f"paths.output_dir={tmp_path / 'eager'}"), False, diverge=1)
    drawn = _run_replicates(make_cfg(*overrides, f"paths.output_dir={tmp_path / 'drawn'}"), True, diverge=1)
    assert [r[-1]["status"] for r in drawn] == ["ok", "diverged", "ok"]
    for a_records, b_records in zip(eager, drawn, strict=True):
        assert len(a_records) == len(b_records)
        for a, b in zip(a_records, b_records, strict=True):
            assert a["weights_remaining"] == b["weights_remaining"]
            for key in ("test_acc", "train_loss", "early_stop_step"):
                assert a[key] == pytest.approx(b[key], rel=1e-4, nan_ok=True), key


@needs_cuda
def test_captured_replicates_on_cuda_give_the_eager_masks(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    overrides = ["train.replicates=4", "trainer.accelerator=gpu", "train.steps=60", "train.eval_every=20"]
    runs = []
    for setting in ("false", "true"):
        job = build_job(
            make_cfg(*overrides, f"trainer.cuda_graphs={setting}", f"paths.output_dir={tmp_path / setting}")
        )
        execute(job)
        assert job.module.captured == (setting == "true")
        runs.append([network.mask_dict() for network in job.stack.networks])
    for eager, captured in zip(*runs, strict=True):
        for name, mask in eager.items():
            assert torch.equal(mask.cpu(), captured[name].cpu()), name
