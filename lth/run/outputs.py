"""The outputs of one lottery of a stack: its job directory and its experiment loggers.

Lottery ``k`` of a stack writes exactly what the single job it stands for writes: evaluations
(``curves.jsonl``), each finished level's masks, state and analyses, ``results.jsonl``, theta_0 and the
rewind point once they exist, ``DONE``; its loggers get the same metrics, levels and tickets. Only the
process that owns the lottery writes its files (under DDP of one lottery: rank zero).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytorch_lightning.loggers import Logger

from lth.lottery import Lottery, StepOutcome
from lth.run import every_logger
from lth.run.job_dir import RunDirectory


@dataclass
class LotteryOutputs:
    """Where lottery ``lottery``'s results go."""

    lottery: Lottery
    run_dir: RunDirectory
    save_weights: bool
    writes: bool = True  # this process writes the lottery's files
    loggers: list[Logger] = field(default_factory=list)

    def start_points(self) -> None:
        """theta_0 and the rewind point, each once it exists (the rewind point: during level 0)."""
        state = self.lottery.state
        if self.writes and self.save_weights:
            self.run_dir.save_start_points(state.theta_0, state.snapshot if self.lottery.rewinds else None)

    def ticket(self) -> None:
        """The loggers get the ticket the lottery's level starts from (``logger.log_tickets``)."""
        network = self.lottery.network
        every_logger.log_ticket(
            self.loggers, self.lottery.state.level, network.mask_dict(), network.model_state()
        )

    def outcome(self, outcome: StepOutcome, step: int) -> None:
        """Write and log what ``outcome`` (of global ``step``) produced: an evaluation, a finished level."""
        lottery, network = self.lottery, self.lottery.network
        if outcome.evaluation is not None:
            metrics = every_logger.evaluation_metrics(
                outcome.evaluation, lottery.state.level, network.remaining_total()
            )
            every_logger.log_metrics(self.loggers, metrics, step)
            if self.writes:
                self.run_dir.append_evaluation(lottery.state.level, outcome.evaluation)
        if outcome.record is None:
            return
        if self.writes:
            state = network.model_state() if self.save_weights else None
            self.run_dir.save_level(outcome.record.level, network.mask_dict(), state, outcome.tensors)
            self.run_dir.write_records(lottery.state.records)
            if lottery.finished:
                self.run_dir.mark_done(lottery.state.status, len(lottery.state.records))
        self.start_points()
        every_logger.log_level(self.loggers, outcome.record, step)
