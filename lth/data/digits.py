"""sklearn's 8x8 handwritten digits (1,797 images, 10 classes), shipped with scikit-learn: fully offline.

Images ``(N, 1, 8, 8)`` scaled to [0, 1]. sklearn has no test split: a fixed permutation seeded by
``split_seed`` (independent of the job's seed, so every job tests on the same images) sets
``test_size`` images aside.
"""

from __future__ import annotations

import torch

from lth.data.memory import InMemoryDataModule, Split


class DigitsDataModule(InMemoryDataModule):
    num_classes = 10

    def __init__(
        self, root: str, val_size: int, batch_size: int, seed: int, test_size: int, split_seed: int
    ) -> None:
        super().__init__(root, val_size, batch_size, seed)
        self.test_size, self.split_seed = test_size, split_seed

    def load(self) -> dict[str, Split]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16
        y = torch.as_tensor(digits.target, dtype=torch.long)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.split_seed))
        test, train = order[: self.test_size], order[self.test_size :]
        return {"train": (x[train], y[train]), "test": (x[test], y[test])}
