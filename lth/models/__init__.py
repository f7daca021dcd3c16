"""Dense architectures only: plain nn.Modules that know nothing of masks.

Every model takes ``input_shape`` and ``num_classes`` first; its output layer is its last Linear/Conv.
"""

from lth.models.conv import ConvNet
from lth.models.initializers import INITIALIZERS, initialize
from lth.models.mlp import MLP, student
from lth.models.resnet import ResNet
from lth.models.shapes import IncompatibleInput
from lth.models.teacher import make_teacher

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
