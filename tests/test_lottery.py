"""The lottery end to end in-process: real Trainer, real callback, real files."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from lth.lottery.optim import lr_factor
from lth.lottery.pruning import prune_masks, score
from lth.lottery.rates import tensor_rates
from lth.run.job import build_job, execute
from lth.run.job_dir import RunDirectory
from tests.conftest import LearningRates

State = dict[str, torch.Tensor]


class Probe(pl.Callback):
    """Records the network at the first batch of every level and at chosen global steps, and the
    largest pruned weight seen before any batch."""

    def __init__(self, steps: int, at: tuple[int, ...] = ()) -> None:
        self.steps, self.at_steps = steps, at
        self.starts: dict[int, tuple[State, State]] = {}
        self.at: dict[int, State] = {}
        self.max_pruned = 0.0

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx
    ) -> None:
        network, step = pl_module.network, trainer.global_step
        if step % self.steps == 0:
            self.starts[step // self.steps] = (network.model_state(), network.mask_dict())
        if step in self.at_steps:
            self.at[step] = network.model_state()
        for name in network.prunable:
            pruned = network.weight(name).detach()[~network.mask(name)]
            if pruned.numel():
                self.max_pruned = max(self.max_pruned, pruned.abs().max().item())


def run_with_probe(cfg: DictConfig, at: tuple[int, ...] = ()) -> tuple[list[dict], Probe, object]:
    job = build_job(cfg)
    probe = Probe(cfg.train.steps, at)
    job.trainer.callbacks.append(probe)
    return execute(job), probe, job


def masked(state: State, masks: State) -> State:
    return {k: v * masks[k] if k in masks else v for k, v in state.items()}


def assert_states_equal(a: State, b: State) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def magnitude_masks(cfg: DictConfig, job, level: int) -> State:
    """The masks magnitude pruning derives from the weights saved at the end of ``level``."""
    run_dir = job.run_dir
    masks = run_dir.load_masks(level)
    weights = {name: tensor for name, tensor in run_dir.load_state(level).items() if name in masks}
    rates = tensor_rates(cfg.prune, job.module.network.model, job.module.network.prunable)
    scores = score("magnitude", weights, weights)
    return prune_masks(scores, masks, rates, cfg.prune.scope, cfg.prune.rate)


def test_results_files_follow_the_contract(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg("prune.rate=0.5", "prune.output_rate=0.3")
    records = execute(build_job(cfg))
    run_dir = RunDirectory(cfg.paths.output_dir)
    assert run_dir.read_records() == records
    assert [r["level"] for r in records] == [0, 1, 2]
    assert json.loads(run_dir.done_file.read_text()) == {"status": "complete", "levels": 3}
    assert (run_dir.path / "config.yaml").read_text().count("rate: 0.5") == 1
    required = {
        "level",
        "weights_remaining",
        "layers",
        "test_acc",
        "test_loss",
        "early_stop_step",
        "test_acc_at_early_stop",
        "steps",
        "wall_s",
        "status",
    }
    # fc1 40*100, fc2 100*100 at 0.5; fc3 100*10 (the output layer) at 0.3
    alive = {
        "fc1.weight": [4000, 2000, 1000],
        "fc2.weight": [10000, 5000, 2500],
        "fc3.weight": [1000, 700, 490],
    }
    for r in records:
        assert required <= r.keys()
        assert r["status"] == "ok" and r["steps"] == 30
        assert 0 < r["early_stop_step"] <= 30 and r["early_stop_step"] % 10 == 0
        assert 0.0 <= r["test_acc"] <= 1.0 and r["test_loss"] > 0
        masks = run_dir.load_masks(r["level"])
        for name, counts in alive.items():
            assert int(masks[name].sum()) == counts[r["level"]]
            assert r["layers"][name] == counts[r["level"]] / masks[name].numel()
        assert r["weights_remaining"] == sum(c[r["level"]] for c in alive.values()) / 15000
    assert records[0]["test_acc"] > 0.2  # 30 SGD steps already beat chance (0.1) on MNIST-1D
    curves = [json.loads(line) for line in run_dir.curves_file.read_text().splitlines()]
    assert [(c["level"], c["step"]) for c in curves] == [(lv, s) for lv in range(3) for s in (10, 20, 30)]
    for r in records:  # each level's last evaluation is its record
        (last,) = [c for c in curves if (c["level"], c["step"]) == (r["level"], 30)]
        assert (last["test_acc"], last["val_loss"], last["train_loss"]) == (
            r["test_acc"],
            r["val_loss"],
            r["train_loss"],
        )


@pytest.mark.parametrize("optim", ["optim=sgd optim.momentum=0.9 optim.weight_decay=0.001", "optim=adam"])
def test_pruned_weights_and_their_optimizer_state_stay_exactly_zero(
    make_cfg: Callable[..., DictConfig], optim: str
) -> None:
    cfg = make_cfg(*optim.split(), "prune.rate=0.5")
    _, probe, job = run_with_probe(cfg)
    assert len(probe.starts) == 3 and probe.max_pruned == 0.0
    network = job.module.network
    (optimizer,) = job.trainer.optimizers
    for name in network.prunable:
        mask = network.mask(name)
        assert (~mask).sum() > 0
        assert torch.all(network.weight(name)[~mask] == 0)
        for value in optimizer.state[network.weight(name)].values():
            if value.shape == mask.shape:  # momentum_buffer / exp_avg / exp_avg_sq
                assert torch.all(value[~mask] == 0)
    for level in (1, 2):
        weights = job.run_dir.load_state(level)
        masks = job.run_dir.load_masks(level)
        assert all(torch.all(weights[n][~masks[n]] == 0) for n in masks)


def test_each_level_starts_with_a_fresh_optimizer(make_cfg: Callable[..., DictConfig]) -> None:
    _, _, job = run_with_probe(make_cfg("optim=adam"))
    (optimizer,) = job.trainer.optimizers
    steps = {int(s["step"]) for s in optimizer.state.values()}
    assert steps == {30}  # Adam's step count restarted at the last level boundary (90 steps in all)


def test_lr_schedule_runs_over_the_level_length() -> None:
    factor = lr_factor("cosine", 0)
    assert factor(0, 100) == factor(0, 250) == 1.0
    assert factor(50, 100) == pytest.approx(0.5) and factor(125, 250) == pytest.approx(0.5)
    step = lr_factor("step", 0)
    assert [step(t, 100) for t in (0, 49, 50, 74, 75, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    warm = lr_factor("constant", 4)
    assert [warm(t, 100) for t in (0, 3, 4, 99)] == [0.25, 1.0, 1.0, 1.0]


def test_winning_ticket_restarts_survivors_bit_for_bit_at_theta_0(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg("init=winning_ticket")
    _, probe, job = run_with_probe(cfg)
    theta_0, _ = probe.starts[0]
    assert_states_equal(theta_0, job.lottery.state.theta_0)
    for level in (1, 2):
        state, masks = probe.starts[level]
        assert_states_equal(state, masked(theta_0, masks))
        assert all(torch.equal(masks[n], m) for n, m in magnitude_masks(cfg, job, level - 1).items())


def test_rewind_restarts_survivors_bit_for_bit_at_theta_k(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg("init=rewind", "init.rewind_step=7")
    _, probe, _ = run_with_probe(cfg, at=(7,))
    theta_k = probe.at[7]
    assert not torch.equal(theta_k["fc1.weight"], probe.starts[0][0]["fc1.weight"])
    for level in (1, 2):
        state, masks = probe.starts[level]
        assert_states_equal(state, masked(theta_k, masks))


def test_reinit_draws_fresh_weights_under_the_magnitude_mask(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg("init=reinit")
    _, probe, job = run_with_probe(cfg)
    theta_0, _ = probe.starts[0]
    for level in (1, 2):
        state, masks = probe.starts[level]
        assert all(torch.equal(masks[n], m) for n, m in magnitude_masks(cfg, job, level - 1).items())
        for name, mask in masks.items():
            fresh, original = state[name][mask], theta_0[name][mask]
            assert torch.all(state[name][~mask] == 0)
            assert not torch.isclose(fresh, original).any()
            # same initialiser: the survivors' spread matches theta_0's
            assert fresh.std().item() == pytest.approx(original.std().item(), rel=0.1)
    (one, _), (two, masks_two) = probe.starts[1], probe.starts[2]
    both = masks_two["fc1.weight"]  # alive at both levels: a new draw each level
    assert not torch.isclose(one["fc1.weight"][both], two["fc1.weight"][both]).any()


def test_random_prune_keeps_per_layer_counts_but_not_the_magnitude_mask(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg("init=random_prune", "prune.rate=0.5")
    _, probe, job = run_with_probe(cfg)
    theta_0, _ = probe.starts[0]
    for level in (1, 2):
        state, masks = probe.starts[level]
        magnitude = magnitude_masks(cfg, job, level - 1)
        for name, mask in masks.items():
            assert int(mask.sum()) == int(magnitude[name].sum())
            assert not torch.equal(mask, magnitude[name])
        assert_states_equal(state, masked(theta_0, masks))


def test_same_seed_same_results_on_cpu(make_cfg: Callable[..., DictConfig], tmp_path) -> None:
    def once(name: str, seed: int) -> tuple[list[dict], list[State]]:
        cfg = make_cfg(f"paths.output_dir={tmp_path / name}", f"seed={seed}", "init=reinit")
        records = execute(build_job(cfg))
        run_dir = RunDirectory(cfg.paths.output_dir)
        masks = [run_dir.load_masks(level) for level in range(3)]
        return [{k: v for k, v in r.items() if k != "wall_s"} for r in records], masks

    first, again, other = once("a", 3), once("b", 3), once("c", 4)
    assert first[0] == again[0]
    assert all(torch.equal(x[n], y[n]) for x, y in zip(first[1], again[1], strict=True) for n in x)
    assert first[0] != other[0]
    assert not torch.equal(first[1][2]["fc1.weight"], other[1][2]["fc1.weight"])


def test_optimizer_follows_the_schedule_step_by_step_and_restarts_each_level(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg(
        "optim.schedule=linear", "optim.lr=0.1", "train.steps=10", "train.eval_every=5", "prune.levels=1"
    )
    job = build_job(cfg)
    lrs = LearningRates()
    job.trainer.callbacks.append(lrs)
    execute(job)
    assert job.trainer.global_step == 20
    assert lrs.lrs == pytest.approx([0.1 * (1 - t / 10) for t in range(10)] * 2)
