"""A ticket found by another lottery, to be trained by a new one (``init=ticket``).

A ticket is the masks of one level of a lottery and the weights that level started from: theta_0 at
level 0, else what the lottery's survivors restart from (theta_0, or theta_k for a rewound lottery).
The new lottery continues the source from that level: it trains the ticket, and each later level
restarts its survivors as the source would have (from theta_k if the source rewound, else theta_0).

``fit_ticket`` checks a ticket against the new job's model before anything trains (one line naming
the tensor and both shapes) and, with ``output_layer="reinit"``, replaces the output layer (another class
count: Morcos et al. 2019 transfer all but it) by the new model's own fresh draw, unpruned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from lth.errors import ConfigError
from lth.lottery.masks import State, prunable_weight_names


@dataclass(frozen=True)
class Ticket:
    """The masks of ``level`` and the full model states the source lottery started from."""

    level: int
    masks: State
    theta_0: State
    snapshot: State | None  # the source's rewind point theta_k; None: its survivors restart from theta_0
    source: dict[str, Any]  # where it came from: every level's record carries it as ``ticket_source``

    @property
    def start(self) -> State:
        """The weights the ticket's level started from."""
        return self.theta_0 if self.level == 0 or self.snapshot is None else self.snapshot


def output_layer(model: nn.Module) -> list[str]:
    """The state names of the output layer: the last Linear/Conv (its weight, bias, buffers)."""
    module_name = prunable_weight_names(model)[-1].rpartition(".")[0]
    module = model.get_submodule(module_name)
    own = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
    return [f"{module_name}.{name}" for name, _ in own]


def _shape(tensor: Tensor | None) -> str:
    return "absent" if tensor is None else str(tuple(tensor.shape))


def _check_shapes(
    key: str, file: str, found: Mapping[str, Tensor], model: Mapping[str, Tensor], last_layer: list[str]
) -> None:
    """Every tensor of ``model`` in ``found`` with its shape, and nothing else."""
    for name in [*model, *(n for n in found if n not in model)]:
        ours, theirs = model.get(name), found.get(name)
        if theirs is None or ours is None or theirs.shape != ours.shape:
            hint = (
                " (init.ticket.output_layer=reinit draws the output layer fresh)"
                if name in last_layer
                else ""
            )
            raise ConfigError(
                f"lth: invalid config: {key}: tensor {name} is {_shape(theirs)} in the ticket's {file} and "
                f"{_shape(ours)} in this job's model; allowed: the same tensors and shapes{hint}"
            )


def fit_ticket(ticket: Ticket, model: nn.Module, prunable: list[str], output: str, key: str) -> Ticket:
    """``ticket`` checked against ``model`` (pruned tensors ``prunable``), its output layer kept or (``output
    = "reinit"``) replaced by ``model``'s own draw and unpruned; ``key`` names the source in errors."""
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    last = output_layer(model)
    fresh = last if output == "reinit" else []
    ours = {k: v for k, v in state.items() if k not in fresh}
    for file, found in (("init.pt", ticket.theta_0), ("rewind.pt", ticket.snapshot)):
        if found is not None:
            _check_shapes(key, file, {k: v for k, v in found.items() if k not in fresh}, ours, last)
    pruned, theirs = [n for n in prunable if n not in fresh], [n for n in ticket.masks if n not in fresh]
    for name in [*(n for n in pruned if n not in theirs), *(n for n in theirs if n not in pruned)]:
        where = "this job but not in the ticket" if name in pruned else "the ticket but not in this job"
        raise ConfigError(
            f"lth: invalid config: {key}: tensor {name} is pruned in {where} (prune.exclude); allowed: the "
            f"tensors the ticket prunes: {', '.join(theirs)}"
        )
    _check_shapes(key, "masks.pt", {n: ticket.masks[n] for n in pruned}, {n: state[n] for n in pruned}, last)

    def transplant(source: State | None) -> State | None:
        return None if source is None else {k: state[k] if k in fresh else source[k] for k in state}

    masks = {
        n: torch.ones_like(state[n], dtype=torch.bool) if n in fresh else ticket.masks[n] for n in prunable
    }
    return replace(
        ticket, masks=masks, theta_0=transplant(ticket.theta_0), snapshot=transplant(ticket.snapshot)
    )
