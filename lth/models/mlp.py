"""Fully connected ReLU network; LeNet-300-100 is ``MLP(hidden=[300, 100])`` on 28x28 input."""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from lth.models.initializers import initialize


def scaled(widths: Sequence[int], multiplier: float) -> list[int]:
    """Each width times ``multiplier``, rounded, at least 1 (``model.width_multiplier``)."""
    return [max(1, round(multiplier * width)) for width in widths]


class MLP(nn.Sequential):
    """Flatten, then ``fc1, relu1, ..., fcN`` with ReLUs between; tensor names are ``fcK.weight``.
    The hidden widths are ``hidden`` times ``width_multiplier``."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int],
        init: str = "default",
        width_multiplier: float = 1.0,
    ) -> None:
        widths = [math.prod(input_shape), *scaled(hidden, width_multiplier), num_classes]
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        for k, (fan_in, fan_out) in enumerate(itertools.pairwise(widths), start=1):
            if k > 1:
                layers[f"relu{k - 1}"] = nn.ReLU()
            layers[f"fc{k}"] = nn.Linear(fan_in, fan_out)
        super().__init__(layers)
        initialize(self, init)


def student(
    input_shape: Sequence[int],
    num_classes: int,
    teacher_hidden: Sequence[int],
    width_multiplier: float,
    init: str = "default",
) -> MLP:
    """A teacher-student student: the teacher's depth, each hidden width ``width_multiplier`` x the teacher's."""
    return MLP(input_shape, num_classes, teacher_hidden, init, width_multiplier)
