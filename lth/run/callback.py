"""PruningCallback: drives a ``Lottery`` from Lightning's hooks, in one ``fit`` over all levels.

Before each training batch it sets how many optimizer steps the batch runs (up to the next step where
the lottery or the checkpoint acts); after it, it hands the losses to the lottery, logs its
evaluations, writes a finished level's files (and, once they exist, ``init.pt`` and ``rewind.pt``), and starts the next level with a fresh optimizer state
and LR schedule. The lottery's state is part of every Lightning checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from lth.lottery import Lottery
from lth.run import loggers
from lth.run.job_dir import RunDirectory


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


class PruningCallback(pl.Callback):
    def __init__(
        self, lottery: Lottery, checkpoint_every: int | None, run_dir: RunDirectory | None, save_weights: bool
    ) -> None:
        self.lottery, self.checkpoint_every = lottery, checkpoint_every
        self.run_dir, self.save_weights = run_dir, save_weights
        self.checkpoint_due = False  # read by RotatingCheckpoint after each training batch

    def state_dict(self) -> dict[str, Any]:
        return self.lottery.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.lottery.load_state_dict(state_dict)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        first = not self.lottery.state.records and not self.lottery.state.evals
        self.lottery.start(TrainerRanks(trainer))
        self._save_start_points(trainer)
        self._start_level(trainer, pl_module, log_ticket=first)

    def _save_start_points(self, trainer: pl.Trainer) -> None:
        """theta_0 and the rewind point, each once it exists (the rewind point: during level 0)."""
        state = self.lottery.state
        if trainer.is_global_zero and self.run_dir is not None and self.save_weights:
            self.run_dir.save_start_points(state.theta_0, state.snapshot if self.lottery.rewinds else None)

    def _start_level(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, log_ticket: bool = True
    ) -> None:
        state, network = self.lottery.state, self.lottery.network
        trainer.datamodule.set_level(state.level)
        pl_module.start_level(state.level_start, state.level_steps)
        if log_ticket:
            loggers.log_ticket(trainer.loggers, state.level, network.mask_dict(), network.model_state())

    def _log_evaluation(self, trainer: pl.Trainer, entry: dict[str, float]) -> None:
        level, remaining = self.lottery.state.level, self.lottery.network.remaining_total()
        loggers.log_metrics(
            trainer.loggers, loggers.evaluation_metrics(entry, level, remaining), trainer.global_step
        )
        if trainer.is_global_zero and self.run_dir is not None:
            self.run_dir.append_evaluation(level, entry)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *_: Any) -> None:
        pl_module.steps_per_batch = self.steps_until_event(trainer.global_step, pl_module.max_steps_per_batch)

    def steps_until_event(self, step: int, most: int) -> int:
        """Steps from ``step`` to the lottery's next event or the next checkpoint (at most ``most``)."""
        until = self.lottery.steps_until_event(step, most)
        every = self.checkpoint_every
        return min(until, every - step % every) if every else until

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, *_: Any
    ) -> None:
        lottery, step = self.lottery, trainer.global_step
        outcome = lottery.after_step(step, outputs["losses"])
        every = self.checkpoint_every
        self.checkpoint_due = outcome.record is not None or bool(every and step % every == 0)
        if outcome.evaluation is not None:
            self._log_evaluation(trainer, outcome.evaluation)
        if outcome.record is None:
            return
        network = lottery.network
        if trainer.is_global_zero and self.run_dir is not None:
            state = network.model_state() if self.save_weights else None
            self.run_dir.save_level(outcome.record.level, network.mask_dict(), state, outcome.tensors)
            self.run_dir.write_records(lottery.state.records)
        self._save_start_points(trainer)
        loggers.log_level(trainer.loggers, outcome.record, step)
        if lottery.finished:
            trainer.should_stop = True
            return
        lottery.next_level(step)
        for optimizer in trainer.optimizers:
            optimizer.state.clear()
        self._start_level(trainer, pl_module)
