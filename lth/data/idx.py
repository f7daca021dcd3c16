"""The idx format of MNIST and Fashion-MNIST (LeCun's ``train-images-idx3-ubyte`` etc.), raw or gzipped.

Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then each
dimension as a big-endian int32; the data follows in C order.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from torch import Tensor

UBYTE = 0x08


def _open(path: Path, mode: str) -> BinaryIO:
    return gzip.open(path, mode) if path.suffix == ".gz" else open(path, mode)


def read_idx(path: Path) -> Tensor:
    """The uint8 array stored in an idx file (``.gz`` decompressed on the fly)."""
    with _open(path, "rb") as f:
        data = f.read()
    zeros, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zeros != 0 or dtype != UBYTE:
        raise ValueError(f"{path} is not an unsigned-byte idx file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, found {array.size} bytes")
    return torch.from_numpy(array.reshape(shape).copy())


def write_idx(path: Path, array: Tensor) -> None:
    """Write a uint8 tensor as an idx file (gzipped when ``path`` ends in ``.gz``)."""
    header = struct.pack(f">HBB{array.dim()}I", 0, UBYTE, array.dim(), *array.shape)
    with _open(path, "wb") as f:
        f.write(header + array.to(torch.uint8).contiguous().numpy().tobytes())
