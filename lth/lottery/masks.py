"""MaskedNetwork: a plain model plus one bool mask buffer per prunable tensor.

The model itself is never modified: its state dict keeps plain names (``fc1.weight``), the masks sit
beside it under ``masks.<name with dots as __>``. Pruned weights are kept exactly zero by
``apply_masks`` (after every optimizer step) and ``mask_gradients`` (before it), so the forward pass
needs no multiply. Both multiply by float copies of the masks (``factors``, not saved: multiplying a
float tensor by a bool one is several times slower on CPU), refreshed whenever the masks change.
``hold_pruned_at`` holds pruned weights at given values (theta_0) instead of zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from lth.models.layers import WEIGHTED_MODULES

State = dict[str, Tensor]  # tensors by name: a model's state, or masks


def buffer_name(tensor_name: str) -> str:
    return tensor_name.replace(".", "__")


def prunable_weight_names(model: nn.Module) -> list[str]:
    """Names of the weights of every Linear/Conv layer, in registration order (biases never)."""
    return [
        f"{name}.weight" for name, module in model.named_modules() if isinstance(module, WEIGHTED_MODULES)
    ]


class MaskedNetwork(nn.Module):
    """Wraps ``model`` and owns the masks of the tensors named in ``prunable``."""

    def __init__(self, model: nn.Module, prunable: Iterable[str]) -> None:
        super().__init__()
        self.model = model
        self.masks = nn.Module()
        params = dict(model.named_parameters())
        self.factors = nn.Module()
        self.prunable: list[str] = list(prunable)
        for name in self.prunable:
            self.masks.register_buffer(buffer_name(name), torch.ones_like(params[name], dtype=torch.bool))
            self.factors.register_buffer(buffer_name(name), torch.ones_like(params[name]), persistent=False)
        self.register_load_state_dict_post_hook(lambda module, keys: module.refresh_factors())
        self.frozen: dict[str, Tensor] | None = None

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def mask(self, name: str) -> Tensor:
        return getattr(self.masks, buffer_name(name))

    def mask_dict(self) -> dict[str, Tensor]:
        """Copies of the current masks, keyed by tensor name."""
        return {name: self.mask(name).clone() for name in self.prunable}

    def weight(self, name: str) -> nn.Parameter:
        return self.model.get_parameter(name)

    def weights(self) -> dict[str, Tensor]:
        """Detached copies of the prunable weights."""
        return {name: self.weight(name).detach().clone() for name in self.prunable}

    def factor(self, name: str) -> Tensor:
        return getattr(self.factors, buffer_name(name))

    def _weights(self) -> list[Tensor]:
        return [self.weight(name) for name in self.prunable]

    def _factors(self) -> list[Tensor]:
        return [self.factor(name) for name in self.prunable]

    @torch.no_grad()
    def refresh_factors(self) -> None:
        """Copy the bool masks into their float factors (after any change of the masks)."""
        for name in self.prunable:
            self.factor(name).copy_(self.mask(name))

    @torch.no_grad()
    def set_masks(self, masks: Mapping[str, Tensor]) -> None:
        for name in self.prunable:
            self.mask(name).copy_(masks[name])
        self.refresh_factors()
        self.apply_masks()

    @torch.no_grad()
    def hold_pruned_at(self, values: Mapping[str, Tensor] | None) -> None:
        """From now on hold pruned weights at ``values`` (e.g. theta_0) instead of zero; None: zero."""
        self.frozen = None if values is None else {n: values[n].detach().clone() for n in self.prunable}
        self.apply_masks()

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Set every pruned weight in place to zero (or to its held value)."""
        weights = self._weights()
        if self.frozen is None and weights:
            torch._foreach_mul_(weights, self._factors())  # one fused call, not one per tensor
            return
        for name in self.prunable:
            weight = self.weight(name)
            weight.copy_(torch.where(self.mask(name), weight, self.frozen[name]))

    @contextmanager
    def holding(self, state: Mapping[str, Tensor]) -> Iterator[None]:
        """Temporarily load ``state`` with pruned weights zero (e.g. to evaluate a supermask)."""
        saved = self.model_state()
        with torch.no_grad():
            self.model.load_state_dict(state)
            for name in self.prunable:
                self.weight(name).mul_(self.factor(name))
        try:
            yield
        finally:
            with torch.no_grad():
                self.model.load_state_dict(saved)

    @torch.no_grad()
    def mask_gradients(self) -> None:
        """Zero the gradients of pruned weights, so optimizer state never moves them."""
        pairs = [
            (w.grad, f) for w, f in zip(self._weights(), self._factors(), strict=True) if w.grad is not None
        ]
        if pairs:
            grads, factors = zip(*pairs, strict=True)
            torch._foreach_mul_(list(grads), list(factors))

    def model_state(self) -> dict[str, Tensor]:
        """Detached copy of the whole model state (weights, biases, buffers), plain names."""
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    @torch.no_grad()
    def load_model_state(self, state: Mapping[str, Tensor]) -> None:
        """Load ``state`` into the model and re-apply the masks."""
        self.model.load_state_dict(state)
        self.apply_masks()

    def remaining(self) -> dict[str, float]:
        """Fraction of each prunable tensor still alive."""
        return {name: int(self.mask(name).sum()) / self.mask(name).numel() for name in self.prunable}

    def remaining_total(self) -> float:
        """Fraction of all prunable weights still alive."""
        alive = sum(int(self.mask(name).sum()) for name in self.prunable)
        total = sum(self.mask(name).numel() for name in self.prunable)
        return alive / total
