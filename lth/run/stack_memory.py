"""``hydra.sweeper.max_stack=auto``: how many lotteries of a job fit in one stack, from memory.

One lottery's share of a stack is estimated from its job's config: the model is built on the meta
device (no memory, no weights drawn) for the data's input shape, and counted:

- ``STATE_COPIES`` float copies of every parameter: the weights, their gradient, the optimizer's state
  (SGD's momentum, Adam's two moments), theta_0 and a rewind point, the weights a frozen lottery is
  held at, the pruning's scores and the level's saved weights;
- a bool mask and a float mask factor per prunable weight;
- the activations of one training batch, ``ACTIVATION_COPIES`` times (the forward's saved tensors,
  their gradients, temporaries), from a forward on the meta device.

The budget is ``SHARE`` of the memory free where the stack will train: the GPU's free memory when the
job's ``trainer.accelerator`` picks a GPU this process sees, else the host's available memory, or
``hydra.sweeper.memory_gb`` where given (e.g. a SLURM task's memory, which the submitting host cannot
see). The estimate errs high (an MLP of 1M weights: 53.6 MB against 44.7 MB a lottery measured); what
does not grow with K (the data, an evaluation chunk) is left to the other half. A stack is still capped
at ``AUTO_MAX_STACK``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from omegaconf import DictConfig

from lth.errors import ConfigError

AUTO_MAX_STACK = 64  # max_stack=auto never exceeds this
SHARE = 0.5  # of the free memory a stack may plan to use
STATE_COPIES = 10  # float copies of the parameters a lottery keeps (module docstring)
ACTIVATION_COPIES = 3  # of a training batch's activations
FLOAT_BYTES = 4


@dataclass(frozen=True)
class Fit:
    """How many lotteries of one job fit in a stack, and what that rests on (for the sweep's line)."""

    lotteries: int
    lottery_bytes: int | None  # None: not estimated (the fixed cap applies; ``where`` says why)
    budget_bytes: int | None  # None: no free-memory figure found (the fixed cap applies)
    where: str  # "GPU", "host", "hydra.sweeper.memory_gb", or why there is no estimate

    def describe(self) -> str:
        if self.lottery_bytes is None or self.budget_bytes is None:
            return f"max_stack=auto: {self.lotteries} ({self.where})"
        return (
            f"max_stack=auto: {self.lotteries} lotteries of ~{_size(self.lottery_bytes)} each in half of "
            f"{_size(self.budget_bytes)} ({self.where})"
        )


def lottery_bytes(cfg: DictConfig) -> int:
    """An upper estimate of one lottery's memory in a stack of the job ``cfg`` (resolved)."""
    import torch

    from lth.run.building import build_datamodule, model_factory

    data = build_datamodule(cfg)
    with torch.device("meta"):
        model = model_factory(cfg, data)(0)  # a model that does not fit the data: its ConfigError
        activations = _activation_numel(model, torch.empty(int(cfg.train.batch_size), *data.input_shape))
    params = sum(p.numel() for p in model.parameters())
    weights = sum(p.numel() for name, p in model.named_parameters() if name.endswith("weight"))
    return FLOAT_BYTES * (STATE_COPIES * params + ACTIVATION_COPIES * activations) + 5 * weights


def _activation_numel(model: object, x: object) -> int:
    """Elements of every leaf module's output on the batch ``x`` (a forward on the meta device)."""
    import torch

    assert isinstance(model, torch.nn.Module)
    total = 0

    def count(module: torch.nn.Module, inputs: object, output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return total


def free_memory(cfg: DictConfig, memory_gb: float | None) -> tuple[int | None, str]:
    """The bytes free where the job ``cfg`` trains, and where that figure comes from."""
    if memory_gb is not None:
        return int(float(memory_gb) * 1e9), "hydra.sweeper.memory_gb"
    if str(cfg.trainer.get("accelerator", "auto")) in ("auto", "gpu", "cuda"):
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.mem_get_info()[0]), "GPU"
    return host_available(), "host"


def host_available() -> int | None:
    """The host's available memory (Linux ``MemAvailable``), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def auto_fit(cfg: DictConfig, memory_gb: float | None) -> Fit:
    """How many lotteries of the job ``cfg`` fit in one stack (at least 1, at most ``AUTO_MAX_STACK``)."""
    try:
        each = lottery_bytes(cfg)
    except (ConfigError, OSError, RuntimeError, ValueError) as exc:  # e.g. data only on the cluster's nodes
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Fit(AUTO_MAX_STACK, None, None, f"a lottery's memory could not be estimated: {reason}")
    budget, where = free_memory(cfg, memory_gb)
    if budget is None:
        return Fit(AUTO_MAX_STACK, each, None, "no free-memory figure found")
    fit = max(1, min(AUTO_MAX_STACK, math.floor(SHARE * budget / each)))
    return Fit(fit, each, budget, where)


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"
