"""How each pruning event prunes: criterion, scope, structure and each prunable tensor's rate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

from torch import Tensor, nn

from lth.lottery.at_init import prune_at_init
from lth.lottery.masks import State
from lth.lottery.pruning import prune_masks, score, structure_masks
from lth.seeds import derived_seed


@dataclass(frozen=True)
class PruningPlan:
    """The ``prune`` config group, resolved for one model."""

    criterion: str
    scope: str
    base_rate: float
    rates: Mapping[str, float]
    seed: int = 0
    at_init: str | None = None
    iterations: int = 1
    batches: int = 1
    structure: str = "unstructured"
    norm: int = 1
    readers: Mapping[str, str] = field(default_factory=dict)  # structured: unit tensor -> its reader

    def next_masks(
        self, masks: Mapping[str, Tensor], w_init: State, w_final: State, level: int
    ) -> dict[str, Tensor]:
        """Masks after the pruning event that ends ``level`` (ties broken by a per-level seed)."""
        ties = derived_seed(self.seed, "ties", level)
        if self.structure != "unstructured":
            return structure_masks(w_final, masks, self.rates, self.norm, self.readers, ties)
        scores = score(self.criterion, w_init, w_final)
        return prune_masks(scores, masks, self.rates, self.scope, self.base_rate, ties)

    def masks_at_init(
        self, model: nn.Module, masks: Mapping[str, Tensor], data: tuple[Tensor, Tensor]
    ) -> dict[str, Tensor]:
        """Masks from ``at_init``'s saliency at theta_0 (pruning before any training)."""
        assert self.at_init is not None
        seeds = partial(derived_seed, self.seed, "at_init")
        return prune_at_init(
            self.at_init, model, masks, data, self.rates, self.scope, self.base_rate, seeds, self.iterations
        )
