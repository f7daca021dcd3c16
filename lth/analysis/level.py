"""What the analyses read: one level of one lottery, as tensors (from a running lottery or from disk).

Layers are the prunable tensors (every Linear/Conv weight), named by their module (``fc1``,
``features.conv1``). A weight is seen as a matrix ``(units, fan-in)``: rows are a unit's (or a conv
filter's) incoming weights. ``W0`` is theta_0 under the level's mask: what the ticket started from
(with ``init=winning_ticket``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

Split = tuple[Tensor, Tensor]
Result = tuple[dict[str, Any], dict[str, Tensor]]
"""Numbers for the record (per layer), tensors for ``levels/level_NN/analysis/<name>.pt``."""


class NeedsModel(ValueError):
    """The analysis runs the network, but only the prunable weights of the level are known."""


@dataclass(frozen=True)
class Level:
    """One level: its trained weights (and the whole model, when its full state is known), theta_0,
    its masks, the previous level's masks, held-out examples and the job's seed."""

    weights: Mapping[str, Tensor]  # prunable weights at the level's end, by tensor name
    theta_0: Mapping[str, Tensor]  # the model state at init (at least the prunable weights)
    masks: Mapping[str, Tensor]
    previous_masks: Mapping[str, Tensor] | None = None
    model: nn.Module | None = None  # holds the level's full trained state
    data: Split | None = None  # held-out (x, y): the test split
    seed: int = 0

    def layers(self) -> Iterator[tuple[str, Tensor, Tensor, Tensor]]:
        """``(layer, W, W0, mask)`` per prunable tensor, each a float64 (or bool) ``(units, fan-in)`` matrix."""
        for name, mask in self.masks.items():
            weight = self.weights[name].detach().double().cpu()
            start = self.theta_0[name].detach().double().cpu() * mask.cpu()
            yield layer_name(name), weight.flatten(1), start.flatten(1), mask.cpu().flatten(1)

    def network(self) -> tuple[nn.Module, Split]:
        """The model and the held-out data, or NeedsModel."""
        if self.model is None or self.data is None:
            raise NeedsModel("needs the full model state of the level (levels/level_NN/state.pt)")
        return self.model, self.data


def layer_name(tensor: str) -> str:
    return tensor.removesuffix(".weight")


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode without gradients, its training mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def accuracy(logits: Tensor, y: Tensor) -> Tensor:
    """Fraction of rows of ``logits`` (``(..., n, classes)``) whose argmax is ``y``: shape ``(...)``."""
    return (logits.argmax(-1) == y).double().mean(-1)


def batched(forward: Callable[[Tensor], Tensor], x: Tensor, rows: int = 4096) -> Tensor:
    """``forward`` over ``x`` in chunks of ``rows``, concatenated."""
    return torch.cat([forward(chunk) for chunk in x.split(rows)])
