"""MNIST-1D (Greydanus 2020): 4,000 train / 1,000 test signals of length 40, generated offline.

Generated with ``mnist1d.data.make_dataset`` (never its download path) and cached as tensors under
``<root>/mnist1d/``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lth.data.memory import InMemoryDataModule, Split
from lth.files import save_tensors


def generate(seed: int) -> dict[str, torch.Tensor]:
    from mnist1d.data import get_dataset_args, make_dataset
    from mnist1d.utils import ObjectView

    args = get_dataset_args(as_dict=True)
    args["seed"] = seed
    data = make_dataset(ObjectView(args))
    return {
        "x": torch.as_tensor(data["x"], dtype=torch.float32),
        "y": torch.as_tensor(data["y"], dtype=torch.long),
        "x_test": torch.as_tensor(data["x_test"], dtype=torch.float32),
        "y_test": torch.as_tensor(data["y_test"], dtype=torch.long),
    }


class MNIST1DDataModule(InMemoryDataModule):
    num_classes = 10

    def __init__(self, root: str, val_size: int, batch_size: int, seed: int, generation_seed: int) -> None:
        super().__init__(root, val_size, batch_size, seed)
        self.generation_seed = generation_seed

    def load(self) -> dict[str, Split]:
        cache = Path(self.root).expanduser() / "mnist1d" / f"mnist1d_seed{self.generation_seed}.pt"
        if cache.exists():
            data = torch.load(cache, weights_only=True)
        else:
            data = generate(self.generation_seed)
            save_tensors(cache, data)
        return {"train": (data["x"], data["y"]), "test": (data["x_test"], data["y_test"])}
