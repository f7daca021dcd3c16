"""PruningCallback: drives the job's K >= 1 lotteries (a ``LotteryGroup``) from Lightning's hooks, in one
``fit`` over all levels.

Before each training batch it sets how many optimizer steps the batch runs (up to the next step where
a lottery or the checkpoint acts); after it, it hands each lottery its losses, writes and logs each
one's evaluations and finished levels (``LotteryOutputs``), and starts the next level with a fresh
optimizer state and LR schedule. Every lottery's state is part of every Lightning checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from lth.lottery.group import LotteryGroup
from lth.run.outputs import LotteryOutputs
from lth.run.threads import apply_threads


class TrainerRanks:
    """The DDP ranks of a Trainer: each computes the masks itself; they must equal rank zero's."""

    def __init__(self, trainer: pl.Trainer) -> None:
        self.trainer = trainer

    def mean(self, value: Tensor) -> float:
        return self.trainer.strategy.reduce(value, reduce_op="mean").item()

    def agree(self, masks: Mapping[str, Tensor]) -> None:
        trainer = self.trainer
        if trainer.world_size == 1:
            return
        reference = trainer.strategy.broadcast({k: v.cpu() for k, v in masks.items()}, src=0)
        differing = [k for k, v in masks.items() if not torch.equal(v.cpu(), reference[k])]
        if differing:
            raise RuntimeError(
                f"lth: rank {trainer.global_rank} computed other masks than rank 0 for {differing}"
            )


class Threads(pl.Callback):
    """Applies the job's thread count in every rank after Lightning's DDP launcher set its own."""

    def __init__(self, n: int) -> None:
        self.n = n

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        apply_threads(self.n)


class PruningCallback(pl.Callback):
    """Drives the job's ``LotteryGroup`` (K >= 1 lotteries, one stack) and writes each lottery's outputs."""

    def __init__(
        self, group: LotteryGroup, outputs: list[LotteryOutputs], checkpoint_every: int | None, ranks: bool
    ) -> None:
        self.group, self.outputs, self.checkpoint_every = group, outputs, checkpoint_every
        self.ranks = ranks  # the DDP ranks train one lottery together (else each process its own)
        self.checkpoint_due = False  # read by RotatingCheckpoint after each training batch

    def state_dict(self) -> dict[str, Any]:
        return self.group.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.group.load_state_dict(state_dict)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        fresh = [not lottery.state.records and not lottery.state.evals for lottery in self.group.lotteries]
        self.group.start(TrainerRanks(trainer) if self.ranks else None)
        for out, first in zip(self.outputs, fresh, strict=True):
            out.start_points()
            if first and not out.lottery.finished:
                out.ticket()
        if not self.group.finished:
            self._start_level(trainer, pl_module)

    def _start_level(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state = self.group.state()
        trainer.datamodule.start_level(state.level)
        pl_module.start_level(state.level_start, state.level_steps)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *_: Any) -> None:
        pl_module.steps_per_batch = self.steps_until_event(trainer.global_step, pl_module.max_steps_per_batch)

    def steps_until_event(self, step: int, most: int) -> int:
        """Steps from ``step`` to any lottery's next event or the next checkpoint (at most ``most``)."""
        until = self.group.steps_until_event(step, most)
        every = self.checkpoint_every
        return min(until, every - step % every) if every else until

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, *_: Any
    ) -> None:
        group, step = self.group, trainer.global_step
        for k, outcome in group.after_step(step, outputs["losses"]):
            self.outputs[k].outcome(outcome, step)
        every = self.checkpoint_every
        self.checkpoint_due = group.recorded or bool(every and step % every == 0)
        if group.finished:
            trainer.should_stop = True
            return
        if not group.restarting:
            return
        group.next_level(step)
        for optimizer in trainer.optimizers:
            optimizer.state.clear()
        self._start_level(trainer, pl_module)
        for out in self.outputs:
            if not out.lottery.finished and out.lottery.state.level_start == step:
                out.ticket()
