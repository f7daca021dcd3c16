"""Weight initialisers, applied to every Linear/Conv layer of a model.

- ``default``: PyTorch's own ``reset_parameters`` (Kaiming-uniform weights, uniform biases).
- ``glorot_normal``: Gaussian Glorot weights, zero biases (Frankle & Carbin's LeNet-300-100, Conv-2/4/6).
- ``kaiming_normal``: Gaussian He (fan-in) weights, zero biases (OpenLTH's VGG and ResNet).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from lth.models import names
from lth.models.layers import WEIGHTED_MODULES


def _glorot_normal(module: nn.Module) -> None:
    nn.init.xavier_normal_(module.weight)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def _kaiming_normal(module: nn.Module) -> None:
    nn.init.kaiming_normal_(module.weight)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


INITIALIZERS: dict[str, Callable[[nn.Module], None]] = {
    "default": lambda module: module.reset_parameters(),
    "glorot_normal": _glorot_normal,
    "kaiming_normal": _kaiming_normal,
}
assert tuple(INITIALIZERS) == names.INITIALIZERS, "lth.models.names.INITIALIZERS must name INITIALIZERS' keys"


def initialize(model: nn.Module, scheme: str) -> nn.Module:
    """Re-draw every Linear/Conv layer of ``model`` with ``scheme`` from torch's global RNG."""
    for module in model.modules():
        if isinstance(module, WEIGHTED_MODULES):
            INITIALIZERS[scheme](module)
    return model
