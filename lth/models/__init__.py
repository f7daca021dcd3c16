"""Dense architectures only: plain nn.Modules that know nothing of masks.

Every model takes ``input_shape`` and ``num_classes`` first; its output layer is its last Linear/Conv.
The package's names are imported on first use, so ``lth.models.names`` (what the config allows) loads
no torch.

Science, the floor beneath lottery: it imports only the ground floor of lth (no Lightning, Hydra or W&B).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lth.exports import lazy_exports

if TYPE_CHECKING:
    from lth.models.conv import ConvNet
    from lth.models.initializers import INITIALIZERS, initialize
    from lth.models.mlp import MLP, student
    from lth.models.resnet import ResNet
    from lth.models.shapes import IncompatibleInput
    from lth.models.teacher import make_teacher

_HOMES = {  # where each name lives (Hydra's ``_target_: lth.models.MLP`` finds it here too)
    "INITIALIZERS": "initializers",
    "MLP": "mlp",
    "ConvNet": "conv",
    "IncompatibleInput": "shapes",
    "ResNet": "resnet",
    "initialize": "initializers",
    "make_teacher": "teacher",
    "student": "mlp",
}

__all__ = [
    "INITIALIZERS",
    "MLP",
    "ConvNet",
    "IncompatibleInput",
    "ResNet",
    "initialize",
    "make_teacher",
    "student",
]
__getattr__ = lazy_exports(__name__, _HOMES)
