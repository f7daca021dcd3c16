"""Datasets through the real loaders: files written by the tests in the exact formats, real Fashion-MNIST."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from datafiles import write_cifar, write_mnist

from lth.data.augment import CropFlip
from lth.data.digits import DigitsDataModule
from lth.data.memory import ShuffledBatches
from lth.data.vision import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
    read_cifar_batch,
)
from lth.errors import ConfigError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
MEAN, STD = [0.1307], [0.3081]


def idx_module(cls, root: Path, seed: int = 0, val_size: int = 20, **kwargs):
    module = cls(str(root), val_size, 16, seed, MEAN, STD, **kwargs)
    module.setup()
    return module


def unnormalise(x: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    m, s = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
    return ((x * s + m) * 255).round().to(torch.uint8)


@pytest.mark.parametrize(
    ("cls", "subdir", "gz"),
    [
        (MNISTDataModule, "MNIST/raw", True),
        (MNISTDataModule, "", False),
        (FashionMNISTDataModule, "FashionMNIST/raw", False),
        (FashionMNISTDataModule, "", True),
    ],
    ids=["mnist-torchvision-gz", "mnist-flat-raw", "fashion-torchvision-raw", "fashion-flat-gz"],
)
def test_idx_datasets_load_shapes_splits_and_pixels(tmp_path: Path, cls, subdir: str, gz: bool) -> None:
    written = write_mnist(tmp_path / subdir, train=120, test=30, gz=gz)
    data = idx_module(cls, tmp_path)
    x, y = data.split("train")
    assert (x.shape, x.dtype, y.dtype) == ((100, 1, 28, 28), torch.float32, torch.int64)
    assert len(data.split("val")[0]) == 20 and data.num_classes == 10
    x_test, y_test = data.split("test")
    assert torch.equal(unnormalise(x_test, MEAN, STD)[:, 0], written["t10k-images-idx3-ubyte"])
    assert torch.equal(y_test, written["t10k-labels-idx1-ubyte"].long())
    # train + val is a permutation of the training file: every image keeps its label
    images = torch.cat([x, data.split("val")[0]])
    labels = torch.cat([y, data.split("val")[1]])
    original = {
        bytes(img.numpy()): int(lab)
        for img, lab in zip(
            written["train-images-idx3-ubyte"], written["train-labels-idx1-ubyte"], strict=True
        )
    }
    assert sorted(original.values()) == sorted(labels.tolist())
    assert all(
        original[bytes(img.numpy())] == lab
        for img, lab in zip(unnormalise(images, MEAN, STD)[:, 0], labels.tolist(), strict=True)
    )
    assert data.augmentation is None


def test_validation_split_is_seeded(tmp_path: Path) -> None:
    write_mnist(tmp_path, train=120, test=30)
    a, b, c = (idx_module(MNISTDataModule, tmp_path, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.split("val")[0], b.split("val")[0])
    assert not torch.equal(a.split("val")[0], c.split("val")[0])
    assert torch.equal(a.split("test")[0], c.split("test")[0])


@pytest.mark.parametrize("classes", [10, 100])
def test_cifar_pickle_batches_load_in_channel_row_column_order(tmp_path: Path, classes: int) -> None:
    images, labels = write_cifar(tmp_path, classes, per_batch=8, test=6)
    cls = CIFAR10DataModule if classes == 10 else CIFAR100DataModule
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    data = cls(str(tmp_path), 10, 4, 0, mean, std, augment=True)
    data.setup()
    x, y = data.split("train")
    assert x.shape == (30, 3, 32, 32) and len(data.split("val")[0]) == 10 and data.num_classes == classes
    assert data.split("test")[0].shape == (6, 3, 32, 32)
    # undo the split: find each loaded image's row of the written data, labels included
    all_x = unnormalise(torch.cat([x, data.split("val")[0]]), mean, std)
    all_y = torch.cat([y, data.split("val")[1]]).tolist()
    rows = {bytes(r): i for i, r in enumerate(images)}
    for image, label in zip(all_x, all_y, strict=True):
        row = rows[bytes(image.numpy().reshape(-1))]  # data row = R plane, G plane, B plane, each row-major
        assert labels[row] == label
    assert len({rows[bytes(i.numpy().reshape(-1))] for i in all_x}) == 40
    assert isinstance(data.augmentation, CropFlip)


def test_cifar_reader_refuses_pickles_that_run_code(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": os.system, "labels": []}))
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        read_cifar_batch(path, "labels")


def test_missing_files_are_one_line_naming_path_and_files(tmp_path: Path) -> None:
    write_mnist(tmp_path / "MNIST" / "raw", train=10, test=5)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ConfigError) as caught:
        idx_module(MNISTDataModule, tmp_path, val_size=2)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("lth: data not found")
    assert str(tmp_path / "MNIST" / "raw") in message and "t10k-labels-idx1-ubyte[.gz]" in message
    with pytest.raises(ConfigError, match=r"cifar-10-batches-py must hold data_batch_1, .*test_batch"):
        CIFAR10DataModule(str(tmp_path), 2, 2, 0, [0.5] * 3, [0.2] * 3).setup()


def test_crop_flip_is_seeded_shape_preserving_and_a_padded_crop() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, 8, 8, generator=g)
    fill = torch.tensor([-1.0, -2.0, -3.0])
    augment = CropFlip(2, fill)
    out = augment(x, torch.Generator().manual_seed(5))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, augment(x, torch.Generator().manual_seed(5)))
    assert not torch.equal(out, augment(x, torch.Generator().manual_seed(6)))
    padded = fill.view(1, 3, 1, 1).repeat(12, 1, 12, 12)
    padded[:, :, 2:10, 2:10] = x
    flips = 0
    for i in range(12):
        crops = {
            (dy, dx, f): padded[i, :, dy : dy + 8, dx : dx + 8].flip(-1)
            if f
            else padded[i, :, dy : dy + 8, dx : dx + 8]
            for dy in range(5)
            for dx in range(5)
            for f in (0, 1)
        }
        matches = [k for k, crop in crops.items() if torch.equal(crop, out[i])]
        assert matches, i
        flips += matches[0][2]
    assert 0 < flips < 12


def test_augmented_training_batches_are_a_function_of_seed_and_step() -> None:
    x, y = torch.randn(40, 3, 8, 8), torch.arange(40)
    augment = CropFlip(2, torch.zeros(3))

    def stream(seed: int, start: int) -> ShuffledBatches:
        return ShuffledBatches(x, y, 8, seed, lambda: (start, 0, 1), augment)

    first = [b for _, b in zip(range(7), stream(3, 0), strict=False)]
    again = [b for _, b in zip(range(7), stream(3, 0), strict=False)]
    resumed = next(iter(stream(3, 6)))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    assert torch.equal(resumed[0], first[6][0]) and torch.equal(resumed[1], first[6][1])
    plain = next(iter(ShuffledBatches(x, y, 8, 3, lambda: (0, 0, 1))))
    assert torch.equal(plain[1], first[0][1]) and not torch.equal(plain[0], first[0][0])
    other = next(iter(stream(4, 0)))
    assert not torch.equal(other[0], first[0][0])


def test_digits_ship_with_sklearn_and_keep_a_fixed_test_set() -> None:
    a, b = (DigitsDataModule("unused", 200, 32, seed, 297, 0) for seed in (0, 1))
    for data in (a, b):
        data.setup()
    x, y = a.split("train")
    assert (x.shape, x.dtype, y.dtype) == ((1300, 1, 8, 8), torch.float32, torch.int64)
    assert len(a.split("val")[0]) == 200 and len(a.split("test")[0]) == 297
    assert x.min() >= 0.0 and x.max() <= 1.0 and set(y.tolist()) == set(range(10))
    assert torch.equal(a.split("test")[0], b.split("test")[0])
    assert not torch.equal(a.split("val")[0], b.split("val")[0])


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_debians_package() -> None:
    data = FashionMNISTDataModule(str(DEBIAN_FASHION), 5000, 60, 0, [0.2860], [0.3530])
    data.setup()
    x, y = data.split("train")
    assert x.shape == (55000, 1, 28, 28) and len(data.split("val")[0]) == 5000
    x_test, y_test = data.split("test")
    assert x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(y_test).tolist() == [1000] * 10
    assert torch.bincount(torch.cat([y, data.split("val")[1]])).tolist() == [6000] * 10
    assert abs(x.mean().item()) < 0.01 and abs(x.std().item() - 1) < 0.01  # the configured mean/std fit


@pytest.mark.parametrize("augment", [False, True])
def test_batches_are_drawn_on_the_device_the_splits_are_held_on(augment: bool) -> None:
    """``hold_on`` moves the splits once (to the GPU when training there); the meta device stands in."""
    data = DigitsDataModule("unused", 200, 32, 0, 297, 0)
    data.hold_on(torch.device("meta"))
    assert {t.device.type for split in ("train", "val", "test") for t in data.split(split)} == {"meta"}
    x, y = data.split("train")
    flip = CropFlip(2, torch.zeros(1)) if augment else None
    xb, yb = next(iter(ShuffledBatches(x, y, 32, 0, lambda: (0, 0, 1), flip)))
    assert (xb.device.type, yb.device.type, xb.shape, yb.shape) == ("meta", "meta", (32, 1, 8, 8), (32,))


@pytest.mark.parametrize("augment", [False, True])
def test_noisy_replicates_are_the_single_jobs_of_their_seeds(augment: bool) -> None:
    """With ``label_noise``, replicate k's train and val splits and batches are the job with seed 3+k's:
    noise on that job's choice of training rows, true validation labels."""

    def module(seed: int) -> DigitsDataModule:
        data = DigitsDataModule("unused", 200, 32, seed, 297, 0)
        data.label_noise = 0.5
        data.augmentation = CropFlip(1, torch.zeros(1)) if augment else None
        data.setup()
        return data

    seeds = [3, 4, 5]
    data = module(seeds[0]).replicate_data(seeds, torch.device("cpu"))  # 40 batches an epoch
    stacked = [
        (step, batch)
        for start in (0, 37)  # from a later step too, across the epoch boundary at 40
        for step, batch in zip(range(start, start + 7), data.batches(start), strict=False)
    ]
    for k, seed in enumerate(seeds):
        single = module(seed)
        for name in ("train", "val", "test"):
            assert all(map(torch.equal, data.split(k, name), single.split(name))), (k, name)
        x, y = single.split("train")
        for step, (xs, ys) in stacked:
            xb, yb = next(
                iter(ShuffledBatches(x, y, 32, seed, lambda step=step: (step, 0, 1), single.augmentation))
            )
            assert torch.equal(xs[k], xb) and torch.equal(ys[k], yb), (k, step)
    if not augment:  # the captured step's draw
        drawn = data.on_device()
        for step, (xs, ys) in stacked:
            drawn.prepare(step)
            xd, yd = drawn.draw()
            assert torch.equal(xd, xs) and torch.equal(yd, ys), step
