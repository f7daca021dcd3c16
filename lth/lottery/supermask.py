"""Learned supermask (Zhou et al. 2019): weights frozen at theta_0, a trainable score per prunable weight.

Training forward: mask ~ Bernoulli(sigmoid(score)) through a straight-through estimator (the
forward pass uses the sampled 0/1 mask, the backward pass the gradient of sigmoid(score)), so the
optimizer trains only the scores. Draw ``k`` is seeded by ``(seed, k)``, with ``k`` a buffer saved in
checkpoints, so a resumed run samples exactly the masks an uninterrupted one would. Evaluation uses the deterministic mask ``sigmoid(score) > 0.5``,
which is also what the mask buffers hold (refreshed by ``apply_masks`` after every optimizer step),
so sparsity accounting, saved masks and supermask evaluation see the learned mask.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from lth.lottery.masks import MaskedNetwork, buffer_name
from lth.seeds import derived_seed


class LearnedSupermask(MaskedNetwork):
    def __init__(self, model: nn.Module, prunable: Iterable[str], seed: int) -> None:
        super().__init__(model, prunable)
        model.requires_grad_(False)
        self.scores = nn.ParameterDict(
            {buffer_name(n): nn.Parameter(torch.zeros_like(self.weight(n))) for n in self.prunable}
        )
        self.seed = seed
        self.register_buffer("draws", torch.zeros((), dtype=torch.long))  # training forwards so far

    def score(self, name: str) -> nn.Parameter:
        return self.scores[buffer_name(name)]

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            generator = torch.Generator(self.draws.device)
            generator.manual_seed(derived_seed(self.seed, "supermask", int(self.draws)))
            self.draws += 1
        masked = {}
        for name in self.prunable:
            p = torch.sigmoid(self.score(name))
            if self.training:
                sample = torch.bernoulli(p.detach(), generator=generator)
            else:
                sample = (p > 0.5).to(p.dtype)
            masked[name] = self.weight(name) * (sample + p - p.detach())
        return torch.func.functional_call(self.model, masked, (x,))

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Refresh the mask buffers from the scores; the frozen weights are never changed."""
        for name in self.prunable:
            self.mask(name).copy_(self.score(name) > 0)
        self.refresh_factors()
