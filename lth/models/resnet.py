"""ResNet for CIFAR (He et al. 2016, section 4.2): depth 6n+2, three stages of n basic blocks with
``width``, 2x``width``, 4x``width`` channels. Where the shape changes, the shortcut is a 1x1 conv with
batch norm (as in Frankle & Carbin / OpenLTH). ResNet-20: n = 3, width 16, 270,256 conv weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from lth.models.initializers import initialize
from lth.models.mlp import scaled
from lth.models.shapes import image_shape


class BasicBlock(nn.Module):
    def __init__(self, fan_in: int, fan_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(fan_in, fan_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(fan_out)
        self.conv2 = nn.Conv2d(fan_out, fan_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(fan_out)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(fan_in, fan_out, 1, stride=stride, bias=False), nn.BatchNorm2d(fan_out))
            if stride != 1 or fan_in != fan_out
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        depth: int = 20,
        width: int = 16,
        init: str = "default",
        width_multiplier: float = 1.0,
    ) -> None:
        super().__init__()
        channels, _, _ = image_shape(input_shape, "ResNet")
        width = scaled([width], width_multiplier)[0]
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"ResNet depth must be 6n+2 with n >= 1, got {depth}")
        blocks = (depth - 2) // 6
        self.conv = nn.Conv2d(channels, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        layers, fan_in = [], width
        for stage, fan_out in enumerate((width, 2 * width, 4 * width)):
            for block in range(blocks):
                layers.append(BasicBlock(fan_in, fan_out, 2 if stage and not block else 1))
                fan_in = fan_out
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(fan_in, num_classes)
        initialize(self, init)

    def unit_readers(self) -> dict[str, str]:
        """Filters structured pruning may remove: each block's first conv, read only by its second
        (the other convs' outputs also travel the skip connections)."""
        return {f"blocks.{i}.conv1.weight": f"blocks.{i}.conv2.weight" for i in range(len(self.blocks))}

    def forward(self, x: Tensor) -> Tensor:
        out = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))
