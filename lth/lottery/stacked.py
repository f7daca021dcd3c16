"""Stacks: the networks of K >= 1 lotteries, trained by one optimizer step (the engine's step kernels).

A stack is an ``nn.Module`` whose ``networks[k]`` is lottery ``k``'s ``MaskedNetwork``; one optimizer
over ``stack.parameters()`` steps them all. Three kernels:

- ``SingleNetwork``: K=1, the plain module (a single job; its results are those of the network alone).
- ``StackedNetworks``: K draws of one architecture with every parameter, buffer and mask stacked along a
  leading replicate axis ``(K, ...)``. Replicate ``k``'s ``MaskedNetwork`` keeps its own model whose
  parameters, buffers, masks and mask factors are *views* of slice ``k`` of the stacked tensors, so every
  ``Lottery`` operation (pruning, restarts, ``load_model_state``, evaluation, theta_0 snapshots) works on
  one replicate unchanged and writes through to the stack. The step runs all replicates at once on a
  ``(K, B, ...)`` batch: a chain of ``Flatten``, ``Linear`` and ``ReLU`` (the MLPs) as batched matrix
  products (``StackedChain``: each slice as ``F.linear`` computes it, so on the CPU a replicate's
  gradients and weights equal its single job's to the bit), any other model as ``vmap`` over ``functional_call`` (BatchNorm's running
  statistics and batch counts, passed as batched buffers, are updated in place in the stacked tensors).
- ``ListedNetworks``: K networks side by side, one forward each (a network ``vmap`` cannot run, e.g. the
  learned supermask, which draws its masks on the host). Each replicate runs exactly its single job's
  kernels.

The loss is the sum of the replicates' mean losses, so each replicate's gradient is its own; SGD, Adam
and weight decay are elementwise, so one optimizer over all tensors steps each replicate as alone. A
finished or diverged replicate is frozen: ``torch.where`` on the ``alive`` flags takes it out of the
loss (its gradients are zero, with no value read on the host) and its weights and buffers are put back
after every step (momentum, weight decay and BatchNorm statistics would move them).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from lth.lottery.masks import MaskedNetwork, buffer_name

Loss = Callable[..., Tensor]  # (output, target, reduction=...) -> loss, as torch.nn.functional's
CHAIN = (nn.Flatten, nn.Linear, nn.ReLU)  # the layers of a model the batched-matmul forward runs


def is_linear_chain(model: nn.Module) -> bool:
    """Whether ``model`` is a Sequential of Linear and ReLU layers, flattened first (at most)."""
    layers = list(model.children())
    return (
        isinstance(model, nn.Sequential)
        and all(type(layer) in CHAIN for layer in layers)
        and all(layer.start_dim == 1 for layer in layers if isinstance(layer, nn.Flatten))
        and not any(isinstance(layer, nn.Flatten) for layer in layers[1:])
    )


class Stack(nn.Module):
    """The networks of K lotteries and the step that trains them together."""

    networks: list[MaskedNetwork]

    def __init__(self, size: int) -> None:
        super().__init__()
        self.register_buffer("alive", torch.ones(size, dtype=torch.bool), persistent=False)
        self.held: dict[int, dict[str, Tensor]] = {}  # the weights and buffers each frozen one is held at

    def __len__(self) -> int:
        return len(self.alive)

    def losses(self, x: Tensor, y: Tensor, loss: Loss) -> Tensor:
        """Each replicate's mean ``loss`` on its own batch, ``(K,)``."""
        raise NotImplementedError

    def outputs(self, x: Tensor) -> Tensor:
        """Each replicate's outputs on its inputs ``x`` (``(K, N, ...)``), ``(K, N, ...)``; eval mode is the caller's."""
        raise NotImplementedError

    def objective(self, losses: Tensor) -> Tensor:
        """What the step differentiates: the live replicates' losses, summed."""
        return torch.where(self.alive, losses, torch.zeros_like(losses)).sum()

    def replicate_tensors(self, k: int) -> dict[str, Tensor]:
        """Replicate ``k``'s weights and buffers, as tensors that write through to the stack."""
        return dict(self.networks[k].state_dict())

    @torch.no_grad()
    def mask_gradients(self) -> None:
        for network in self.networks:
            network.mask_gradients()

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Pruned weights to zero (or their held values), frozen replicates back to where they stopped."""
        for network in self.networks:
            network.apply_masks()
        self._hold_frozen()

    def step(self, x: Tensor, y: Tensor, loss: Loss, optimizer: torch.optim.Optimizer) -> Tensor:
        """One optimizer step of every live replicate on its batch; returns the ``(K,)`` losses (detached)."""
        losses = self.losses(x, y, loss)
        optimizer.zero_grad(set_to_none=True)
        self.objective(losses).backward()
        self.mask_gradients()
        optimizer.step()
        self.apply_masks()
        return losses.detach()

    def freeze(self, k: int) -> None:
        """Replicate ``k`` is done (finished or diverged): it no longer trains, its weights and buffers
        stay as they are now (on resume: as restored)."""
        self.alive[k] = False
        self.held[k] = {name: t.detach().clone() for name, t in self.replicate_tensors(k).items()}

    @torch.no_grad()
    def _hold_frozen(self) -> None:
        for k, held in self.held.items():
            tensors = self.replicate_tensors(k)
            for name, value in held.items():
                tensors[name].copy_(value)


class SingleNetwork(Stack):
    """K=1: one lottery's network, stepped as a plain module."""

    def __init__(self, network: MaskedNetwork) -> None:
        super().__init__(1)
        self.network = network
        self.networks = [network]

    def losses(self, x: Tensor, y: Tensor, loss: Loss) -> Tensor:
        return loss(self.network(x), y).view(1)

    def objective(self, losses: Tensor) -> Tensor:
        return losses.sum()  # a single lottery trains until it is done: never frozen

    def outputs(self, x: Tensor) -> Tensor:
        return self.network(x[0]).unsqueeze(0)

    @torch.no_grad()
    def apply_masks(self) -> None:
        self.network.apply_masks()


class ListedNetworks(Stack):
    """K networks of any kind, one forward each: every replicate runs its single job's kernels."""

    def __init__(self, networks: Sequence[MaskedNetwork]) -> None:
        super().__init__(len(networks))
        self.listed = nn.ModuleList(networks)
        self.networks = list(networks)

    def losses(self, x: Tensor, y: Tensor, loss: Loss) -> Tensor:
        return torch.stack([loss(network(x[k]), y[k]) for k, network in enumerate(self.networks)])

    def outputs(self, x: Tensor) -> Tensor:
        return torch.stack([network(x[k]) for k, network in enumerate(self.networks)])


class StackedChain(torch.autograd.Function):
    """A chain of Linear and ReLU layers on K replicates at once, ``(K, N, in) -> (K, N, out)``, as one
    autograd node. ``ops`` names each layer (``"linear"`` or ``"relu"``); ``layers`` holds each Linear's
    weight ``(K, out, in)`` and bias ``(K, out)`` or None. Each slice is computed as ``F.linear`` and
    ``relu`` compute it alone (forward ``h @ W^T + b``; backward ``g @ W``, ``g^T @ h``, ``g.sum`` and
    ReLU's ``threshold_backward``), so on the CPU at one thread each replicate's forward and gradients
    equal its single network's to the bit. ReLUs act in place on the tensors the chain made (one node
    and fewer fresh tensors a step: the step is bound by overhead and memory traffic, not arithmetic)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, ops: tuple[str, ...], *layers: Tensor | None) -> Tensor:
        h, made, saved, weights = x, False, [], iter(layers)
        for op in ops:
            saved.append(h)  # a Linear's input, or (after it) a ReLU's output
            if op == "relu":
                h = h.relu_() if made else h.relu()
                saved[-1], made = h, True
            else:
                weight, bias = next(weights), next(weights)
                assert weight is not None
                if bias is None:
                    h = torch.bmm(h, weight.transpose(1, 2))
                else:
                    h = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
                made = True
        ctx.ops = ops
        ctx.save_for_backward(*saved, *layers)
        return h

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        ops = ctx.ops
        saved, layers = ctx.saved_tensors[: len(ops)], ctx.saved_tensors[len(ops) :]
        grads: list[Tensor | None] = [None] * len(layers)
        made = False  # whether g is a tensor this backward made (then a ReLU's backward acts in place)
        linear = len(layers) // 2
        for i in reversed(range(len(ops))):
            if ops[i] == "relu":
                if i == 0 and not ctx.needs_input_grad[0]:
                    break
                if made:
                    torch.ops.aten.threshold_backward.grad_input(g, saved[i], 0, grad_input=g)
                else:
                    g, made = torch.ops.aten.threshold_backward(g, saved[i], 0), True
                continue
            linear -= 1
            weight, bias = layers[2 * linear], layers[2 * linear + 1]
            if ctx.needs_input_grad[2 + 2 * linear]:
                grads[2 * linear] = torch.bmm(g.transpose(1, 2), saved[i])
            if bias is not None and ctx.needs_input_grad[3 + 2 * linear]:
                grads[2 * linear + 1] = g.sum(1)
            if i > 0 or ctx.needs_input_grad[0]:
                g, made = torch.bmm(g, weight), True
        return (g if ctx.needs_input_grad[0] else None, None, *grads)


def _rebind(model: nn.Module, name: str, tensor: Tensor, parameter: bool) -> None:
    """Replace the parameter or buffer ``name`` of ``model`` by ``tensor`` (a view of the stack)."""
    owner, _, leaf = name.rpartition(".")
    module = model.get_submodule(owner)
    if parameter:
        setattr(module, leaf, nn.Parameter(tensor))
    else:
        module.register_buffer(leaf, tensor, persistent=leaf not in module._non_persistent_buffers_set)


class StackedNetworks(Stack):
    """``models`` (one architecture, K draws) stacked; ``networks[k]`` is replicate k's MaskedNetwork."""

    def __init__(self, models: Sequence[nn.Module], prunable: Sequence[str]) -> None:
        super().__init__(len(models))
        params, buffers = stack_module_state(list(models))
        self.names = {kind: list(d) for kind, d in (("params", params), ("buffers", buffers))}
        self.prunable = list(prunable)
        self.stacked_params = nn.ParameterDict(
            {buffer_name(n): nn.Parameter(p.detach()) for n, p in params.items()}
        )
        self.stacked_buffers = nn.Module()
        for name, buffer in buffers.items():
            self.stacked_buffers.register_buffer(buffer_name(name), buffer)
        # the architecture functional_call runs (on meta tensors: not a submodule, never moved or saved)
        object.__setattr__(self, "base", copy.deepcopy(models[0]).to("meta"))
        self.chain = is_linear_chain(self.base)
        self.networks = [MaskedNetwork(model, prunable) for model in models]  # views: not submodules
        self.stacked_masks, self.stacked_factors = nn.Module(), nn.Module()
        for n in self.prunable:
            self.stacked_masks.register_buffer(
                buffer_name(n), torch.stack([net.mask(n) for net in self.networks])
            )
            self.stacked_factors.register_buffer(
                buffer_name(n), torch.stack([net.factor(n) for net in self.networks]), persistent=False
            )
        self.register_load_state_dict_post_hook(lambda module, keys: module._refresh_factors())
        self._bind_views()

    def _collect(self) -> None:
        """``params``, ``buffers``, ``masks``, ``factors``: the stacked tensors by their models' names
        (collected anew after a move, which replaces the buffers; loading a state dict copies in place)."""
        self.params: dict[str, nn.Parameter] = {
            n: self.stacked_params[buffer_name(n)] for n in self.names["params"]
        }
        self.buffers: dict[str, Tensor] = {
            n: getattr(self.stacked_buffers, buffer_name(n)) for n in self.names["buffers"]
        }
        self.masks: dict[str, Tensor] = {
            n: getattr(self.stacked_masks, buffer_name(n)) for n in self.prunable
        }
        self.factors: dict[str, Tensor] = {
            n: getattr(self.stacked_factors, buffer_name(n)) for n in self.prunable
        }

    def _bind_views(self) -> None:
        """Make every replicate's parameters, buffers, masks and factors views of its stacked slice."""
        self._collect()
        params, buffers, masks, factors = self.params, self.buffers, self.masks, self.factors
        for k, network in enumerate(self.networks):
            for name, stacked in params.items():
                _rebind(network.model, name, stacked.data[k], parameter=True)
            for name, stacked in buffers.items():
                _rebind(network.model, name, stacked[k], parameter=False)
            for name in self.prunable:
                network.masks.register_buffer(buffer_name(name), masks[name][k])
                network.factors.register_buffer(buffer_name(name), factors[name][k], persistent=False)

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> StackedNetworks:  # type: ignore[override]
        super()._apply(fn, recurse)  # .to(device) and friends: the views follow
        self._bind_views()
        return self

    @torch.no_grad()
    def _refresh_factors(self) -> None:
        for name, factor in self.factors.items():
            factor.copy_(self.masks[name])

    def replicate_tensors(self, k: int) -> dict[str, Tensor]:
        return {name: t.detach()[k] for name, t in (self.params | self.buffers).items()}

    def losses(self, x: Tensor, y: Tensor, loss: Loss) -> Tensor:
        """``x`` is ``(K, B, ...)``; the result ``(K,)``."""
        if not self.chain:
            return self.vmapped_losses(x, y, loss)
        out = self._chain(x)  # a batch mean's gradient is 1/B whatever order its value is summed in:
        return loss(out.flatten(0, 1), y.flatten(0, 1), reduction="none").view(len(self), -1).mean(1)

    def _chain(self, x: Tensor) -> Tensor:
        """The linear chain on ``(K, N, ...)`` inputs by batched matrix products, ``(K, N, out)``."""
        params, ops, layers = self.params, [], []
        for name, layer in self.base.named_children():
            if isinstance(layer, nn.Linear):
                ops.append("linear")
                layers += [params[f"{name}.weight"], params.get(f"{name}.bias")]
            elif isinstance(layer, nn.ReLU):
                ops.append("relu")
        return StackedChain.apply(x.flatten(2), tuple(ops), *layers)

    def vmapped_losses(self, x: Tensor, y: Tensor, loss: Loss) -> Tensor:
        """``losses`` by ``vmap`` over ``functional_call`` (any architecture; BatchNorm buffers updated in place)."""

        self.base.train(self.training)

        def one(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
            return loss(functional_call(self.base, (params, buffers), (x,)), y)

        return vmap(one)(dict(self.params), self.buffers, x, y)

    def outputs(self, x: Tensor) -> Tensor:
        if self.chain:
            return self._chain(x)
        self.base.train(self.training)  # BatchNorm: running statistics in eval mode

        def one(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
            return functional_call(self.base, (params, buffers), (x,))

        return vmap(one)(dict(self.params), self.buffers, x)

    @torch.no_grad()
    def mask_gradients(self) -> None:
        params, factors = self.params, self.factors
        grads = [params[n].grad for n in self.prunable]
        torch._foreach_mul_(grads, [factors[n] for n in self.prunable])  # type: ignore[arg-type]

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Pruned weights to zero in one fused call (per replicate where one holds them at theta_0)."""
        if any(network.frozen is not None for network in self.networks):
            for network in self.networks:
                network.apply_masks()
        else:
            params, factors = self.params, self.factors
            torch._foreach_mul_([params[n] for n in self.prunable], [factors[n] for n in self.prunable])
        self._hold_frozen()
