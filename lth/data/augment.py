"""Data augmentation on whole batches of image tensors (no per-sample Python).

``CropFlip`` is the standard CIFAR augmentation: pad by ``padding`` pixels (with black), take a
random crop of the original size, flip horizontally with probability 1/2. All random draws come
from the generator passed in, so a batch's augmentation is a function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class CropFlip:
    padding: int
    fill: Tensor  # per-channel value of a black pixel after normalisation, shape (C,)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        n, c, h, w = x.shape
        p = self.padding
        padded = self.fill.to(x).view(1, c, 1, 1).repeat(n, 1, h + 2 * p, w + 2 * p)
        padded[:, :, p : p + h, p : p + w] = x
        dy, dx = torch.randint(0, 2 * p + 1, (2, n, 1), generator=generator)
        flip = torch.rand(n, 1, generator=generator) < 0.5
        rows = (dy + torch.arange(h)).to(x.device)
        cols = dx + torch.arange(w)
        cols = torch.where(flip, cols.flip(1), cols).to(x.device)
        batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
        channel = torch.arange(c, device=x.device).view(1, c, 1, 1)
        return padded[batch, channel, rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]
