"""Input-shape checks shared by the convolutional models."""

from __future__ import annotations

from collections.abc import Sequence


class IncompatibleInput(ValueError):
    """The model cannot run on inputs of this shape (lth.train turns it into a config error)."""


def image_shape(input_shape: Sequence[int], model: str) -> tuple[int, int, int]:
    """``(channels, height, width)`` of image input, or IncompatibleInput for any other shape."""
    if len(input_shape) != 3:
        raise IncompatibleInput(f"{model} needs image input (C, H, W), got shape {tuple(input_shape)}")
    channels, height, width = input_shape
    return channels, height, width
