"""PruningCallback: the only place that knows the lottery schedule.

One ``fit`` spans all levels: a level trains global steps ``(level_start, level_start + level_steps]``,
its length set by the ``Budget`` from its masks when it starts (``train.steps``, or Scratch-B's FLOPs
budget). At the end of a level the callback records its metrics, prunes (criterion + scope), restarts
the survivors (``lth.init.Restart``), clears the optimizer state and restarts the LR schedule, so the
next level starts from a fresh optimizer. Before each training batch it tells the module how many
steps to run: up to the next step where it (or the checkpoint) acts. Its state (level, its start and
length, theta_0, the rewind snapshot, records) is part of every Lightning checkpoint. With
``plan.at_init`` (SNIP, GraSP, SynFlow) level 0 itself is sparse: its masks come from saliency at
theta_0, computed once before the first step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from lth.flops import Budget, ForwardCost
from lth.init import Restart, State, derived_seed
from lth.loggers import LotteryLogger, level_metrics
from lth.pruning import prune_masks, score, structure_masks
from lth.results import RunDirectory
from lth.saliency import prune_at_init


@dataclass(frozen=True)
class PruningPlan:
    """How each event prunes: criterion, scope and each prunable tensor's rate."""

    criterion: str
    scope: str
    base_rate: float
    rates: Mapping[str, float]
    seed: int = 0
    at_init: str | None = None
    iterations: int = 1
    batches: int = 1
    structure: str = "unstructured"
    norm: int = 1
    readers: Mapping[str, str] = field(default_factory=dict)  # structured: unit tensor -> its reader

    def next_masks(
        self, masks: Mapping[str, Tensor], w_init: State, w_final: State, level: int
    ) -> dict[str, Tensor]:
        """Masks after the pruning event that ends ``level`` (ties broken by a per-level seed)."""
        ties = derived_seed(self.seed, "ties", level)
        if self.structure != "unstructured":
            return structure_masks(w_final, masks, self.rates, self.norm, self.readers, ties)
        scores = score(self.criterion, w_init, w_final)
        return prune_masks(scores, masks, self.rates, self.scope, self.base_rate, ties)

    def masks_at_init(
        self, model: nn.Module, masks: Mapping[str, Tensor], data: tuple[Tensor, Tensor]
    ) -> dict[str, Tensor]:
        """Masks from ``at_init``'s saliency at theta_0 (pruning before any training)."""
        assert self.at_init is not None
        seeds = partial(derived_seed, self.seed, "at_init")
        return prune_at_init(
            self.at_init, model, masks, data, self.rates, self.scope, self.base_rate, seeds, self.iterations
        )


Analysis = Callable[[nn.Module], tuple[dict[str, Any], dict[str, Tensor]]]
"""Per-level analysis of the trained model: summary numbers for the record, tensors for the level's directory."""


@dataclass
class LotteryState:
    """Everything the callback must checkpoint to resume a lottery."""

    level: int = 0
    level_start: int = 0  # the global step the current level started at
    level_steps: int = 0  # how many steps it trains (set when it starts)
    theta_0: State | None = None
    snapshot: State | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    status: str = "running"
    loss_sum: Tensor | None = None  # training loss summed since the last evaluation
    loss_count: int = 0
    level_elapsed: float = 0.0  # wall seconds spent in the current level before the last (re)start


def _finite_min_key(entry: Mapping[str, float]) -> float:
    loss = entry["val_loss"]
    return loss if math.isfinite(loss) else math.inf


def _assert_same_on_all_ranks(trainer: pl.Trainer, tensors: Mapping[str, Tensor]) -> None:
    """Under DDP every rank computes the masks itself; they must equal rank zero's."""
    if trainer.world_size == 1:
        return
    reference = trainer.strategy.broadcast({k: v.cpu() for k, v in tensors.items()}, src=0)
    differing = [k for k, v in tensors.items() if not torch.equal(v.cpu(), reference[k])]
    if differing:
        raise RuntimeError(
            f"lth: rank {trainer.global_rank} computed other masks than rank 0 for {differing}"
        )


class PruningCallback(pl.Callback):
    def __init__(
        self,
        *,
        levels: int,
        budget: Budget,
        cost: ForwardCost,
        eval_every: int,
        checkpoint_every: int | None,
        plan: PruningPlan,
        restart: Restart,
        fresh_state: Callable[[int], State],
        run_dir: RunDirectory | None = None,
        save_weights: bool = True,
        analyses: Mapping[str, Analysis] | None = None,
    ) -> None:
        self.levels, self.budget, self.cost, self.eval_every = levels, budget, cost, eval_every
        self.checkpoint_every = checkpoint_every  # global steps between checkpoints (RotatingCheckpoint)
        self.plan, self.restart, self.fresh_state = plan, restart, fresh_state
        self.run_dir, self.save_weights = run_dir, save_weights
        self.analyses = dict(analyses or {})
        self.state = LotteryState()
        self._started = time.perf_counter()

    # --- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return vars(self.state) | {"level_elapsed": self._level_wall_s()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.state = LotteryState(**state_dict)

    def _level_wall_s(self) -> float:
        return self.state.level_elapsed + time.perf_counter() - self._started

    # --- hooks ---------------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        network = pl_module.network
        if self.state.theta_0 is None:
            self.state.theta_0 = network.model_state()
            if self.plan.at_init is not None:
                data = self.scoring_data(trainer, pl_module)
                masks = self.plan.masks_at_init(network.model, network.mask_dict(), data)
                _assert_same_on_all_ranks(trainer, masks)
                network.set_masks(masks)
            self.state.level_steps = self._level_steps(network.mask_dict())
        if self.restart.pruned_weights == "frozen_init":
            network.hold_pruned_at(self.state.theta_0)
        if self.state.snapshot is None and self.restart.snapshot_step == 0:
            self.state.snapshot = self.state.theta_0
        trainer.datamodule.set_level(self.state.level)
        pl_module.start_level(self.state.level_start, self.state.level_steps)
        if self.state.level == 0 and not self.state.evals:
            self._log_ticket(trainer, pl_module)
        self._started = time.perf_counter()

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        pl_module.steps_per_batch = self.steps_until_event(trainer.global_step, pl_module.max_steps_per_batch)

    def steps_until_event(self, global_step: int, most: int) -> int:
        """Steps from ``global_step`` to the next evaluation, level end, rewind snapshot or checkpoint
        (at most ``most``): a training batch runs that many optimizer steps."""
        state, step = self.state, global_step - self.state.level_start
        until = [most, state.level_steps - step, self.eval_every - step % self.eval_every]
        if self.checkpoint_every:
            until.append(self.checkpoint_every - global_step % self.checkpoint_every)
        if state.level == 0 and state.snapshot is None and step < self.restart.snapshot_step:
            until.append(self.restart.snapshot_step - step)
        return min(until)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        network = pl_module.network
        losses = outputs["losses"]
        loss = losses.sum()
        self.state.loss_sum = loss if self.state.loss_sum is None else self.state.loss_sum + loss
        self.state.loss_count += len(losses)
        step, end = trainer.global_step - self.state.level_start, self.state.level_steps
        if self.state.level == 0 and step == self.restart.snapshot_step and self.state.snapshot is None:
            self.state.snapshot = network.model_state()
        if step % self.eval_every == 0 or step == end:
            diverged = not math.isfinite(self._evaluate(trainer, pl_module, step))
            if diverged or step == end:
                self._finish_level(trainer, pl_module, step, "diverged" if diverged else "ok")

    # --- the lottery ---------------------------------------------------------------------------
    def _level_steps(self, masks: Mapping[str, Tensor]) -> int:
        return self.budget.level_steps(self.cost(masks), self.cost.dense)

    def scoring_data(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> tuple[Tensor, Tensor]:
        """``plan.batches`` batches of training examples (a seeded draw) for saliency at init."""
        x, y = trainer.datamodule.split("train")
        generator = torch.Generator().manual_seed(derived_seed(self.plan.seed, "at_init_data"))
        rows = torch.randperm(len(x), generator=generator)[
            : self.plan.batches * trainer.datamodule.batch_size
        ]
        return x[rows].to(pl_module.device), y[rows].to(pl_module.device)

    def _evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> float:
        """Evaluate on val and test, log, and return the mean training loss since the last eval."""
        mean_loss = self.state.loss_sum / self.state.loss_count
        train_loss = trainer.strategy.reduce(mean_loss, reduce_op="mean").item()  # global batch under DDP
        self.state.loss_sum, self.state.loss_count = None, 0
        entry = {"step": step, "train_loss": train_loss}
        for split in ("val", "test"):
            metrics = pl_module.evaluate(*trainer.datamodule.split(split))
            entry |= {f"{split}_{k}": v for k, v in metrics.items()}
        self.state.evals.append(entry)
        metrics = {k.replace("_", "/", 1): v for k, v in entry.items() if k != "step" and v is not None}
        metrics |= {"level": self.state.level, "weights_remaining": pl_module.network.remaining_total()}
        self._log(trainer, metrics)
        return train_loss

    def _finish_level(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int, status: str
    ) -> None:
        network, state = pl_module.network, self.state
        best = min(state.evals, key=_finite_min_key)
        last = state.evals[-1]
        with network.holding(state.theta_0):  # the supermask: this level's mask on theta_0, untrained
            supermask = pl_module.evaluate(*trainer.datamodule.split("test"))
        record = {
            "level": state.level,
            "weights_remaining": network.remaining_total(),
            "layers": network.remaining(),
            "test_acc": last["test_acc"],
            "test_loss": last["test_loss"],
            "val_acc": last["val_acc"],
            "val_loss": last["val_loss"],
            "train_loss": last["train_loss"],
            "early_stop_step": best["step"],
            "test_acc_at_early_stop": best["test_acc"],
            "test_loss_at_early_stop": best["test_loss"],
            "val_loss_at_early_stop": best["val_loss"],
            "supermask_test_acc": supermask["acc"],
            "forward_macs": self.cost(network.mask_dict()),
            "steps": step,
            "wall_s": round(self._level_wall_s(), 3),
            "status": status,
        }
        tensors = {}
        for name, analyse in self.analyses.items():
            record[name], tensors[name] = analyse(network.model)
        state.records.append(record)
        if trainer.is_global_zero and self.run_dir is not None:
            weights = network.weights() if self.save_weights else None
            self.run_dir.save_level(state.level, network.mask_dict(), weights, tensors)
            self.run_dir.write_records(state.records)
        self._log_level(trainer, record)
        if status != "ok" or state.level == self.levels:
            state.status = "complete" if status == "ok" else status
            trainer.should_stop = True
            return
        self._next_level(trainer, pl_module)

    def _next_level(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        network, state = pl_module.network, self.state
        previous = network.mask_dict()
        pruned = self.plan.next_masks(previous, state.theta_0, network.weights(), state.level)
        state.level += 1
        trainer.datamodule.set_level(state.level)
        masks = self.restart.masks(pruned, previous, state.level)
        _assert_same_on_all_ranks(trainer, masks)
        network.set_masks(masks)
        network.load_model_state(self.restart.weights(state.snapshot, self.fresh_state, masks, state.level))
        for optimizer in trainer.optimizers:
            optimizer.state.clear()
        state.level_start, state.level_steps = trainer.global_step, self._level_steps(masks)
        pl_module.start_level(state.level_start, state.level_steps)
        state.evals, state.level_elapsed = [], 0.0
        self._log_ticket(trainer, pl_module)
        self._started = time.perf_counter()

    # --- logging -------------------------------------------------------------------------------
    @staticmethod
    def _log(trainer: pl.Trainer, metrics: dict[str, float]) -> None:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    @staticmethod
    def _log_level(trainer: pl.Trainer, record: dict[str, Any]) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, LotteryLogger):
                logger.log_level(record)
            else:
                logger.log_metrics(level_metrics(record), step=trainer.global_step)

    def _log_ticket(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The masks and model state the current level starts from (its ticket)."""
        network = pl_module.network
        for logger in trainer.loggers:
            if isinstance(logger, LotteryLogger):
                logger.log_ticket(self.state.level, network.mask_dict(), network.model_state())
