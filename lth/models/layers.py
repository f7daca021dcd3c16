"""The layer kinds that hold a weight matrix or filter bank: what initialisers draw and pruning acts on."""

from __future__ import annotations

from torch import nn

CONV_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
WEIGHTED_MODULES = (nn.Linear, *CONV_MODULES)
