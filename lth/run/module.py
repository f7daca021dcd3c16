"""The LightningModule of every job: a stack of K >= 1 lotteries' networks (``lth.lottery.stacked``), the
loss by task, one optimizer and LR schedule over the stack.

``classification``: cross-entropy and accuracy; ``regression``: mean squared error, and accuracy is None
(reported as null, never faked). Evaluation runs the stack's K networks at once
(``lth.lottery.evaluation``).

The LR schedule is a function of the step *within* the level and the level's length, so every level
replays the schedule over its own steps; the PruningCallback calls ``start_level`` at each level start
(and clears the optimizer state). Lotteries with one optim config (a single job, replicates, a stack
that varies anything else) share one torch.optim optimizer and a ``LambdaLR``: its elementwise step
gives each slice exactly its single job's. A batched stack (``StackedNetworks``) whose lotteries differ
in ``optim.*`` has a stacked optimizer (``lth.lottery.stacked_optim``) with each lottery's own
hyperparameters (``optims[k]``), each lottery's learning rate set before every step to its base one
times its own schedule's factor (``set_lrs``): in place, so a captured step reads it too.

One Lightning batch is a run of ``steps_per_batch`` optimizer steps of the whole stack (set by the
PruningCallback before each batch, stopping at the next step where anything happens: evaluation, level
end, checkpoint), each on the next batch of the per-step stream that Lightning hands over
(``lth.data.memory.StepStream``). On one device in full precision (also one rank of replicates spread
over devices) the steps are plain PyTorch and Lightning's step counter is advanced once per run, so
Lightning's per-batch machinery is paid once per run instead of once per step; otherwise (DDP of one
lottery, mixed precision) every batch is one step through Lightning's ``manual_backward`` and optimizer.
What the plain steps skip of Lightning is written once, at ``advance_global_step``. On CUDA the plain
step is captured as a CUDA graph and replayed (``trainer.cuda_graphs``, ``lth.run.cuda_graphs``): the
batch is then drawn on the device (``lth.data.memory.DrawnOnDevice``) instead of taken from the stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.strategies import SingleDeviceStrategy
from torch import Tensor

from lth.lottery.evaluation import StackEvaluator
from lth.lottery.masks import MaskedNetwork
from lth.lottery.optim import build_optimizer, lr_factor, set_lr
from lth.lottery.stacked import Stack, StackedNetworks
from lth.lottery.stacked_optim import StackedOptimizer, build_stacked_optimizer
from lth.lottery.supermask import LearnedSupermask
from lth.run.cuda_graphs import DeviceLosses, StepGraph, fallback_line, make_capturable, plan_capture
from lth.run.replicas import ReplicaStrategy

log = logging.getLogger("lth")

LOSSES: dict[str, Callable[..., Tensor]] = {"classification": F.cross_entropy, "regression": F.mse_loss}
MAX_STEPS_PER_BATCH = 20  # Lightning's ~0.6 ms per batch shared by up to 20 steps


STEP_COUNTER = "fit_loop.epoch_loop.manual_optimization.optim_step_progress"


def _step_counter(trainer: pl.Trainer) -> Any:
    """Lightning's count of optimizer steps (``trainer.global_step``); a private API of pytorch-lightning 2.6."""
    counter = trainer
    for name in STEP_COUNTER.split("."):
        counter = getattr(counter, name)
    return counter


def check_step_counter(trainer: pl.Trainer) -> None:
    """Fail before training, naming the Lightning version, when the private step counter has moved."""
    try:
        _step_counter(trainer).increment_by  # noqa: B018
    except AttributeError:
        raise RuntimeError(
            f"lth: pytorch-lightning {pl.__version__} has no trainer.{STEP_COUNTER}.increment_by, which lth "
            "advances for its plain optimizer steps (lth.run.module.advance_global_step; written for "
            "pytorch-lightning 2.6): install pytorch-lightning 2.6.x"
        ) from None


def advance_global_step(trainer: pl.Trainer, steps: int) -> None:
    """Count ``steps`` optimizer steps that ran outside Lightning's optimizer wrapper.

    Those steps skip, besides the wrapper's step counting done here, Lightning's per-step hooks
    (``on_before_backward``, ``on_after_backward``, ``on_before_optimizer_step``, ``on_before_zero_grad``),
    its profiler's per-step sections and its gradient clipping (which lth refuses in the config);
    callbacks see one ``on_train_batch_start``/``end`` per run of steps.
    """
    _step_counter(trainer).increment_by(steps)


class LotteryModule(pl.LightningModule):
    def __init__(
        self,
        stack: Stack,
        task: str,
        optim: Mapping[str, Any],
        cuda_graphs: str = "auto",
        optims: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """``optim``: the optimizer config of every lottery, or ``optims[k]`` lottery ``k``'s (a batched
        stack only: a single network or networks side by side share one)."""
        super().__init__()
        self.stack = stack
        self.loss = LOSSES[task]
        self.evaluate_stack = StackEvaluator(stack, self.loss, task == "classification")
        self.optim = dict(optim)
        self.optims = [dict(o) for o in optims] if optims is not None else [self.optim] * len(stack)
        if len(self.optims) != len(stack):
            raise ValueError(f"lth: {len(self.optims)} optim configs for a stack of {len(stack)}")
        # lotteries that differ in optim.*: a stacked optimizer and a schedule each; else torch.optim (exact)
        self.per_lottery = any(o != self.optims[0] for o in self.optims)
        self.optim = self.optims[
            0
        ]  # the one config of lotteries that share it (the members', not the host's)
        if self.per_lottery and not isinstance(stack, StackedNetworks):
            raise ValueError(
                "lth: the lotteries of a stack of networks side by side (prune.learned) share their optim "
                "config; differing optim.* need a batched stack"
            )
        # each lottery's schedule, where they differ (else the LambdaLR's)
        self.factors = (
            [lr_factor(o["schedule"], o["warmup_steps"]) for o in self.optims] if self.per_lottery else []
        )
        self.level_start, self.level_steps = 0, 1  # the current level's global steps; see start_level
        self.steps_per_batch = 1  # optimizer steps of the next training batch (set by the PruningCallback)
        self.plain_steps = False  # set in on_fit_start: plain PyTorch steps, several per batch
        self.cuda_graphs = cuda_graphs  # trainer.cuda_graphs: auto, true or false
        self.captured = False  # set in on_fit_start: plain steps replayed from a CUDA graph
        self.drawn_steps = False  # the captured path's steps, run eagerly (a test of that path on CPU)
        self.step_graph: StepGraph | None = None  # built at the first training batch
        self.frozen_at_capture = 0  # how many of the stack's networks were frozen when the step was captured
        # Optimizer steps written out in training_step: Lightning's automatic optimization (closure,
        # extra hooks, one step per batch) costs ~8% of a LeNet step on CPU (`make bench`).
        self.automatic_optimization = False

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets _current_fx_name around every hook, ~46 times a step; nn.Module.__setattr__
        # (which looks for parameters, buffers and submodules first) makes that ~3% of a LeNet step.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def start_level(self, start: int, steps: int) -> None:
        """Run the LR schedule over the level of ``steps`` steps that starts after global step ``start``."""
        self.level_start, self.level_steps = start, steps
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            optimizer = scheduler.optimizer
            for group, base, factor in zip(
                optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True
            ):
                set_lr(group, base * factor(scheduler.last_epoch))
        if self.step_graph is not None:
            self.step_graph.reset()  # new masks, restarted weights, fresh optimizer state

    def on_fit_start(self) -> None:
        trainer = self.trainer
        self.plain_steps = (  # one process's own model: no DDP wrapper to step through
            isinstance(trainer.strategy, SingleDeviceStrategy | ReplicaStrategy)
            and trainer.precision == "32-true"
        )
        if self.plain_steps:
            check_step_counter(trainer)
        self.captured, why = plan_capture(
            self.cuda_graphs, trainer.strategy.root_device, self.capture_obstacles()
        )
        if why and trainer.is_global_zero:
            log.info(fallback_line(self.cuda_graphs, why))

    def capture_obstacles(self) -> list[str]:
        """What of this job a captured step cannot run, each with why."""
        obstacles = [] if self.plain_steps else ["DDP and mixed precision step through Lightning"]
        if any(isinstance(network, LearnedSupermask) for network in self.stack.networks):
            obstacles.append("prune.learned seeds each step's mask draw on the host")
        data = self.trainer.datamodule.capture_obstacle
        return obstacles + ([data] if data else [])

    @property
    def max_steps_per_batch(self) -> int:
        """Several steps per batch only with plain steps (under DDP each step needs its own forward call)."""
        return MAX_STEPS_PER_BATCH if self.plain_steps else 1

    @property
    def network(self) -> MaskedNetwork:
        """The network of a single job's lottery (the stack's first)."""
        return self.stack.networks[0]

    def training_step(self, batches: Iterator[tuple[Tensor, Tensor]], batch_idx: int) -> dict[str, Tensor]:
        """``steps_per_batch`` optimizer steps, each on the next batch of ``batches``; returns their
        losses, ``(steps, K)`` (each lottery averages its own between evaluations)."""
        if self.captured or self.drawn_steps:
            return self._replayed_steps()
        optimizer, scheduler = self.optimizers(), self.lr_schedulers()
        if self.plain_steps:
            optimizer = optimizer.optimizer  # the torch optimizer, without Lightning's step wrapper
        losses = []
        for i in range(self.steps_per_batch):
            x, y = next(batches)
            self.set_lrs(self.trainer.global_step + i)
            losses.append(self._optimizer_step(x.to(self.device), y.to(self.device), optimizer))
            if scheduler is not None:
                scheduler.step()
        if self.plain_steps:  # Lightning's wrapper, which counts trainer.global_step, was bypassed
            advance_global_step(self.trainer, len(losses))
        return {"losses": torch.stack(losses)}

    def _optimizer_step(self, x: Tensor, y: Tensor, optimizer: Any) -> Tensor:
        """One masked optimizer step of the stack on ``(x, y)``; its ``(K,)`` losses (detached, on the device)."""
        stack = self.stack
        losses = stack.losses(x, y, self.loss)
        optimizer.zero_grad(set_to_none=True)
        if self.plain_steps:
            stack.objective(losses).backward()
        else:
            self.manual_backward(stack.objective(losses))
        stack.mask_gradients()
        optimizer.step()
        stack.apply_masks()
        return losses.detach()

    def _replayed_steps(self) -> dict[str, Tensor]:
        """The batch's steps replayed from the captured step (its batches drawn on the device); the LR
        schedule fills the tensor learning rate between them."""
        trainer, scheduler = self.trainer, self.lr_schedulers()
        if self.step_graph is None:
            self.step_graph = self._build_step_graph()
        if (
            len(self.stack.held) != self.frozen_at_capture
        ):  # a network was frozen: its loss leaves the captured step
            self.step_graph.reset()
            self.frozen_at_capture = len(self.stack.held)
        first = trainer.datamodule.first_step + trainer.global_step  # the data stream's step
        for i in range(self.steps_per_batch):
            self.drawn.prepare(first + i)
            self.set_lrs(trainer.global_step + i)  # in place: the captured step reads them
            self.step_graph()
            if scheduler is not None:
                scheduler.step()
        advance_global_step(trainer, self.steps_per_batch)
        return {"losses": self.step_losses.take(self.steps_per_batch)}

    def _build_step_graph(self) -> StepGraph:
        """The plain step over static inputs (batches drawn on the device, losses kept there), captured on CUDA."""
        optimizer = self.optimizers().optimizer
        make_capturable(optimizer)
        self.drawn = self.trainer.datamodule.stack_batches_on_device()
        self.step_losses = DeviceLosses(MAX_STEPS_PER_BATCH, (len(self.stack),), self.device)

        def step() -> None:
            self.step_losses.record(self._optimizer_step(*self.drawn.draw(), optimizer))

        return StepGraph(step, capture=self.captured)

    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, float | None]:
        """Mean loss and accuracy (None for regression) of a single job's network on ``(x, y)``, in eval mode."""
        return dict(self.evaluate_stack([(x, y)])[0])

    def set_lrs(self, step: int) -> None:
        """A batched stack's learning rates for global step ``step``: lottery ``k``'s base one times its
        schedule's factor at that step of the level (levels are in lockstep). A LambdaLR sets a single one's."""
        if not self.per_lottery:
            return
        optimizer = self.optimizers().optimizer
        assert isinstance(optimizer, StackedOptimizer)
        t = step - self.level_start
        optimizer.scale_lrs([factor(t, self.level_steps) for factor in self.factors])

    def configure_optimizers(self) -> dict[str, Any]:
        if self.per_lottery:
            return {"optimizer": build_stacked_optimizer(self.stack.parameters(), self.optims)}
        optimizer = build_optimizer(self.stack.parameters(), self.optim)
        factor = lr_factor(self.optim["schedule"], self.optim["warmup_steps"])
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: factor(step - self.level_start, self.level_steps)
        )
        return {"optimizer": optimizer, "lr_scheduler": scheduler}  # stepped in training_step
