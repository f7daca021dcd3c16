"""Optimizers over stacked parameters whose K lotteries each have their own hyperparameters (stacked sweeps).

Every parameter has a leading replicate axis ``(K, ...)`` (``lth.lottery.stacked``). ``StackedSGD``,
``StackedAdam`` and ``StackedAdamW`` step slice ``k`` of every parameter exactly as ``torch.optim.SGD``
(dampening 0), ``torch.optim.Adam`` and ``torch.optim.AdamW`` (amsgrad off, maximize off) would step it
alone with lottery ``k``'s hyperparameters, up to float rounding. Each hyperparameter is a ``(K,)`` tensor
in the param group, on the parameters' device, broadcast over each parameter's trailing dims; the step
reads it there and never on the host, so a captured CUDA graph reads it in place. Change one in place
(``.copy_()``, ``.fill_()``), never by assignment; ``set_lrs`` and ``scale_lrs`` do that for the learning
rate (the per-lottery schedule, set before each step).

Hyperparameters are held in float64 (float32 on MPS), as torch.optim holds them as Python floats: the
coefficients each step uses (``1 - beta2``, ``lr / bias_correction1``, ...) are computed at that precision,
then cast to the parameter's dtype, as torch.optim's scalars are.

State per parameter: SGD's ``momentum_buffer`` (always kept: a lottery with momentum 0 computes
``0 * buffer + grad``, which is its gradient, as torch's SGD without momentum); Adam's ``step`` (a ``(K,)``
float32 count, so that a lottery's state can be reset alone), ``exp_avg`` and ``exp_avg_sq``. A parameter
whose ``.grad`` is None is skipped (its state untouched), as torch.optim does. ``load_state_dict`` copies
the saved hyperparameters into the group's own tensors (their identity, read by a captured graph, kept).

Where every lottery has the same hyperparameters, lth steps a stack with ``torch.optim`` itself (its
elementwise step gives each slice exactly its single job's); these optimizers are for stacks whose
lotteries differ.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

Hyper = float | bool | Sequence[float] | Sequence[bool] | Tensor  # one value for all K, or K values


class StackedOptimizer(torch.optim.Optimizer):
    """Base of the stacked optimizers: (K,) tensor hyperparameters, one K for all parameters."""

    HYPERS: ClassVar[tuple[str, ...]] = ()  # the (K,) tensor hyperparameters of a group
    FLAGS: ClassVar[tuple[str, ...]] = ()  # those held as bool tensors

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self.size: int | None = None  # K, from the first parameter
        self._scaled: dict[int, tuple[Any, ...]] = {}  # per group: scale_lrs's last factors, lr versions
        self._derived_values: dict[tuple[Any, ...], tuple[Tensor, int, Any]] = {}  # see _derived
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        first = params[0][1] if params and isinstance(params[0], tuple) else (params[0] if params else None)
        if first is None:
            raise ValueError("a stacked optimizer's param group needs parameters")
        tensors = [p[1] if isinstance(p, tuple) else p for p in params]
        if self.size is None:
            if first.dim() == 0:
                raise ValueError("stacked parameters have a leading replicate axis (K, ...)")
            self.size = first.shape[0]
        for p in tensors:
            if p.dim() == 0 or p.shape[0] != self.size:
                raise ValueError(
                    f"stacked parameters share their leading replicate axis: K={self.size}, got shape {tuple(p.shape)}"
                )
        group = {**param_group, "params": params}
        for name in self.HYPERS:
            value = group.get(name, self.defaults[name])
            group[name] = self._hyper(name, value, first.device)
        group["base_lr"] = group["lr"].clone()  # what scale_lrs multiplies
        self._check(group)
        super().add_param_group(group)

    def _hyper(self, name: str, value: Hyper, device: torch.device) -> Tensor:
        dtype = torch.bool if name in self.FLAGS else hyper_dtype(device)
        size = self.size
        assert size is not None
        tensor = torch.as_tensor(value.detach().cpu() if isinstance(value, Tensor) else value, dtype=dtype)
        if tensor.dim() == 0:
            tensor = tensor.expand(size)
        if tensor.shape != (size,):
            raise ValueError(f"{name} must be one value or K={size} values, got shape {tuple(tensor.shape)}")
        return tensor.to(device).clone()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """torch.optim's, without its profiler record: a tenth of a small stack's optimizer step."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                elif p.grad.grad_fn is not None:
                    p.grad.detach_().zero_()
                else:
                    p.grad.requires_grad_(False).zero_()

    def _derived(self, value: Tensor, kind: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        """``make()``, a value derived from the CPU tensor ``value`` (of this ``kind``), made again only
        after ``value`` was written (its version), as a schedule writes the learning rate."""
        key = (id(value), *kind)
        seen = self._derived_values.get(key)
        if seen is None or seen[0] is not value or seen[1] != value._version:
            seen = self._derived_values[key] = (value, value._version, make())
        return seen[2]

    def _per_slice(self, group: dict[str, Any], name: str, params: list[Tensor]) -> list[Tensor]:
        """``group[name]`` in ``params``' dtype, viewed ``(K, 1, ...)`` for each of them: on the CPU cast
        once per write (``_derived``), elsewhere at every step (a captured step must read the tensor set
        in place)."""
        value, dtype = group[name], params[0].dtype

        def views() -> list[Tensor]:
            cast = value.to(dtype)
            return [cast.view(per_slice(p)) for p in params]

        if value.device.type != "cpu":
            return views()
        return self._derived(value, ("views", dtype, tuple(p.dim() for p in params)), views)

    def _uses(self, group: dict[str, Any], name: str) -> bool:
        """Whether any lottery's ``name`` is nonzero (true): read on the host on the CPU once per write
        (``_derived``); elsewhere True (a zero term changes nothing; never a sync)."""
        flags = group[name]
        if flags.device.type != "cpu":
            return True
        return self._derived(flags, ("any",), lambda: bool(flags.any()))

    def _check(self, group: dict[str, Any]) -> None:
        """Reject what torch.optim rejects, per lottery (on the host: at construction only)."""
        for name in ("lr", "weight_decay", "momentum", "eps"):
            if name in group and bool((group[name] < 0).any()):
                raise ValueError(f"Invalid {name}: {group[name].tolist()}")

    def set_lrs(self, lrs: float | Sequence[float] | Tensor) -> None:
        """Set each lottery's learning rate (one value for all, or K), in place in every group."""
        for group in self.param_groups:
            lr = group["lr"]
            lr.copy_(torch.as_tensor(lrs, dtype=lr.dtype).to(lr.device, non_blocking=True).expand_as(lr))

    def scale_lrs(self, factors: float | Sequence[float] | Tensor) -> None:
        """Set each lottery's learning rate to its base one (the constructor's) times its schedule factor.
        Factors given as Python numbers equal to the last call's change nothing when the learning rates
        were not written since (a constant schedule costs no tensor operation a step)."""
        key = tuple(factors) if isinstance(factors, Sequence) else None
        for group in self.param_groups:
            lr, base = group["lr"], group["base_lr"]
            if key is not None and self._scaled.get(id(group)) == (key, lr._version, base._version):
                continue
            factor = torch.as_tensor(factors, dtype=lr.dtype).to(lr.device, non_blocking=True)
            torch.mul(base, factor, out=lr)
            if key is not None:
                self._scaled[id(group)] = (key, lr._version, base._version)

    def state_dict(self) -> dict[str, Any]:
        """torch.optim's, with the group's hyperparameters copied (``set_lrs`` would change them later)."""
        state_dict = super().state_dict()
        for group in state_dict["param_groups"]:
            group.update({k: v.clone() for k, v in group.items() if isinstance(v, Tensor)})
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        kept = [
            {k: v for k, v in g.items() if isinstance(v, Tensor) and k != "params"} for g in self.param_groups
        ]
        super().load_state_dict(state_dict)
        for group, own in zip(self.param_groups, kept, strict=True):
            for name, tensor in own.items():
                tensor.copy_(group[name])
                group[name] = tensor

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            if params:
                self._step_group(params, group)
        return loss

    def _step_group(self, params: list[Tensor], group: dict[str, Any]) -> None:
        """Step ``params`` (those of ``group`` with a gradient), one at a time."""
        cast: dict[torch.dtype, dict[str, Tensor]] = {}
        for p in params:
            if p.dtype not in cast:
                cast[p.dtype] = {k: v.to(p.dtype) for k, v in self._coefficients(group).items()}
            self._step_param(p, group, {k: v.view(per_slice(p)) for k, v in cast[p.dtype].items()})

    def _coefficients(self, group: dict[str, Any]) -> dict[str, Tensor]:
        """The step's per-lottery factors, ``(K,)``, computed in the hyperparameters' precision."""
        raise NotImplementedError

    def _step_param(self, p: Tensor, group: dict[str, Any], c: dict[str, Tensor]) -> None:
        """Step parameter ``p`` with the coefficients ``c`` viewed as ``(K, 1, ...)``."""
        raise NotImplementedError


def hyper_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def per_slice(p: Tensor) -> tuple[int, ...]:
    """The shape a ``(K,)`` hyperparameter takes to broadcast over ``p``'s slices: ``(K, 1, ...)``."""
    return (p.shape[0],) + (1,) * (p.dim() - 1)


class StackedSGD(StackedOptimizer):
    """``torch.optim.SGD(lr, momentum, dampening=0, weight_decay, nesterov)`` per lottery, each a ``(K,)`` tensor."""

    HYPERS = ("lr", "momentum", "weight_decay", "nesterov")
    FLAGS = ("nesterov",)

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1e-3,
        momentum: Hyper = 0.0,
        weight_decay: Hyper = 0.0,
        nesterov: Hyper = False,
    ) -> None:
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "nesterov": nesterov}
        super().__init__(params, defaults)

    def _check(self, group: dict[str, Any]) -> None:
        super()._check(group)
        if bool((group["nesterov"] & (group["momentum"] <= 0)).any()):
            raise ValueError("Nesterov momentum requires a momentum (a lottery has nesterov and momentum 0)")

    def _step_group(self, params: list[Tensor], group: dict[str, Any]) -> None:
        """The parameters of each dtype at once (torch's foreach kernels)."""
        for dtype in dict.fromkeys(p.dtype for p in params):
            self._step_tensors([p for p in params if p.dtype == dtype], group)

    def _step_tensors(self, params: list[Tensor], group: dict[str, Any]) -> None:
        """``params`` of one dtype; weight decay and Nesterov's look-ahead only where a lottery uses
        them. Each term is the one torch.optim's SGD computes, elementwise."""
        grads = [p.grad for p in params]
        if self._uses(group, "weight_decay"):
            decay = self._per_slice(group, "weight_decay", params)
            grads = [torch.addcmul(g, p, d) for g, p, d in zip(grads, params, decay, strict=True)]
        momentum = self._per_slice(group, "momentum", params)
        bufs = [self._momentum_buffer(p) for p in params]
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_add_(bufs, grads)
        updates = bufs
        if self._uses(group, "nesterov"):
            nesterov = group["nesterov"]
            updates = [
                torch.where(nesterov.view(per_slice(b)), torch.addcmul(g, b, m), b)
                for g, b, m in zip(grads, bufs, momentum, strict=True)
            ]
        torch._foreach_addcmul_(params, updates, self._per_slice(group, "lr", params), value=-1)

    def _momentum_buffer(self, p: Tensor) -> Tensor:
        state = self.state[p]
        if "momentum_buffer" not in state:  # 0 * 0 + grad: the first gradient, as torch's clone
            state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state["momentum_buffer"]


class StackedAdam(StackedOptimizer):
    """``torch.optim.Adam(lr, betas, eps, weight_decay)`` per lottery (``beta1``, ``beta2`` held apart).

    ``decoupled_weight_decay`` (a Python flag, one for all lotteries) makes it ``torch.optim.AdamW``."""

    HYPERS = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1e-3,
        betas: tuple[Hyper, Hyper] = (0.9, 0.999),
        eps: Hyper = 1e-8,
        weight_decay: Hyper = 0.0,
        decoupled_weight_decay: bool = False,
    ) -> None:
        beta1, beta2 = betas
        defaults = {
            "lr": lr,
            "beta1": beta1,
            "beta2": beta2,
            "eps": eps,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _check(self, group: dict[str, Any]) -> None:
        super()._check(group)
        for name in ("beta1", "beta2"):
            if bool(((group[name] < 0) | (group[name] >= 1)).any()):
                raise ValueError(f"Invalid {name}: {group[name].tolist()}")

    def _coefficients(self, group: dict[str, Any]) -> dict[str, Tensor]:
        lr, wd = group["lr"], group["weight_decay"]
        c = {
            "lr": lr,
            "1-beta1": 1 - group["beta1"],
            "beta2": group["beta2"],
            "1-beta2": 1 - group["beta2"],
            "eps": group["eps"],
        }
        if group["decoupled_weight_decay"]:
            c["1-lr*wd"] = 1 - lr * wd
        else:
            c["weight_decay"] = wd
        return c

    def _init_state(self, p: Tensor) -> None:
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros(self.size, dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _step_param(self, p: Tensor, group: dict[str, Any], c: dict[str, Tensor]) -> None:
        self._init_state(p)
        state = self.state[p]
        step, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
        step.add_(1)
        grad = p.grad
        if "1-lr*wd" in c:
            p.mul_(c["1-lr*wd"])
        else:
            grad = torch.addcmul(grad, p, c["weight_decay"])
        exp_avg.lerp_(grad, c["1-beta1"])
        exp_avg_sq.mul_(c["beta2"]).addcmul_(grad.mul(c["1-beta2"]), grad)
        # Bias corrections in the hyperparameters' precision (torch.optim's Python floats), then cast.
        counts = step.to(group["beta1"].dtype)
        bias_correction1 = 1 - group["beta1"] ** counts
        bias_correction2 = 1 - group["beta2"] ** counts
        shape = c["lr"].shape
        neg_step_size = (-group["lr"] / bias_correction1).to(p.dtype).view(shape)
        bias_correction2_sqrt = bias_correction2.sqrt().to(p.dtype).view(shape)
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(c["eps"])
        p.addcdiv_(exp_avg.mul(neg_step_size), denom)  # p + (value * exp_avg) / denom, as torch's addcdiv


class StackedAdamW(StackedAdam):
    """``torch.optim.AdamW`` per lottery: Adam with decoupled weight decay (torch's default 0.01)."""

    def __init__(
        self,
        params: Any,
        lr: Hyper = 1e-3,
        betas: tuple[Hyper, Hyper] = (0.9, 0.999),
        eps: Hyper = 1e-8,
        weight_decay: Hyper = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, decoupled_weight_decay=True)


STACKED_OPTIMIZERS: dict[str, type[StackedOptimizer]] = {
    "sgd": StackedSGD,
    "adam": StackedAdam,
    "adamw": StackedAdamW,  # not (yet) an lth optim.name
}
SCHEDULE_KEYS = (
    "name",
    "schedule",
    "warmup_steps",
)  # lth.lottery.optim's: the LR schedule, not the optimizer
OFF = {"dampening": 0, "amsgrad": False, "maximize": False}  # torch.optim keys accepted only at these values


def build_stacked_optimizer(params: Iterable[Any], optims: Sequence[Mapping[str, Any]]) -> StackedOptimizer:
    """The stacked optimizer of K lotteries' ``optim`` configs (``build_optimizer``'s format), one each.

    They must share ``name``; every other optimizer key may differ between lotteries, and one a lottery
    leaves out takes torch.optim's default. Schedule keys are left to the caller (``scale_lrs``)."""
    if not optims:
        raise ValueError("build_stacked_optimizer needs the optim config of at least one lottery")
    name = optims[0].get("name")
    for k, optim in enumerate(optims):
        if optim.get("name") != name:
            raise ValueError(
                f"a stack's lotteries must share optim.name: lottery 0 has {name!r}, lottery {k} has {optim.get('name')!r}"
            )
    if name not in STACKED_OPTIMIZERS:
        raise ValueError(
            f"optim.name={name!r} has no stacked optimizer (one of {', '.join(STACKED_OPTIMIZERS)})"
        )
    cls = STACKED_OPTIMIZERS[name]
    keys = set(cls.HYPERS) - {"beta1", "beta2"} | ({"betas"} if "beta1" in cls.HYPERS else set())
    values: dict[str, list[Any]] = {}
    for k, optim in enumerate(optims):
        for key, value in optim.items():
            if key in SCHEDULE_KEYS:
                continue
            if key in OFF:
                if value != OFF[key]:
                    raise ValueError(
                        f"lottery {k}: optim.{key}={value!r} is not supported stacked (only {OFF[key]!r})"
                    )
                continue
            if key not in keys:
                raise ValueError(
                    f"lottery {k}: optim.{key} is not a {name} hyperparameter ({', '.join(sorted(keys))})"
                )
            values.setdefault(key, [None] * len(optims))[k] = value
    defaults = _defaults(cls)
    kwargs: dict[str, Any] = {}
    for key, column in values.items():
        filled = [defaults[key] if v is None else v for v in column]
        if key == "betas":
            kwargs[key] = tuple([float(b[i]) for b in filled] for i in range(2))
        else:
            kwargs[key] = filled
    return cls(params, **kwargs)


def _defaults(cls: type[StackedOptimizer]) -> dict[str, Any]:
    signature = inspect.signature(cls.__init__)
    return {k: p.default for k, p in signature.parameters.items() if p.default is not inspect.Parameter.empty}
