"""Tiny datasets written in the exact on-disk formats torchvision reads (idx, CIFAR pickle batches)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from lth.data.idx import write_idx
from lth.data.vision import IDX_FILES


def write_mnist(
    directory: Path, train: int, test: int, seed: int = 0, gz: bool = True
) -> dict[str, torch.Tensor]:
    """Random idx files for ``train``/``test`` 28x28 images; returns what was written, by file name."""
    g = torch.Generator().manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in IDX_FILES:
        n = train if name.startswith("train") else test
        shape, high = ((n, 28, 28), 256) if "images" in name else ((n,), 10)
        written[name] = torch.randint(0, high, shape, generator=g, dtype=torch.uint8)
        write_idx(directory / (name + (".gz" if gz else "")), written[name])
    return written


def write_cifar_batch(path: Path, images: np.ndarray, labels: list[int], label_key: str) -> None:
    """One batch as the CIFAR python version stores it: a pickled dict, ``data`` of shape (N, 3072)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "batch_label": path.name,
        label_key: labels,
        "data": images,
        "filenames": [f"{i}.png" for i in labels],
    }
    if label_key == "fine_labels":
        entry["coarse_labels"] = [label // 5 for label in labels]
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)


def write_cifar(
    root: Path, classes: int, per_batch: int, test: int, seed: int = 0
) -> tuple[np.ndarray, list[int]]:
    """CIFAR-10 (five train batches + test_batch) or CIFAR-100 (train + test); returns the train images/labels."""
    rng = np.random.default_rng(seed)
    if classes == 10:
        names, directory, key = (
            [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"],
            "cifar-10-batches-py",
            "labels",
        )
        sizes = [per_batch] * 5 + [test]
    else:
        names, directory, key = ["train", "test"], "cifar-100-python", "fine_labels"
        sizes = [5 * per_batch, test]
    images, labels = [], []
    for name, n in zip(names, sizes, strict=True):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, classes, n)]
        write_cifar_batch(root / directory / name, data, y, key)
        images.append(data)
        labels.append(y)
    return np.concatenate(images[:-1]), [label for batch in labels[:-1] for label in batch]
