"""Tickets as artefacts: the whole ticket on disk, the provenance of a job, and a ticket trained by a new job."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig

from lth.run.job import build_job, execute
from lth.run.job_dir import RunDirectory

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
