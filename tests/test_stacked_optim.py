"""``lth.lottery.stacked_optim``: K lotteries with their own hyperparameters and LR schedules, stepped at
once, each as torch.optim steps it alone (SGD, Adam, AdamW), through checkpoints, from their configs."""

from __future__ import annotations

import copy
import io
import math
from typing import Any

import pytest
import torch

from lth.lottery.stacked_optim import (
    StackedAdam,
    StackedAdamW,
    StackedOptimizer,
    StackedSGD,
    build_stacked_optimizer,
)

K, SHAPES, STEPS = 3, [(5, 7), (7,)], 200
LRS = [0.05, 0.01, 0.2]


def factors(t: int) -> list[float]:
    """Each lottery's LR multiplier at step ``t``: its own schedule (warm-up, cosine, steps)."""
    return [min(1.0, (t + 1) / 10), 0.5 * (1 + math.cos(math.pi * t / STEPS)), 0.1 ** (t // 70)]


class Pair:
    """A stacked optimizer and K torch.optim ones on copies of the lotteries' slices."""

    def __init__(
        self, stacked: type[StackedOptimizer], single: type[torch.optim.Optimizer], hypers: list[dict]
    ):
        torch.manual_seed(0)
        self.params = [torch.nn.Parameter(torch.randn(K, *shape)) for shape in SHAPES]
        self.slices = [[torch.nn.Parameter(p.detach()[k].clone()) for p in self.params] for k in range(K)]
        stacked_kwargs: dict[str, Any] = {
            key: [h[key] for h in hypers] for key in hypers[0] if key != "betas"
        }
        if "betas" in hypers[0]:
            stacked_kwargs["betas"] = tuple([h["betas"][i] for h in hypers] for i in range(2))
        self.optimizer = stacked(self.params, **stacked_kwargs)
        self.singles = [single(self.slices[k], foreach=False, **hypers[k]) for k in range(K)]
        self.base = [h["lr"] for h in hypers]

    def step(self, t: int, grads: list[torch.Tensor | None]) -> None:
        for p, g in zip(self.params, grads, strict=True):
            p.grad = None if g is None else g.clone()
        self.optimizer.scale_lrs(torch.tensor(factors(t), dtype=torch.float64))
        self.optimizer.step()
        for k, single in enumerate(self.singles):
            for p, g in zip(self.slices[k], grads, strict=True):
                p.grad = None if g is None else g[k].clone()
            single.param_groups[0]["lr"] = self.base[k] * factors(t)[k]
            single.step()

    def error(self) -> float:
        """The largest relative error of a lottery's parameter: max |stacked - alone| / max |alone|."""
        worst = 0.0
        for k in range(K):
            for p, q in zip(self.params, self.slices[k], strict=True):
                worst = max(worst, ((p.detach()[k] - q.detach()).abs().max() / q.detach().abs().max()).item())
        return worst


def gradients(t: int, none_every: int = 0) -> list[torch.Tensor | None]:
    """Random gradients of step ``t``; with ``none_every``, the second parameter has none every so often."""
    gen = torch.Generator().manual_seed(1000 + t)
    grads: list[torch.Tensor | None] = [torch.randn(K, *shape, generator=gen) for shape in SHAPES]
    if none_every and t % none_every == 0:
        grads[1] = None
    return grads


SGD_CASES = {
    "plain": dict(momentum=[0.0] * K, nesterov=[False] * K, weight_decay=[0.0] * K),
    "momentum": dict(momentum=[0.9, 0.5, 0.99], nesterov=[False] * K, weight_decay=[0.0] * K),
    "momentum-mixed-wd": dict(momentum=[0.9, 0.0, 0.8], nesterov=[False] * K, weight_decay=[5e-4, 0.0, 1e-3]),
    "nesterov-wd": dict(momentum=[0.9, 0.7, 0.95], nesterov=[True] * K, weight_decay=[5e-4, 1e-4, 5e-4]),
    "nesterov-mixed": dict(momentum=[0.9, 0.9, 0.0], nesterov=[True, False, False], weight_decay=[5e-4] * K),
}
ADAM_CASES = {
    "plain": dict(weight_decay=[0.0] * K),
    "wd": dict(weight_decay=[0.01, 0.0, 0.02]),
    "betas-eps": dict(
        weight_decay=[0.01] * K, betas=[(0.9, 0.999), (0.8, 0.99), (0.95, 0.9999)], eps=[1e-8, 1e-6, 1e-3]
    ),
}


def per_lottery(case: dict[str, list]) -> list[dict[str, Any]]:
    return [{"lr": LRS[k], **{key: values[k] for key, values in case.items()}} for k in range(K)]


def check_against_torch(pair: Pair, none_every: int = 0) -> None:
    for t in range(STEPS):
        pair.step(t, gradients(t, none_every))
        assert pair.error() <= 1e-6, f"step {t}: relative error {pair.error():.3g}"


@pytest.mark.parametrize("case", SGD_CASES)
def test_stacked_sgd_steps_each_lottery_as_torch_sgd(case: str) -> None:
    check_against_torch(Pair(StackedSGD, torch.optim.SGD, per_lottery(SGD_CASES[case])))


@pytest.mark.parametrize("case", ADAM_CASES)
def test_stacked_adam_steps_each_lottery_as_torch_adam(case: str) -> None:
    check_against_torch(Pair(StackedAdam, torch.optim.Adam, per_lottery(ADAM_CASES[case])))


@pytest.mark.parametrize("case", ["plain", "wd"])
def test_stacked_adamw_steps_each_lottery_as_torch_adamw(case: str) -> None:
    check_against_torch(Pair(StackedAdamW, torch.optim.AdamW, per_lottery(ADAM_CASES[case])))


@pytest.mark.parametrize(
    ("stacked", "single", "case"),
    [
        (StackedSGD, torch.optim.SGD, SGD_CASES["nesterov-wd"]),
        (StackedAdam, torch.optim.Adam, ADAM_CASES["wd"]),
    ],
)
def test_a_parameter_without_a_gradient_is_skipped_as_torch_skips_it(stacked, single, case) -> None:
    pair = Pair(stacked, single, per_lottery(case))
    check_against_torch(pair, none_every=3)
    assert pair.optimizer.state[pair.params[1]]  # stepped on the other steps
    if stacked is StackedAdam:  # its step count is that of the steps it had a gradient
        assert pair.optimizer.state[pair.params[1]]["step"].tolist() == [STEPS - math.ceil(STEPS / 3)] * K


@pytest.mark.parametrize(
    ("stacked", "single", "case"),
    [
        (StackedSGD, torch.optim.SGD, SGD_CASES["momentum-mixed-wd"]),
        (StackedAdam, torch.optim.Adam, ADAM_CASES["betas-eps"]),
    ],
)
@pytest.mark.parametrize("through", ["deepcopy", "torch.save"])
def test_a_state_dict_round_trip_continues_identically(stacked, single, case, through: str) -> None:
    pair = Pair(stacked, single, per_lottery(case))
    for t in range(50):
        pair.step(t, gradients(t))
    saved = pair.optimizer.state_dict()
    if through == "deepcopy":
        saved = copy.deepcopy(saved)
    else:
        buffer = io.BytesIO()
        torch.save(saved, buffer)
        buffer.seek(0)
        saved = torch.load(buffer)
    params = [torch.nn.Parameter(p.detach().clone()) for p in pair.params]
    restored = stacked(params, lr=1.0)  # hyperparameters and state all come from the state dict
    own = {k: v for k, v in restored.param_groups[0].items() if isinstance(v, torch.Tensor)}
    restored.load_state_dict(saved)
    for name, tensor in own.items():  # filled in place: a captured step reads the same tensors
        assert restored.param_groups[0][name] is tensor
    for t in range(50, 100):
        grads = gradients(t)
        pair.step(t, grads)
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        restored.scale_lrs(torch.tensor(factors(t), dtype=torch.float64))
        restored.step()
        for p, q in zip(params, pair.params, strict=True):
            assert torch.equal(p, q), t


def test_a_state_dict_keeps_the_hyperparameters_it_was_taken_with() -> None:
    p = torch.nn.Parameter(torch.zeros(K, 2))
    optimizer = StackedSGD([p], lr=LRS)
    saved = optimizer.state_dict()
    optimizer.set_lrs(0.5)
    assert saved["param_groups"][0]["lr"].tolist() == LRS


def test_it_takes_a_modules_parameters_and_param_groups() -> None:
    module = torch.nn.ParameterDict(
        {"w": torch.nn.Parameter(torch.zeros(K, 2, 3)), "b": torch.nn.Parameter(torch.zeros(K, 3))}
    )
    optimizer = StackedSGD(module.parameters(), lr=LRS)  # a generator
    assert len(optimizer.param_groups[0]["params"]) == 2
    groups = [{"params": [module["w"]], "weight_decay": [1e-3, 0.0, 1e-4]}, {"params": [module["b"]]}]
    optimizer = StackedSGD(groups, lr=LRS)
    assert optimizer.param_groups[0]["weight_decay"].tolist() == [1e-3, 0.0, 1e-4]
    assert optimizer.param_groups[1]["weight_decay"].tolist() == [0.0] * K
    assert optimizer.param_groups[0]["lr"] is not optimizer.param_groups[1]["lr"]  # each group its own


def test_hyperparameters_are_k_tensors_on_the_device_filled_in_place() -> None:
    p = torch.nn.Parameter(torch.zeros(K, 4))
    optimizer = StackedAdam([p], lr=LRS, betas=(0.9, [0.99, 0.999, 0.9999]), weight_decay=0.01)
    group = optimizer.param_groups[0]
    for name in ("lr", "beta1", "beta2", "eps", "weight_decay"):
        assert group[name].shape == (K,) and group[name].dtype == torch.float64, name
    assert group["beta1"].tolist() == [0.9] * K and group["beta2"].tolist() == [0.99, 0.999, 0.9999]
    lr = group["lr"]
    optimizer.set_lrs(torch.tensor([1.0, 2.0, 3.0]))
    assert group["lr"] is lr and lr.tolist() == [1.0, 2.0, 3.0]
    optimizer.scale_lrs([0.5, 0.1, 0.0])
    assert group["lr"] is lr and lr.tolist() == [LRS[0] * 0.5, LRS[1] * 0.1, 0.0]
    assert group["base_lr"].tolist() == LRS


def test_scaling_by_the_same_factors_again_applies_them_after_the_rates_were_written() -> None:
    """``scale_lrs`` skips factors equal to the last call's (a constant schedule), but not once the
    learning rates were written since: by ``set_lrs``, in place, or by loading a state dict."""
    p = torch.nn.Parameter(torch.zeros(K, 4))
    optimizer = StackedSGD([p], lr=LRS)
    lr = optimizer.param_groups[0]["lr"]
    expected = [LRS[0] * 0.5, LRS[1] * 0.1, 0.0]
    optimizer.scale_lrs([0.5, 0.1, 0.0])
    saved = copy.deepcopy(optimizer.state_dict())
    for write in (
        lambda: optimizer.set_lrs(1.0),
        lambda: lr.fill_(2.0),
        lambda: optimizer.load_state_dict(
            {
                **saved,
                "param_groups": [{**saved["param_groups"][0], "lr": torch.ones(K, dtype=torch.float64)}],
            }
        ),
    ):
        write()
        assert lr.tolist() != expected
        optimizer.scale_lrs([0.5, 0.1, 0.0])
        assert lr.tolist() == expected
    optimizer.scale_lrs([1.0, 1.0, 1.0])
    assert lr.tolist() == LRS


def test_a_lottery_with_lr_zero_stays_put_while_the_others_move() -> None:
    p = torch.nn.Parameter(torch.randn(K, 3, 2))
    start = p.detach().clone()
    optimizer = StackedAdam([p], lr=LRS)
    optimizer.set_lrs([0.1, 0.0, 0.1])
    for _ in range(3):
        p.grad = torch.randn(K, 3, 2)
        optimizer.step()
    assert torch.equal(p[1], start[1]) and not torch.equal(p[0], start[0]) and not torch.equal(p[2], start[2])


def test_sgd_terms_switched_on_in_place_are_applied() -> None:
    """The SGD step leaves out weight decay and Nesterov where no lottery uses them, read at each step:
    one switched on in place later (``fill_``) is applied from the next step, as torch's SGD applies it."""
    pair = Pair(StackedSGD, torch.optim.SGD, per_lottery(SGD_CASES["momentum"]))
    for t in range(STEPS):
        if t == 50:
            pair.optimizer.param_groups[0]["weight_decay"].copy_(torch.tensor([5e-4, 0.0, 1e-3]))
            pair.optimizer.param_groups[0]["nesterov"].fill_(True)
            for k, single in enumerate(pair.singles):
                single.param_groups[0].update(weight_decay=[5e-4, 0.0, 1e-3][k], nesterov=True)
        pair.step(t, gradients(t))
        assert pair.error() <= 1e-6, f"step {t}: relative error {pair.error():.3g}"


def test_sgd_steps_parameters_of_two_dtypes() -> None:
    params = [
        torch.nn.Parameter(torch.randn(K, 4)),
        torch.nn.Parameter(torch.randn(K, 2, dtype=torch.float64)),
    ]
    singles = [[torch.nn.Parameter(p.detach()[k].clone()) for p in params] for k in range(K)]
    optimizer = StackedSGD(params, lr=LRS, momentum=0.9, weight_decay=1e-3)
    torch_sgds = [torch.optim.SGD(singles[k], lr=LRS[k], momentum=0.9, weight_decay=1e-3) for k in range(K)]
    for _ in range(20):
        for p in params:
            p.grad = torch.randn_like(p)
        optimizer.step()
        for k, sgd in enumerate(torch_sgds):
            for p, q in zip(params, singles[k], strict=True):
                q.grad = p.grad[k].clone()
            sgd.step()
    for k in range(K):
        for p, q in zip(params, singles[k], strict=True):
            assert p.dtype == q.dtype and torch.allclose(p.detach()[k], q.detach(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda ps: StackedSGD(ps, lr=[0.1, 0.2]), "K=3 values"),
        (lambda ps: StackedSGD(ps, lr=[0.1, -0.2, 0.3]), "Invalid lr"),
        (lambda ps: StackedSGD(ps, momentum=[0.9, 0.0, 0.9], nesterov=True), "Nesterov momentum requires"),
        (lambda ps: StackedAdam(ps, betas=(0.9, [0.999, 1.0, 0.99])), "Invalid beta2"),
        (lambda ps: StackedSGD([*ps, torch.nn.Parameter(torch.zeros(2, 3))]), "leading replicate axis"),
    ],
)
def test_hyperparameters_torch_optim_rejects_are_rejected(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make([torch.nn.Parameter(torch.zeros(K, 3))])


def sgd_config(**changes: Any) -> dict[str, Any]:
    base = {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0, "nesterov": False}
    return {**base, "schedule": "constant", "warmup_steps": 0, **changes}


def test_the_builder_stacks_the_lotteries_configs() -> None:
    params = [torch.nn.Parameter(torch.zeros(K, 3))]
    optims = [
        sgd_config(),
        sgd_config(lr=0.01, schedule="cosine"),
        sgd_config(momentum=0.0, weight_decay=5e-4),
    ]
    optimizer = build_stacked_optimizer(params, optims)
    assert isinstance(optimizer, StackedSGD)
    group = optimizer.param_groups[0]
    assert group["lr"].tolist() == [0.1, 0.01, 0.1]
    assert group["momentum"].tolist() == [0.9, 0.9, 0.0]
    assert group["weight_decay"].tolist() == [0.0, 0.0, 5e-4]
    assert group["nesterov"].tolist() == [False] * K

    adam = {"name": "adam", "lr": 1.2e-3, "betas": [0.9, 0.999], "weight_decay": 0.0, "schedule": "constant"}
    optimizer = build_stacked_optimizer(params, [adam, {**adam, "betas": [0.8, 0.99]}, {**adam, "eps": 1e-6}])
    assert isinstance(optimizer, StackedAdam)
    group = optimizer.param_groups[0]
    assert group["beta1"].tolist() == [0.9, 0.8, 0.9] and group["beta2"].tolist() == [0.999, 0.99, 0.999]
    assert group["eps"].tolist() == [1e-8, 1e-8, 1e-6]  # torch's default where a lottery leaves it out


def test_the_builder_matches_build_optimizer_on_each_lottery() -> None:
    from lth.lottery.optim import build_optimizer

    optims = [sgd_config(nesterov=True), sgd_config(lr=0.03, weight_decay=1e-3), sgd_config(momentum=0.5)]
    pair = Pair(StackedSGD, torch.optim.SGD, [{"lr": o["lr"]} for o in optims])  # parameters and slices
    pair.optimizer = build_stacked_optimizer(pair.params, optims)
    pair.singles = [build_optimizer(pair.slices[k], optims[k]) for k in range(K)]
    pair.base = [o["lr"] for o in optims]
    check_against_torch(pair)


@pytest.mark.parametrize(
    ("optims", "message"),
    [
        (
            [sgd_config(), sgd_config(), {"name": "adam", "lr": 1e-3}],
            "lottery 0 has 'sgd', lottery 2 has 'adam'",
        ),
        ([sgd_config(name="rmsprop")] * K, "optim.name='rmsprop' has no stacked optimizer"),
        ([sgd_config(), sgd_config(betas=[0.9, 0.99]), sgd_config()], "lottery 1: optim.betas is not a sgd"),
        ([sgd_config(dampening=0.1)] * K, "optim.dampening=0.1 is not supported"),
        ([], "at least one lottery"),
    ],
)
def test_the_builder_names_what_cannot_be_stacked(optims: list[dict], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_stacked_optimizer([torch.nn.Parameter(torch.zeros(K, 3))], optims)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("stacked", [StackedSGD, StackedAdam])
def test_a_captured_step_reads_the_learning_rates_set_in_place(stacked: type[StackedOptimizer]) -> None:
    """A CUDA graph of the step, replayed with each step's schedule set by scale_lrs, steps as the eager one."""
    torch.manual_seed(0)
    cuda = torch.device("cuda")
    start = [torch.randn(K, *shape, device=cuda) for shape in SHAPES]
    hypers = {"lr": LRS, "weight_decay": [5e-4, 0.0, 1e-3]} | (
        {"momentum": [0.9, 0.0, 0.5]} if stacked is StackedSGD else {}
    )
    runs = []
    for capture in (False, True):
        params = [torch.nn.Parameter(s.clone()) for s in start]
        optimizer = stacked(params, **hypers)
        grads = [torch.zeros_like(p) for p in params]
        for p, g in zip(params, grads, strict=True):
            p.grad = g  # static: each step's gradients are copied in
        graph = None
        for t in range(30):
            for g, new in zip(grads, gradients(t), strict=True):
                g.copy_(new)
            optimizer.scale_lrs(factors(t))
            if not capture or t < 3:  # eager, and the warm-up before the capture
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    optimizer.step()
                torch.cuda.current_stream().wait_stream(side)
            elif graph is None:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    optimizer.step()
                graph.replay()
            else:
                graph.replay()
        runs.append([p.detach().cpu() for p in params])
    for eager, captured in zip(*runs, strict=True):
        torch.testing.assert_close(captured, eager, rtol=1e-6, atol=1e-7)
