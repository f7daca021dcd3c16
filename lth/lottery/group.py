"""A group of K >= 1 lotteries trained in lockstep by one stack (``lth.lottery.stacked``).

The group is what a training loop drives when it trains K lotteries at once (K=1 is a single job):

    group.start()
    while not group.finished:
        steps = group.steps_until_event(step, most)
        ...``steps`` stack steps; losses: (steps, K)...
        for k, outcome in group.after_step(step, losses):
            ...write lottery k's evaluation and finished level...
        if group.restarting:
            group.next_level(step)        # then: a fresh optimizer state and LR schedule

Each lottery keeps its own state machine; the group hands lottery ``k`` column ``k`` of the losses,
evaluates every lottery due at a step in one batched forward (``StackEvaluator``), and freezes in the
stack a lottery that finished (its last level, or diverged) while others go on. Live lotteries share
their level boundaries (the stack restarts one optimizer and schedule): if their levels come to differ
in length (``train.budget=flops`` with different survivor counts) that is a RuntimeError naming them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

from lth.lottery.lottery import Lottery, LotteryState, Metrics, Ranks, Split, StepOutcome
from lth.lottery.stacked import Stack

Evaluator = Callable[[Sequence[Split]], list[Metrics]]  # K splits -> K networks' metrics


class LotteryGroup:
    """``lotteries[k]`` trains ``stack.networks[k]``; ``evaluate`` evaluates the stack's K at once."""

    def __init__(self, lotteries: Sequence[Lottery], stack: Stack, evaluate: Evaluator) -> None:
        assert [lottery.network for lottery in lotteries] == stack.networks
        self.lotteries, self.stack, self.evaluate = list(lotteries), stack, evaluate
        self.recorded = False  # a lottery recorded a level (ended or diverged) at the last after_step
        self.restarting: list[int] = []  # the lotteries whose level ended there and that go on

    def __len__(self) -> int:
        return len(self.lotteries)

    @property
    def finished(self) -> bool:
        return all(lottery.finished for lottery in self.lotteries)

    def live(self) -> list[int]:
        return [k for k, lottery in enumerate(self.lotteries) if not lottery.finished]

    @property
    def lead(self) -> Lottery:
        """The first live lottery (the last one once all are finished): whose level the group is in."""
        live = self.live()
        return self.lotteries[live[0] if live else -1]

    def state(self) -> LotteryState:
        """The level every live lottery is in; a RuntimeError if their levels differ."""
        levels = {
            (self.lotteries[k].state.level_start, self.lotteries[k].state.level_steps) for k in self.live()
        }
        if len(levels) > 1:
            raise RuntimeError(
                f"lth: the live lotteries' levels differ (start step, length: {sorted(levels)}); the stack "
                "trains them in lockstep (train.budget=flops needs the same survivor counts in every lottery)"
            )
        return self.lead.state

    # --- resuming ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"lotteries": [lottery.state_dict() for lottery in self.lotteries]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for lottery, state in zip(self.lotteries, state_dict["lotteries"], strict=True):
            lottery.load_state_dict(state)

    # --- the schedule --------------------------------------------------------------------------
    def start(self, ranks: Ranks | None = None) -> None:
        """Start (or resume) every lottery; one already finished stays frozen where it stopped."""
        for k, lottery in enumerate(self.lotteries):
            lottery.start(ranks)
            if lottery.finished and len(self) > 1:
                self.stack.freeze(k)

    def steps_until_event(self, step: int, most: int) -> int:
        """Steps from ``step`` to the next event of any live lottery (at most ``most``)."""
        return min(self.lotteries[k].steps_until_event(step, most) for k in self.live())

    def after_step(self, step: int, losses: Tensor) -> list[tuple[int, StepOutcome]]:
        """Hand each live lottery its column of ``losses`` (steps x K) up to ``step``; the outcome of each."""
        live = self.live()
        due = [k for k in live if self.lotteries[k].evaluation_due(step)]
        evaluated = self._evaluate(due)
        outcomes = []
        self.recorded, self.restarting = False, []
        for k in live:
            lottery = self.lotteries[k]
            outcome = lottery.after_step(step, losses[:, k].contiguous(), evaluated.get(k))  # summed as alone
            outcomes.append((k, outcome))
            if outcome.record is None:
                continue
            self.recorded = True
            if not lottery.finished:
                self.restarting.append(k)
            elif len(self) > 1:
                self.stack.freeze(k)
        return outcomes

    def _evaluate(self, due: list[int]) -> dict[int, dict[str, Metrics]]:
        """The val and test metrics of every lottery in ``due``, each split in one forward of the stack
        (a lottery not due is given the first due one's data, and its metrics are dropped)."""
        if not due:
            return {}
        evaluated: dict[int, dict[str, Metrics]] = {k: {} for k in due}
        for split in ("val", "test"):
            data = {k: self.lotteries[k].data(split) for k in due}
            metrics = self.evaluate([data.get(k, data[due[0]]) for k in range(len(self))])
            for k in due:
                evaluated[k][split] = metrics[k]
        return evaluated

    def next_level(self, step: int) -> None:
        """Every lottery whose level ended at ``step`` and goes on prunes and restarts; the next level starts."""
        for k in self.restarting:
            self.lotteries[k].next_level(step)
        self.restarting = []
        self.state()  # the live lotteries' levels still agree
