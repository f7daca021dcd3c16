"""What a job shows on the terminal: a progress bar per level and a results table at the end."""

from __future__ import annotations

import functools
import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar
from rich.console import Console
from rich.table import Table

from lth.callbacks import PruningCallback


@functools.cache  # once per process
def quiet_third_party_noise() -> None:
    """Drop two messages every job would print: Lightning's advert for its LitLogger, and the
    FutureWarning Lightning 2.6 triggers through torch's deprecated ``LeafSpec``."""
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage()
    )
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
    )


def _percent(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}"


def results_table(records: Sequence[Mapping[str, Any]], title: str | None = None) -> Table:
    """One row per level: weights remaining, test accuracy at the end and at the early-stop iteration."""
    table = Table(title=title)
    for column in (
        "level",
        "weights %",
        "test acc %",
        "early-stop iter",
        "test acc % @ early stop",
        "status",
    ):
        table.add_column(column, justify="left" if column == "status" else "right")
    for r in records:
        table.add_row(
            str(r["level"]),
            _percent(r["weights_remaining"], 1),
            _percent(r.get("test_acc")),
            str(r["early_stop_step"]),
            _percent(r.get("test_acc_at_early_stop")),
            r["status"],
        )
    return table


def print_results(records: Sequence[Mapping[str, Any]], title: str | None = None) -> None:
    Console().print(results_table(records, title))


class LotteryProgressBar(TQDMProgressBar):
    """The training bar counts the steps of the current level: ``level 2/5, weights 64.0%``."""

    def __init__(self, schedule: PruningCallback) -> None:
        super().__init__()
        self.schedule = schedule
        self._level = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._label(pl_module)

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        """The lottery is one endless epoch: the bar is per level, not per epoch."""

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.schedule.state.level != self._level:  # a new level: leave the finished bar on screen
            self.train_progress_bar.close()
            self.train_progress_bar = self.init_train_tqdm()
            self._label(pl_module)
        bar, step = self.train_progress_bar, trainer.global_step - self.schedule.state.level_start
        if bar.disable:  # ranks other than zero
            return
        # redraw at most every mininterval (a redraw per step doubled the step time)
        if step == bar.total or time.monotonic() - bar.last_print_t >= bar.mininterval:
            bar.n = step
            bar.set_postfix(self.get_metrics(trainer, pl_module))

    def _label(self, pl_module: pl.LightningModule) -> None:
        self._level = self.schedule.state.level
        weights = pl_module.network.remaining_total()
        self.train_progress_bar.reset(total=self.schedule.state.level_steps)
        self.train_progress_bar.set_description(
            f"level {self._level}/{self.schedule.levels}, weights {100 * weights:.1f}%"
        )
