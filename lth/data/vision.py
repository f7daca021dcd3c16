"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100, read from torchvision's on-disk layouts into memory.

A ``data.root`` prepared by torchvision works unchanged (torchvision itself is not needed):

| dataset | files |
| --- | --- |
| ``mnist`` | ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``, or the four files in ``<root>`` |
| ``fashion_mnist`` | ``<root>/FashionMNIST/raw/...`` (same names), or the four files in ``<root>`` |
| ``cifar10`` | ``<root>/cifar-10-batches-py/{data_batch_1..5,test_batch}`` (python pickle batches) |
| ``cifar100`` | ``<root>/cifar-100-python/{train,test}`` (fine labels) |

Images are kept as normalised float tensors ``(N, C, H, W)``: ``(x / 255 - mean) / std`` per channel,
computed once at load. ``download=True`` fetches missing files from ``mirrors`` into the same layout,
each checked against its MD5 in ``md5`` (``lth.data.download``).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from lth.data.augment import CropFlip
from lth.data.download import fetch
from lth.data.idx import read_idx
from lth.data.memory import InMemoryDataModule, Split
from lth.errors import ConfigError

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches (dicts of lists and numpy arrays) and refuses any other class."""

    ALLOWED = frozenset(
        {("_codecs", "encode")}  # bytes in protocol-2 pickles written by Python 3
        | {
            (module, name)
            for module in ("numpy.core.multiarray", "numpy._core.multiarray", "numpy")
            for name in ("_reconstruct", "ndarray", "dtype", "scalar")
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def read_cifar_batch(path: Path, label_key: str) -> Split:
    """uint8 images ``(N, 3, 32, 32)`` and int64 labels from one CIFAR python pickle batch."""
    with open(path, "rb") as f:
        entry = _ArrayUnpickler(f, encoding="latin1").load()
    images = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return torch.from_numpy(images.copy()), torch.as_tensor(entry[label_key], dtype=torch.long)


class ImageDataModule(InMemoryDataModule):
    """Base of the file-backed image datasets: locate the files, read them, normalise once."""

    subdirs: ClassVar[tuple[str, ...]]  # where under root the files may be ("" = root itself)
    download_dir: ClassVar[str]  # where under root the downloaded files (or archives) go
    files: ClassVar[tuple[str, ...]]
    optional_suffix: ClassVar[str] = ""  # each file may also carry this suffix (".gz")
    num_classes: int

    def __init__(
        self,
        root: str,
        val_size: int,
        batch_size: int,
        seed: int,
        mean: Sequence[float],
        std: Sequence[float],
        download: bool = False,
        mirrors: Sequence[str] = (),
        md5: Mapping[str, str] | None = None,
        augment: bool = False,
        padding: int = 4,
    ) -> None:
        super().__init__(root, val_size, batch_size, seed)
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1)
        self.download, self.mirrors, self.md5 = download, list(mirrors), dict(md5 or {})
        if augment:
            self.augmentation = CropFlip(padding, (-self.mean / self.std).flatten())

    def find(self, directory: Path, name: str) -> Path | None:
        """The file ``name`` in ``directory``, or None."""
        path = directory / name
        return path if path.is_file() else None

    def read(self, directory: Path) -> tuple[Split, Split]:
        """Train and test split as uint8 images ``(N, C, H, W)`` and int64 labels."""
        raise NotImplementedError

    def locate(self) -> Path:
        """The first candidate directory holding every file; downloads or fails with one line."""
        root = Path(self.root).expanduser()
        candidates = [root / sub for sub in self.subdirs]
        found = self.complete(candidates)
        if found is None and self.download:
            fetch(root / self.download_dir, self.md5, self.mirrors)
            found = self.complete(candidates)
        if found is not None:
            return found
        where = " or ".join(str(c) for c in candidates)
        names = ", ".join(name + self.optional_suffix for name in self.files)
        if self.download:
            raise ConfigError(
                f"lth: data not found after download: {where} must hold {names}; "
                f"data.md5 names {', '.join(self.md5) or 'no file'}"
            )
        raise ConfigError(
            f"lth: data not found: {where} must hold {names} (torchvision's layout); "
            f"copy them there or set data.download=true (fetches them from data.mirrors)"
        )

    def complete(self, candidates: list[Path]) -> Path | None:
        """The first of ``candidates`` that holds every file, or None."""
        return next((d for d in candidates if all(self.find(d, name) for name in self.files)), None)

    def normalise(self, images: Tensor) -> Tensor:
        return (images.float() / 255 - self.mean) / self.std

    def load(self) -> dict[str, Split]:
        (x, y), (x_test, y_test) = self.read(self.locate())
        return {"train": (self.normalise(x), y), "test": (self.normalise(x_test), y_test)}


class IdxDataModule(ImageDataModule):
    """MNIST-format datasets: four idx files, each raw or gzipped."""

    files = IDX_FILES
    optional_suffix = "[.gz]"

    def find(self, directory: Path, name: str) -> Path | None:
        return super().find(directory, name) or super().find(directory, name + ".gz")

    def read(self, directory: Path) -> tuple[Split, Split]:
        images, labels, test_images, test_labels = (
            read_idx(self.find(directory, name))
            for name in self.files  # type: ignore[arg-type]
        )
        return (images.unsqueeze(1), labels.long()), (test_images.unsqueeze(1), test_labels.long())


class MNISTDataModule(IdxDataModule):
    num_classes = 10
    subdirs = ("MNIST/raw", "")
    download_dir = "MNIST/raw"


class FashionMNISTDataModule(IdxDataModule):
    num_classes = 10
    subdirs = ("FashionMNIST/raw", "")
    download_dir = "FashionMNIST/raw"


class CIFAR10DataModule(ImageDataModule):
    num_classes = 10
    subdirs = ("cifar-10-batches-py",)
    download_dir = ""  # the archive holds cifar-10-batches-py/
    files = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")

    def read(self, directory: Path) -> tuple[Split, Split]:
        batches = [read_cifar_batch(directory / name, "labels") for name in self.files]
        train = batches[:-1]
        return (torch.cat([x for x, _ in train]), torch.cat([y for _, y in train])), batches[-1]


class CIFAR100DataModule(ImageDataModule):
    num_classes = 100
    subdirs = ("cifar-100-python",)
    download_dir = ""  # the archive holds cifar-100-python/
    files = ("train", "test")

    def read(self, directory: Path) -> tuple[Split, Split]:
        train, test = (read_cifar_batch(directory / name, "fine_labels") for name in self.files)
        return train, test
