"""Which rate each prunable tensor is pruned at, and which tensor reads the units structured pruning removes."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from lth.errors import ConfigError
from lth.lottery.masks import prunable_weight_names
from lth.models.layers import CONV_MODULES


def tensor_rates(prune: Mapping[str, Any], model: nn.Module, prunable: list[str]) -> dict[str, float]:
    """Each prunable tensor's rate, from the ``prune`` config: its entry in ``rates`` if it has one, else
    the output layer (last Linear/Conv) at ``output_rate`` (None = half of ``rate``), the other conv layers
    at ``conv_rate`` (None = ``rate``), the rest at ``rate``."""
    output = prunable_weight_names(model)[-1]
    output_rate = prune["output_rate"] if prune.get("output_rate") is not None else prune["rate"] / 2
    conv_rate = prune["conv_rate"] if prune.get("conv_rate") is not None else prune["rate"]
    overrides = prune.get("rates") or {}

    def rate(name: str) -> float:
        if name in overrides:
            return overrides[name]
        if name == output:
            return output_rate
        is_conv = isinstance(model.get_submodule(name.rpartition(".")[0]), CONV_MODULES)
        return conv_rate if is_conv else prune["rate"]

    return {name: rate(name) for name in prunable}


def reads_units(unit: Tensor, reader: Tensor) -> bool:
    """Whether ``reader``'s input columns can be ``unit``'s outputs: one per unit, or (a Linear after a
    Conv) the same number per channel of the flattened ``(C, H, W)`` output."""
    columns, units = reader.shape[1], unit.shape[0]
    return columns == units or (unit.dim() > 2 and reader.dim() == 2 and columns % units == 0)


def unit_readers(structure: str, model: nn.Module, prunable: list[str]) -> dict[str, str]:
    """The tensors structured pruning removes units from, each with the prunable tensor reading them.

    Units are hidden Linear rows (``neuron``) or Conv filters (``filter``), never the output layer's
    (the classes). A model with skip connections declares the pairs (``model.unit_readers()``; ResNet:
    the first conv of each block, read by the second, as Li et al. prune ResNets); any other model is
    taken as a chain, each tensor read by the next Linear/Conv. A unit tensor without a prunable reader
    of a matching width is a ConfigError.
    """
    weights = prunable_weight_names(model)
    linear = structure == "neuron"
    kind = [n for n in prunable if n != weights[-1] and (model.get_parameter(n).dim() == 2) == linear]
    declared = getattr(model, "unit_readers", None)
    pairs = declared() if declared else dict(itertools.pairwise(weights))
    readers = {}
    for name in kind:
        reader = pairs.get(name)
        if reader is None and declared:
            continue  # a unit tensor whose outputs also travel a skip connection
        if reader not in prunable or not reads_units(model.get_parameter(name), model.get_parameter(reader)):
            raise ConfigError(
                f"lth: invalid config: prune.structure={structure} cannot prune the units of {name}: the "
                f"next layer's weight {reader} is not prunable (prune.exclude) or does not read them"
            )
        readers[name] = reader
    return readers
