"""What the surviving weights restart from after a pruning event (the ``init=`` config group).

- ``winning_ticket``: reset the whole network to theta_0 (Frankle & Carbin).
- ``rewind``: reset to theta_k, the weights after ``rewind_step`` steps of the dense run.
- ``reinit``: keep the mask, draw fresh weights from the same initialiser (a new seed per level).
- ``random_prune``: replace the mask by a random one with the same per-tensor survivor counts,
  nested in the previous mask, and reset to theta_0.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from lth.pruning import random_masks_like

STRATEGIES = ("winning_ticket", "rewind", "reinit", "random_prune")

State = dict[str, Tensor]


def derived_seed(seed: int, purpose: str, level: int = 0) -> int:
    """A stable 31-bit seed for one purpose at one level, independent of Python's hash salt."""
    return zlib.crc32(f"{seed}/{purpose}/{level}".encode()) & 0x7FFFFFFF


@dataclass(frozen=True)
class Restart:
    """One restart strategy, configured."""

    name: str
    seed: int
    rewind_step: int = 0

    @property
    def snapshot_step(self) -> int:
        """The dense-run step whose weights the survivors restart from (0 = theta_0)."""
        return self.rewind_step if self.name == "rewind" else 0

    def masks(
        self, pruned: Mapping[str, Tensor], previous: Mapping[str, Tensor], level: int
    ) -> dict[str, Tensor]:
        """The mask the next level trains with, given the criterion's ``pruned`` mask."""
        if self.name != "random_prune":
            return dict(pruned)
        generator = torch.Generator().manual_seed(derived_seed(self.seed, "random_prune", level))
        return random_masks_like(pruned, previous, generator)

    def weights(self, snapshot: State, fresh_state: Callable[[int], State], level: int) -> State:
        """Full model state the next level starts from (masks are applied afterwards)."""
        if self.name == "reinit":
            return fresh_state(derived_seed(self.seed, "reinit", level))
        return snapshot
