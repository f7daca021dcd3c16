"""What the surviving weights restart from after a pruning event (the ``init=`` config group).

- ``winning_ticket``: reset the whole network to theta_0 (Frankle & Carbin).
- ``rewind``: reset to theta_k, the weights after ``rewind_step`` steps of the dense run.
- ``reinit``: keep the mask, draw fresh weights from the same initialiser (a new seed per level).
- ``random_prune``: replace the mask by a random one with the same per-tensor survivor counts,
  nested in the previous mask, and reset to theta_0.
- ``ticket``: the lottery starts from another one's ticket (``lth.lottery.ticket``); after each pruning
  event the survivors restart from its rewind point, or its theta_0 (as ``rewind`` / ``winning_ticket``).
- Zhou et al. 2019, applied to each prunable tensor (other tensors as ``winning_ticket``, or as
  ``reinit`` for ``signed_reinit``); a new permutation / draw per level:
  ``reshuffle`` (theta_0's kept values permuted among the kept positions), ``signed_constant``
  (``sign(theta_0) * std(theta_0)``, the std of the whole tensor at init), ``signed_reinit``
  (fresh magnitudes, theta_0's signs) and ``signed_reshuffle`` (reshuffled magnitudes, theta_0's signs).

Pruned weights are zero, or with ``pruned_weights: frozen_init`` held at their theta_0 value
(``MaskedNetwork.hold_pruned_at``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from lth.lottery import names
from lth.lottery.masks import State
from lth.lottery.pruning import random_masks_like
from lth.seeds import derived_seed

WeightRule = Callable[[Tensor, Tensor, Tensor, torch.Generator], Tensor]
"""(theta_0 of a tensor, a fresh draw of it, its mask, generator) -> the tensor's restart values."""


def _reshuffle(w_0: Tensor, mask: Tensor, generator: torch.Generator) -> Tensor:
    """``w_0`` with its values at the kept positions randomly permuted among those positions."""
    out = w_0.clone()
    kept = w_0[mask]
    out[mask] = kept[torch.randperm(kept.numel(), generator=generator).to(kept.device)]
    return out


WEIGHT_RULES: dict[str, WeightRule] = {
    "reshuffle": lambda w_0, fresh, mask, g: _reshuffle(w_0, mask, g),
    "signed_constant": lambda w_0, fresh, mask, g: w_0.sign() * w_0.std(),
    "signed_reinit": lambda w_0, fresh, mask, g: w_0.sign() * fresh.abs().to(w_0.device),
    "signed_reshuffle": lambda w_0, fresh, mask, g: w_0.sign() * _reshuffle(w_0, mask, g).abs(),
}
assert tuple(WEIGHT_RULES) == names.WEIGHT_RULES, (
    "lth.lottery.names.WEIGHT_RULES must name WEIGHT_RULES' keys"
)
FRESH = ("reinit", "signed_reinit")


@dataclass(frozen=True)
class Restart:
    """One restart strategy, configured."""

    name: str
    seed: int
    rewind_step: int = 0
    pruned_weights: str = "zero"

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

    def weights(
        self, snapshot: State, fresh_state: Callable[[int], State], masks: Mapping[str, Tensor], level: int
    ) -> State:
        """Full model state the next level starts from (masks are applied afterwards)."""
        fresh = fresh_state(derived_seed(self.seed, "reinit", level)) if self.name in FRESH else None
        start = fresh if fresh is not None else snapshot
        rule = WEIGHT_RULES.get(self.name)
        if rule is None:
            return start
        generator = torch.Generator().manual_seed(derived_seed(self.seed, self.name, level))
        return start | {
            name: rule(snapshot[name], start[name], mask, generator) for name, mask in masks.items()
        }
