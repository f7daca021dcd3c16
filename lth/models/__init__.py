"""Dense architectures only: plain nn.Modules that know nothing of masks."""

from lth.models.initializers import INITIALIZERS, initialize
from lth.models.mlp import MLP, student

__all__ = ["INITIALIZERS", "MLP", "initialize", "student"]
