"""Repeated and removable units (Casper et al. 2019), per hidden layer, on held-out data.

A hidden layer's units are the outputs of one ``nn.ReLU`` module, paired in order with the model's
weighted layers (the k-th ReLU follows the k-th Linear/Conv, as in MLP and ConvNet; ResNet's ReLUs are
functional and it has none). A conv unit is a channel, its activation averaged over positions.

- repeated: units whose activations correlate (Pearson, over the first ``samples`` held-out examples)
  above ``threshold`` with another unit's; ``clusters`` counts the groups they form (connected
  components), ``dead`` the units constant on the data;
- removable: units whose zeroing alone costs less than ``removable_drop`` test accuracy (a fraction:
  0.005 = 0.5 points). All single-unit ablations of a layer run batched: the layer's output is copied
  once per unit of a chunk, that unit zeroed in its copy, and the rest of the network runs on the lot.

Recorded per layer: ``units``, ``dead``, ``repeated``, ``clusters``, ``removable``, ``mean_drop``,
``max_drop``, and ``acc``; tensors ``<layer>.corr`` (units x units) and ``<layer>.drop`` (per unit).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lth.analysis.level import Level, Result, accuracy, batched, evaluating, layer_name
from lth.analysis.specialisation import pearson

BUDGET = 1 << 24  # elements of one ablation batch's copied layer output


def hidden_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(weighted layer name, the ReLU after it)`` for each ``nn.ReLU`` module of ``model``."""
    weighted = [
        name
        for name, m in model.named_modules()
        if isinstance(getattr(m, "weight", None), Tensor) and m.weight.dim() >= 2
    ]
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    return list(zip(weighted, relus, strict=False))


def activations(model: nn.Module, relu: nn.Module, x: Tensor) -> Tensor:
    """``(samples, units)`` outputs of ``relu`` (conv channels averaged over positions)."""
    out: list[Tensor] = []
    handle = relu.register_forward_hook(lambda _m, _i, output: out.append(output))
    try:
        batched(model, x)
    finally:
        handle.remove()
    acts = torch.cat(out)
    return acts.flatten(2).mean(-1) if acts.dim() > 2 else acts


def ablated_accuracies(model: nn.Module, relu: nn.Module, x: Tensor, y: Tensor, units: int) -> Tensor:
    """Accuracy with each unit of ``relu``'s output zeroed alone: ``(units,)``, in batched passes."""
    sample: list[Tensor] = []
    handle = relu.register_forward_hook(lambda _m, _i, output: sample.append(output))
    try:
        model(x[:1])
    finally:
        handle.remove()
    chunk = max(1, BUDGET // (len(x) * sample[0].numel()))
    result = []
    for group in torch.arange(units, device=x.device).split(chunk):

        def zero_each(_m: nn.Module, _i: Any, output: Tensor, group: Tensor = group) -> Tensor:
            copies = output.unsqueeze(0).repeat(len(group), *[1] * output.dim())
            copies[torch.arange(len(group), device=output.device), :, group] = 0
            return copies.flatten(0, 1)

        handle = relu.register_forward_hook(zero_each)
        try:
            logits = model(x)
        finally:
            handle.remove()
        result.append(accuracy(logits.view(len(group), len(x), -1), y))
    return torch.cat(result)


def units(level: Level, threshold: float = 0.9, removable_drop: float = 0.005, samples: int = 2000) -> Result:
    """``{layer: {units, dead, repeated, clusters, removable, mean_drop, max_drop, acc}}``."""
    model, (x, y) = level.network()
    x, y = x[:samples], y[:samples]
    from scipy.sparse.csgraph import connected_components  # here: checking a config need not load scipy

    summary: dict[str, Any] = {}
    tensors: dict[str, Tensor] = {}
    with evaluating(model):
        base = float(accuracy(batched(model, x), y))
        for name, relu in hidden_layers(model):
            layer = layer_name(name)
            acts = activations(model, relu, x).double().cpu()
            corr = pearson(acts, acts).fill_diagonal_(0.0)
            twins = corr > threshold
            sizes = torch.bincount(torch.from_numpy(connected_components(twins.numpy(), directed=False)[1]))
            drop = base - ablated_accuracies(model, relu, x, y, acts.shape[1]).cpu()
            summary[layer] = {
                "units": acts.shape[1],
                "dead": int((acts.std(0) == 0).sum()),
                "repeated": int(twins.any(1).sum()),
                "clusters": int((sizes > 1).sum()),
                "removable": int((drop < removable_drop).sum()),
                "mean_drop": float(drop.mean()),
                "max_drop": float(drop.max()),
                "acc": base,
            }
            tensors |= {f"{layer}.corr": corr.float(), f"{layer}.drop": drop.float()}
    return summary, tensors
