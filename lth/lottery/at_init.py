"""Pruning at initialisation: saliency scores at theta_0, before any training (higher = keep).

- ``snip`` (Lee et al. 2019): ``|theta * dL/dtheta|`` on a few training batches.
- ``grasp`` (Wang et al. 2020): ``theta * (H g)`` with logits divided by a temperature of 200;
  GraSP removes the largest ``-theta * (H g)``, i.e. keeps the largest ``theta * (H g)``.
- ``synflow`` (Tanaka et al. 2020): data-free; every parameter replaced by ``|theta|`` (float64,
  eval mode), ``R`` = sum of the outputs for an all-ones input, score ``|theta * dR/dtheta|``.

Scores are computed on a masked copy of the model (the model itself is never touched); ``prune_at_init``
prunes to the target in one event, or for SynFlow in ``iterations`` events, the remaining fraction
after event ``k`` of ``n`` being ``(1 - rate) ** (k / n)`` of the tensor (group) size.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lth.lottery import names
from lth.lottery.pruning import prune_count, prune_masks

Saliency = Callable[[nn.Module, Mapping[str, Tensor], Tensor, Tensor], dict[str, Tensor]]
GRASP_TEMPERATURE = 200.0


def _masked_copy(model: nn.Module, masks: Mapping[str, Tensor]) -> tuple[nn.Module, list[Tensor]]:
    """A copy of ``model`` with pruned weights zeroed, and its prunable weights in ``masks`` order."""
    net = copy.deepcopy(model)
    weights = [net.get_parameter(name) for name in masks]
    with torch.no_grad():
        for weight, mask in zip(weights, masks.values(), strict=True):
            weight.mul_(mask)
    return net, weights


def snip(model: nn.Module, masks: Mapping[str, Tensor], x: Tensor, y: Tensor) -> dict[str, Tensor]:
    net, weights = _masked_copy(model, masks)
    grads = torch.autograd.grad(F.cross_entropy(net(x), y), weights)
    return {n: (w * g).abs().detach() for n, w, g in zip(masks, weights, grads, strict=True)}


def grasp(model: nn.Module, masks: Mapping[str, Tensor], x: Tensor, y: Tensor) -> dict[str, Tensor]:
    net, weights = _masked_copy(model, masks)
    grads = torch.autograd.grad(F.cross_entropy(net(x) / GRASP_TEMPERATURE, y), weights, create_graph=True)
    z = sum((g * g.detach()).sum() for g in grads)  # d z / d theta = H g
    hessian_grad = torch.autograd.grad(z, weights)
    return {n: (w * hg).detach() for n, w, hg in zip(masks, weights, hessian_grad, strict=True)}


def synflow(model: nn.Module, masks: Mapping[str, Tensor], x: Tensor, y: Tensor) -> dict[str, Tensor]:
    net, weights = _masked_copy(model, masks)
    net.double().eval()
    with torch.no_grad():
        for param in net.parameters():
            param.abs_()
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    grads = torch.autograd.grad(net(ones).sum(), weights)
    return {n: (w * g).abs().float().detach() for n, w, g in zip(masks, weights, grads, strict=True)}


SALIENCIES: dict[str, Saliency] = {"snip": snip, "grasp": grasp, "synflow": synflow}
assert tuple(SALIENCIES) == names.SALIENCIES, "lth.lottery.names.SALIENCIES must name SALIENCIES' keys"


def removed_after(rate: float, event: int, events: int) -> float:
    """Fraction of a group removed after ``event`` of ``events`` (exactly ``rate`` after the last)."""
    return rate if event == events else 1 - (1 - rate) ** (event / events)


def prune_at_init(
    method: str,
    model: nn.Module,
    masks: Mapping[str, Tensor],
    data: tuple[Tensor, Tensor],
    rates: Mapping[str, float],
    scope: str,
    base_rate: float,
    seeds: Callable[[int], int],
    iterations: int = 1,
) -> dict[str, Tensor]:
    """Masks pruned from dense ``masks`` to ``rate`` of each group by ``method``'s saliency at theta_0.

    ``seeds(k)`` is the tie-breaking seed of event ``k``; only SynFlow takes ``iterations`` events.
    """
    events = iterations if method == "synflow" else 1
    new = dict(masks)
    for event in range(1, events + 1):

        def count(alive: int, size: int, rate: float, event: int = event) -> int:
            return alive - (size - prune_count(size, removed_after(rate, event, events)))

        scores = SALIENCIES[method](model, new, *data)
        new = prune_masks(scores, new, rates, scope, base_rate, seeds(event), count)
    return new
