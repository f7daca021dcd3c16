"""The lottery as a plain object: driven by a plain PyTorch loop, one record for every reader, the layers."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from rich.console import Console

from lth.lottery import Budget, ForwardCost, LevelRecord, Lottery, PruningPlan, Restart
from lth.lottery.rates import tensor_rates
from lth.lottery.record import CONSOLE_FIELDS, REPORT_METRICS
from lth.report import report
from lth.run.console import results_table
from lth.run.job import build_job, execute
from lth.run.job_dir import RunDirectory
from lth.run.module import STEP_COUNTER, check_step_counter


def accuracy(network: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor], dict[str, float]]:
    @torch.no_grad()
    def evaluate(x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        out = network(x)
        return {"loss": F.cross_entropy(out, y).item(), "acc": (out.argmax(1) == y).float().mean().item()}

    return evaluate


def test_a_plain_pytorch_loop_drives_the_lottery_to_the_masks_of_a_lightning_run(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg("init=rewind", "init.rewind_step=5", "prune.scope=global")
    execute(build_job(cfg))  # the Lightning run: Trainer, PruningCallback, runs of plain steps per batch
    saved = RunDirectory(cfg.paths.output_dir)

    job = build_job(cfg)  # the same data and a freshly drawn model; its Trainer is never used
    network, data = job.module.network, job.datamodule
    lottery = Lottery(
        network,
        levels=2,
        budget=Budget(30),
        cost=ForwardCost(network.model, data.input_shape),
        eval_every=10,
        plan=PruningPlan(
            "magnitude", "global", 0.2, tensor_rates(cfg.prune, network.model, network.prunable)
        ),
        restart=Restart("rewind", seed=0, rewind_step=5),
        fresh_state=job.lottery.fresh_state,
        data=data.split,
        evaluate=accuracy(network),
        batch_size=64,
    )
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9)
    batches, step, ends = data.train_batches(), 0, []
    lottery.start()
    while not lottery.finished:
        x, y = next(batches)
        loss = F.cross_entropy(network(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        network.mask_gradients()
        optimizer.step()
        network.apply_masks()
        step += 1
        if lottery.after_step(step, loss.detach()[None]).record:
            ends.append((network.mask_dict(), network.weights()))
            if not lottery.finished:
                lottery.next_level(step)
                optimizer.state.clear()

    assert step == 90 and [r.level for r in lottery.state.records] == [0, 1, 2]
    for level, (masks, weights) in enumerate(ends):
        expected_masks = saved.load_masks(level)
        expected_weights = saved.load_state(level)
        for name in network.prunable:
            assert torch.equal(masks[name], expected_masks[name]), (level, name)
            assert torch.equal(weights[name], expected_weights[name]), (level, name)
    assert ends[2][0]["fc1.weight"].float().mean() < 0.8  # pruning happened


def test_every_reader_and_writer_takes_its_columns_from_the_level_record(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    names = [f.name for f in fields(LevelRecord) if f.name != "analyses"]
    cfg = make_cfg("prune.levels=1")
    execute(build_job(cfg))
    lines = (Path(cfg.paths.output_dir) / "results.jsonl").read_text().splitlines()
    # the fields in their order, then the analyses (the default ones)
    assert [list(json.loads(line)) for line in lines] == [[*names, "analysis"]] * 2
    records = [LevelRecord.from_dict(json.loads(line)) for line in lines]
    assert [json.loads(line) for line in lines] == [r.to_dict() for r in records]

    console = Console(record=True, width=200)
    console.print(results_table(records))
    header = console.export_text().splitlines()[1]
    assert [cell.strip() for cell in header.strip("┃ ").split("┃")] == [
        f.metadata["label"] for f in CONSOLE_FIELDS
    ]
    assert {f.name for f in CONSOLE_FIELDS} <= set(names) and set(REPORT_METRICS) <= set(names)

    out = report(Path(cfg.paths.output_dir), tmp_path / "report")
    header = (out / "summary.csv").read_text().splitlines()[0].split(",")
    assert all(f"{m}_mean" in header and f"{m}_std" in header for m in REPORT_METRICS)


def test_the_private_step_counter_is_where_lth_advances_it() -> None:
    """Fails, naming the installed Lightning, when a Lightning release moves the counter."""
    check_step_counter(pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False))


def test_a_moved_step_counter_is_reported_with_the_lightning_version(monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    counter = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
    monkeypatch.delattr(type(counter), "increment_by")
    with pytest.raises(
        RuntimeError, match=rf"pytorch-lightning {pl.__version__} has no trainer\.{STEP_COUNTER}"
    ):
        check_step_counter(trainer)


@pytest.mark.parametrize(
    ("modules", "absent"),
    [
        (
            "lth.lottery, lth.analysis.specialisation",
            ("pytorch_lightning", "lightning", "hydra", "omegaconf", "wandb"),
        ),
        ("lth.train", ("pytorch_lightning", "lightning", "wandb", "matplotlib")),  # start-up: config first
    ],
)
def test_imports_stay_light(modules: str, absent: tuple[str, ...]) -> None:
    code = f"import sys, {modules}; print(sorted(m for m in {absent!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("package", ["lth.lottery", "lth.models"])
def test_every_lazy_export_is_listed_and_loads(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(module._HOMES)
    assert all(getattr(module, name) is not None for name in module.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        module.nothing  # noqa: B018
