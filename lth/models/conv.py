"""Plain convolutional networks described by a plan: LeNet-5, Conv-2/4/6 (Frankle & Carbin), VGG (CIFAR).

``plan`` lists conv widths and ``"M"`` (2x2 max pool); every conv is ``kernel_size`` x ``kernel_size``
with ``padding``, followed by batch norm (optional) and ReLU. The features are then flattened (or
averaged over space with ``global_pool``) and fed through the fully connected ``hidden`` layers and
the output layer, registered last. ``width_multiplier`` scales every conv width and hidden width. Tensor names: ``features.convK.weight``, ``classifier.fcK.weight``.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

from lth.models.initializers import initialize
from lth.models.mlp import scaled
from lth.models.shapes import IncompatibleInput, image_shape

POOL = "M"


class ConvNet(nn.Module):
    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        plan: Sequence[int | str],
        hidden: Sequence[int] = (),
        kernel_size: int = 3,
        padding: int = 1,
        batch_norm: bool = False,
        global_pool: bool = False,
        init: str = "default",
        width_multiplier: float = 1.0,
    ) -> None:
        super().__init__()
        channels, height, width = image_shape(input_shape, "ConvNet")
        plan = [item if item == POOL else scaled([int(item)], width_multiplier)[0] for item in plan]
        hidden = scaled(hidden, width_multiplier)
        features: OrderedDict[str, nn.Module] = OrderedDict()
        convs = pools = 0
        for item in plan:
            if item == POOL:
                pools += 1
                features[f"pool{pools}"] = nn.MaxPool2d(2)
                height, width = height // 2, width // 2
            else:
                convs += 1
                features[f"conv{convs}"] = nn.Conv2d(
                    channels, int(item), kernel_size, padding=padding, bias=not batch_norm
                )
                if batch_norm:
                    features[f"bn{convs}"] = nn.BatchNorm2d(int(item))
                features[f"relu{convs}"] = nn.ReLU()
                channels = int(item)
                height, width = height + 2 * padding - kernel_size + 1, width + 2 * padding - kernel_size + 1
            if min(height, width) < 1:
                raise IncompatibleInput(
                    f"input {tuple(input_shape)} is too small for the plan {list(plan)} (nothing left after {item!r})"
                )
        self.features = nn.Sequential(features)
        classifier: OrderedDict[str, nn.Module] = OrderedDict()
        if global_pool:
            classifier["pool"] = nn.AdaptiveAvgPool2d(1)
            height = width = 1
        classifier["flatten"] = nn.Flatten()
        widths = [channels * height * width, *hidden, num_classes]
        for k, (fan_in, fan_out) in enumerate(itertools.pairwise(widths), start=1):
            if k > 1:
                classifier[f"relu{k - 1}"] = nn.ReLU()
            classifier[f"fc{k}"] = nn.Linear(fan_in, fan_out)
        self.classifier = nn.Sequential(classifier)
        initialize(self, init)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
