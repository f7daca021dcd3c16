"""Training budgets: how many steps each level trains, from the forward cost of its masked network.

``train.budget: steps`` gives every level ``train.steps``. ``train.budget: flops`` is Liu et al.'s
Scratch-B: a pruned network trains for the compute the dense one spends in ``train.steps`` steps,
i.e. ``steps * dense_cost / level_cost`` steps, capped at ``train.budget_cap * steps`` (Liu et al.
double the epochs of any model that saves more than 2x FLOPs, the default cap).

The cost is multiply-accumulates per example in the forward pass, counting only live weights: one per
live Linear weight per output position, one per live Conv weight per output position. Biases and
normalisation layers are left out (a vanishing share), so the backward pass scales the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lth.models.layers import WEIGHTED_MODULES


class ForwardCost:
    """Multiply-accumulates per example of ``model`` under given masks (weights not masked count dense)."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        self.positions: dict[str, int] = {}  # weight name -> output positions it is applied at
        self.sizes: dict[str, int] = {}
        hooks = [
            module.register_forward_hook(self._recorder(name, module.weight))
            for name, module in model.named_modules()
            if isinstance(module, WEIGHTED_MODULES)
        ]
        was_training = model.training
        model.eval()  # batch norm on one example, without touching its running statistics
        try:
            with torch.no_grad():
                model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
        finally:
            model.train(was_training)
            for hook in hooks:
                hook.remove()
        self.dense = self({})

    def _recorder(self, name: str, weight: Tensor) -> Callable[[nn.Module, object, Tensor], None]:
        def record(module: nn.Module, inputs: object, output: Tensor) -> None:
            self.positions[f"{name}.weight"] = output.numel() // weight.shape[0]
            self.sizes[f"{name}.weight"] = weight.numel()

        return record

    def __call__(self, masks: Mapping[str, Tensor]) -> int:
        return sum(
            positions * (int(masks[name].sum()) if name in masks else self.sizes[name])
            for name, positions in self.positions.items()
        )


@dataclass(frozen=True)
class Budget:
    """How many steps a level trains (``kind``: one of ``lth.lottery.names.BUDGETS``)."""

    steps: int
    kind: str = "steps"
    cap: float = 2.0

    def level_steps(self, cost: int, dense_cost: int) -> int:
        """Steps for a level whose network costs ``cost`` MACs per example (the dense one ``dense_cost``)."""
        if self.kind == "steps":
            return self.steps
        return round(self.steps * min(self.cap, dense_cost / max(cost, 1)))

    def max_steps(self, levels: int) -> int:
        """An upper bound on the steps of ``levels`` + 1 levels (the Trainer's ``max_steps``)."""
        longest = self.steps if self.kind == "steps" else math.ceil(self.steps * self.cap)
        return (levels + 1) * longest
