"""Evaluation of a stack's K networks at once: mean loss and accuracy of each on its own split.

The K splits are stacked to ``(K, N, ...)`` (a split the replicates share, such as the test split, is
expanded, not copied) and run through the stack's forward in chunks of ``chunk`` rows of all K. The
loss is summed per replicate and divided by the number of target elements, as in training; accuracy
is the count of correct argmax predictions over ``N`` as a float32 division (torchmetrics' micro
accuracy). Each network's loss is reduced as its single job reduces it; where the stack's forward
equals the single network's (K=1; the MLP's ``StackedChain`` on the CPU) and a split fits in one
chunk of ``chunk // K`` rows, the metrics equal the single job's to the bit. Otherwise (``vmap``, larger
splits) they can differ in the last float digits and, on an exact tie of two logits, a prediction can
differ.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lth.lottery.lottery import Evaluate, Metrics, Split
from lth.lottery.masks import MaskedNetwork
from lth.lottery.stacked import Loss, SingleNetwork, Stack

CHUNK = 8192  # rows of all K per forward


class StackEvaluator:
    """Evaluates every network of ``stack`` on its split, in eval mode, on the stack's device."""

    def __init__(self, stack: Stack, loss: Loss, classification: bool, chunk: int = CHUNK) -> None:
        self.stack, self.loss, self.classification, self.chunk = stack, loss, classification, chunk

    @torch.no_grad()
    def __call__(self, splits: Sequence[Split]) -> list[Metrics]:
        """``splits[k]`` is network ``k``'s ``(x, y)``, all of one length; each network's metrics."""
        stack = self.stack
        device = next(stack.networks[0].parameters()).device
        x, y = _stacked([s[0] for s in splits], device), _stacked([s[1] for s in splits], device)
        size = len(splits)
        loss_sum = torch.zeros(size, device=device)
        correct = torch.zeros(size, dtype=torch.long, device=device)
        was_training = stack.training
        stack.eval()
        rows = max(1, self.chunk // size) if size > 1 else self.chunk
        for start in range(0, x.shape[1], rows):
            xb, yb = x[:, start : start + rows], y[:, start : start + rows]
            out = stack.outputs(xb)
            loss_sum += torch.stack([self.loss(out[k], yb[k], reduction="sum") for k in range(size)])
            if self.classification:
                correct += (out.argmax(-1) == yb).sum(1)
        stack.train(was_training)
        total = y[0].shape[0]
        accuracy = (correct.float() / torch.tensor(float(total), device=device)).tolist()
        losses = loss_sum.tolist()
        return [
            {"loss": losses[k] / y[k].numel(), "acc": accuracy[k] if self.classification else None}
            for k in range(size)
        ]


def _stacked(tensors: Sequence[Tensor], device: torch.device) -> Tensor:
    """``(K, N, ...)`` on ``device``; one tensor shared by all K is expanded, not copied."""
    first = tensors[0].to(device)
    if all(t is tensors[0] for t in tensors):
        return first.unsqueeze(0).expand(len(tensors), *first.shape)
    return torch.stack([t.to(device) for t in tensors])


def network_evaluator(network: MaskedNetwork, loss: Loss, classification: bool) -> Evaluate:
    """``Evaluate`` of one network (e.g. a lottery's supermask at theta_0): a stack of one."""
    evaluator = StackEvaluator(SingleNetwork(network), loss, classification)  # a wrapper: moves nothing
    return lambda x, y: evaluator([(x, y)])[0]
