"""The lottery as a plain object: a state machine over levels that any training loop can drive.

A level trains ``level_steps`` optimizer steps (set by the ``Budget`` from its masks when it starts),
evaluating every ``eval_every`` steps and at its end. At the end it records a ``LevelRecord``; then
``next_level`` prunes (``PruningPlan``) and restarts the survivors (``Restart``). A non-finite training
loss ends the lottery as ``diverged``. The driver (``lth.run.callback.PruningCallback`` under Lightning,
or a plain PyTorch loop) owns the optimizer and the data:

    lottery.start()                                   # theta_0 (and masks at init)
    while not lottery.finished:
        ...one optimizer step, then network.apply_masks()...
        outcome = lottery.after_step(step, loss)      # step counts all levels from 1
        if outcome.record and not lottery.finished:
            lottery.next_level(step)                  # then: a fresh optimizer state and LR schedule

Everything a resume needs is in ``state_dict()`` (plain types and tensors).

Given a ``Ticket`` (another lottery's masks of one level and the weights it started from), the lottery
continues that one from the ticket's level: ``start`` takes its theta_0, rewind point and masks, level
numbers go on from the ticket's, and ``levels`` more pruning events follow.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from lth.lottery.budget import Budget, ForwardCost
from lth.lottery.masks import MaskedNetwork, State
from lth.lottery.plan import PruningPlan
from lth.lottery.record import LevelRecord
from lth.lottery.restarts import Restart
from lth.lottery.ticket import Ticket
from lth.seeds import derived_seed

Split = tuple[Tensor, Tensor]
Metrics = Mapping[str, float | None]
Evaluate = Callable[[Tensor, Tensor], Metrics]
"""The network's mean ``loss`` and ``acc`` (None for regression) on ``(x, y)``, in eval mode."""


@dataclass(frozen=True)
class LevelEnd:
    """What a per-level analysis sees when a level ends."""

    level: int
    model: nn.Module  # trained to the level's end, pruned weights zero (or held)
    theta_0: State
    masks: dict[str, Tensor]  # the level's masks
    previous_masks: dict[str, Tensor] | None  # the previous level's masks (None at level 0)


Analysis = Callable[[LevelEnd], tuple[dict[str, Any], dict[str, Tensor]]]
"""Per-level analysis: summary numbers for the record, tensors for the level's directory. Its name is
where both go: ``specialisation`` (a top-level record key, ``specialisation.pt``), ``analysis/distance``
(``record["analysis"]["distance"]``, ``analysis/distance.pt``)."""


class Ranks(Protocol):
    """The processes that train one lottery together (DDP ranks)."""

    def mean(self, value: Tensor) -> float:
        """``value`` averaged over the ranks."""
        ...

    def agree(self, masks: Mapping[str, Tensor]) -> None:
        """Raise unless every rank computed these masks."""
        ...


class OneProcess:
    """The lottery trains in this process only."""

    def mean(self, value: Tensor) -> float:
        return value.item()

    def agree(self, masks: Mapping[str, Tensor]) -> None:
        pass


@dataclass
class LotteryState:
    """Everything needed to resume a lottery."""

    level: int = 0
    level_start: int = 0  # the step the current level started after
    level_steps: int = 0  # how many steps it trains (set when it starts)
    theta_0: State | None = None
    previous_masks: dict[str, Tensor] | None = None  # the masks of the level before this one
    snapshot: State | None = None  # what survivors restart from: theta_0, or theta_k when rewinding
    records: list[LevelRecord] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)  # this level's evaluations
    status: str = "running"  # running | complete | diverged
    loss_sum: Tensor | None = None  # training loss summed since the last evaluation
    loss_count: int = 0
    level_elapsed: float = 0.0  # wall seconds spent in the current level before the last (re)start


@dataclass(frozen=True)
class StepOutcome:
    """What happened at a step: an evaluation (its entry), and the record of a level that ended there."""

    evaluation: dict[str, float] | None = None
    record: LevelRecord | None = None
    tensors: dict[str, dict[str, Tensor]] = field(default_factory=dict)  # the analyses' tensors


NOTHING = StepOutcome()


def _finite_min_key(entry: Mapping[str, float]) -> float:
    loss = entry["val_loss"]
    return loss if math.isfinite(loss) else math.inf


class Lottery:
    """One lottery over ``network``: ``levels`` pruning events after the first training (of ``ticket``,
    if given)."""

    def __init__(
        self,
        network: MaskedNetwork,
        *,
        levels: int,
        budget: Budget,
        cost: ForwardCost,
        eval_every: int,
        plan: PruningPlan,
        restart: Restart,
        fresh_state: Callable[[int], State],
        data: Callable[[str], Split],
        evaluate: Evaluate,
        batch_size: int,
        analyses: Mapping[str, Analysis] | None = None,
        ticket: Ticket | None = None,
    ) -> None:
        self.network, self.levels, self.budget, self.cost = network, levels, budget, cost
        self.ticket = ticket
        self.eval_every, self.plan, self.restart, self.fresh_state = eval_every, plan, restart, fresh_state
        self.data, self.evaluate, self.batch_size = data, evaluate, batch_size
        self.analyses = dict(analyses or {})
        self.ranks: Ranks = OneProcess()
        self.state = LotteryState()
        self._started = time.perf_counter()

    @property
    def finished(self) -> bool:
        return self.state.status != "running"

    @property
    def rewinds(self) -> bool:
        """Whether the survivors restart from a rewind point (``state.snapshot``) rather than theta_0."""
        return self.restart.name == "rewind" or (self.ticket is not None and self.ticket.snapshot is not None)

    @property
    def last_level(self) -> int:
        return self.levels + (self.ticket.level if self.ticket else 0)

    # --- resuming ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = vars(self.state) | {"level_elapsed": self._level_wall_s()}
        return state | {"records": [r.to_dict() for r in self.state.records]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        records = [LevelRecord.from_dict(r) for r in state_dict["records"]]
        self.state = LotteryState(**(state_dict | {"records": records}))

    def _level_wall_s(self) -> float:
        return self.state.level_elapsed + time.perf_counter() - self._started

    # --- the schedule --------------------------------------------------------------------------
    def start(self, ranks: Ranks | None = None) -> None:
        """Begin (or, after ``load_state_dict``, resume): theta_0 (or the ticket), and the masks at init if
        planned."""
        self.ranks = ranks or OneProcess()
        network, state = self.network, self.state
        if state.theta_0 is None:
            if self.ticket is not None:
                self._take(self.ticket)
            else:
                state.theta_0 = network.model_state()
            if self.plan.at_init is not None:
                masks = self.plan.masks_at_init(network.model, network.mask_dict(), self.scoring_data())
                self.ranks.agree(masks)
                network.set_masks(masks)
            state.level_steps = self._level_steps(network.mask_dict())
        if self.restart.pruned_weights == "frozen_init":
            network.hold_pruned_at(state.theta_0)
        if state.snapshot is None and self.restart.snapshot_step == 0:
            state.snapshot = state.theta_0
        self._started = time.perf_counter()

    def _take(self, ticket: Ticket) -> None:
        """Start from ``ticket``: its level, theta_0, rewind point and masks, and its level's start weights."""
        network, state = self.network, self.state
        device = next(network.parameters()).device

        def here(tensors: State | None) -> State | None:
            return None if tensors is None else {k: v.to(device) for k, v in tensors.items()}

        state.level, state.theta_0, state.snapshot = ticket.level, here(ticket.theta_0), here(ticket.snapshot)
        network.set_masks(here(ticket.masks))
        network.load_model_state(here(ticket.start))

    def scoring_data(self) -> Split:
        """``plan.batches`` batches of training examples (a seeded draw) for saliency at init."""
        x, y = self.data("train")
        generator = torch.Generator().manual_seed(derived_seed(self.plan.seed, "at_init_data"))
        rows = torch.randperm(len(x), generator=generator)[: self.plan.batches * self.batch_size]
        device = next(self.network.parameters()).device
        return x[rows].to(device), y[rows].to(device)

    def steps_until_event(self, step: int, most: int) -> int:
        """Steps from ``step`` to the next evaluation, level end or rewind snapshot (at most ``most``)."""
        state, done = self.state, step - self.state.level_start
        until = [most, state.level_steps - done, self.eval_every - done % self.eval_every]
        if state.level == 0 and state.snapshot is None and done < self.restart.snapshot_step:
            until.append(self.restart.snapshot_step - done)
        return min(until)

    def evaluation_due(self, step: int) -> bool:
        """Whether ``after_step(step, ...)`` evaluates (every ``eval_every`` steps and at the level's end)."""
        done = step - self.state.level_start
        return done % self.eval_every == 0 or done == self.state.level_steps

    def after_step(
        self, step: int, losses: Tensor, evaluated: Mapping[str, Metrics] | None = None
    ) -> StepOutcome:
        """Account for the optimizer steps up to ``step`` (their ``losses``): take the rewind snapshot,
        evaluate, and end the level, when due at ``step``. ``evaluated`` (``{"val": ..., "test": ...}``)
        gives the evaluation of this step where the driver made it (a stack evaluates its K at once)."""
        state = self.state
        loss = losses.sum()
        state.loss_sum = loss if state.loss_sum is None else state.loss_sum + loss
        state.loss_count += len(losses)
        done = step - state.level_start
        if state.level == 0 and done == self.restart.snapshot_step and state.snapshot is None:
            state.snapshot = self.network.model_state()
        if not self.evaluation_due(step):
            return NOTHING
        entry = self._evaluate(done, evaluated)
        diverged = not math.isfinite(entry["train_loss"])
        if not diverged and done != state.level_steps:
            return StepOutcome(evaluation=entry)
        record, tensors = self.end_level(done, "diverged" if diverged else "ok")
        return StepOutcome(entry, record, tensors)

    def _evaluate(self, done: int, evaluated: Mapping[str, Metrics] | None) -> dict[str, float]:
        state = self.state
        train_loss = self.ranks.mean(state.loss_sum / state.loss_count)  # the global batch under DDP
        state.loss_sum, state.loss_count = None, 0
        entry = {"step": done, "train_loss": train_loss}
        for split in ("val", "test"):
            metrics = evaluated[split] if evaluated else self.evaluate(*self.data(split))
            entry |= {f"{split}_{k}": v for k, v in metrics.items()}
        state.evals.append(entry)
        return entry

    def end_level(self, done: int, status: str) -> tuple[LevelRecord, dict[str, dict[str, Tensor]]]:
        """Record the level that ends after ``done`` steps (and its analyses' tensors); the last level, or
        one that diverged, finishes the lottery."""
        network, state = self.network, self.state
        best = min(state.evals, key=_finite_min_key)
        last = state.evals[-1]
        with network.holding(state.theta_0):  # the supermask: this level's mask on theta_0, untrained
            supermask = self.evaluate(*self.data("test"))
        record = LevelRecord(
            level=state.level,
            weights_remaining=network.remaining_total(),
            layers=network.remaining(),
            test_acc=last["test_acc"],
            test_loss=last["test_loss"],
            val_acc=last["val_acc"],
            val_loss=last["val_loss"],
            train_loss=last["train_loss"],
            early_stop_step=best["step"],
            test_acc_at_early_stop=best["test_acc"],
            test_loss_at_early_stop=best["test_loss"],
            val_loss_at_early_stop=best["val_loss"],
            supermask_test_acc=supermask["acc"],
            forward_macs=self.cost(network.mask_dict()),
            steps=done,
            wall_s=round(self._level_wall_s(), 3),
            status=status,
            ticket_source=self.ticket.source if self.ticket else None,
        )
        summaries, tensors = {}, {}
        end = LevelEnd(state.level, network.model, state.theta_0, network.mask_dict(), state.previous_masks)
        for name, analyse in self.analyses.items():
            summaries[name], tensors[name] = analyse(end)
        record = replace(record, analyses=summaries)
        state.records.append(record)
        if status != "ok" or state.level == self.last_level:
            state.status = "complete" if status == "ok" else status
        return record, tensors

    def next_level(self, step: int) -> None:
        """Prune (the plan's criterion and scope on this level's weights), then restart the survivors
        (the restart strategy); the next level starts after ``step``."""
        network, state = self.network, self.state
        previous = network.mask_dict()
        pruned = self.plan.next_masks(previous, state.theta_0, network.weights(), state.level)
        state.level += 1
        state.previous_masks = previous
        masks = self.restart.masks(pruned, previous, state.level)
        self.ranks.agree(masks)
        network.set_masks(masks)
        network.load_model_state(self.restart.weights(state.snapshot, self.fresh_state, masks, state.level))
        state.level_start, state.level_steps = step, self._level_steps(masks)
        state.evals, state.level_elapsed = [], 0.0
        self._started = time.perf_counter()

    def _level_steps(self, masks: Mapping[str, Tensor]) -> int:
        return self.budget.level_steps(self.cost(masks), self.cost.dense)
