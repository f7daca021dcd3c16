"""What a job shows on the terminal: a progress bar per level and a results table at the end."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar
from rich.console import Console
from rich.table import Table

from lth.lottery import Lottery
from lth.lottery.record import CONSOLE_FIELDS, LevelRecord


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


def _cell(value: Any, percent: int | None) -> str:
    return str(value) if percent is None else _percent(value, percent)


def results_table(records: Sequence[LevelRecord], title: str | None = None) -> Table:
    """One row per level, the record's console fields: weights remaining, test accuracy at the end and
    at the early-stop iteration, ..."""
    table = Table(title=title)
    for f in CONSOLE_FIELDS:
        table.add_column(f.metadata["label"], justify="right" if f.type != "str" else "left")
    for r in records:
        table.add_row(*(_cell(getattr(r, f.name), f.metadata["percent"]) for f in CONSOLE_FIELDS))
    return table


def print_results(records: Sequence[LevelRecord], title: str | None = None) -> None:
    Console().print(results_table(records, title))


class LotteryProgressBar(TQDMProgressBar):
    """The training bar counts the steps of the current level: ``level 2/5, weights 64.0%``."""

    def __init__(self, lottery: Lottery) -> None:
        super().__init__()
        self.lottery = lottery
        self._level = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._label(pl_module)

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        """The lottery is one endless epoch: the bar is per level, not per epoch."""

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.lottery.state.level != self._level:  # a new level: leave the finished bar on screen
            self.train_progress_bar.close()
            self.train_progress_bar = self.init_train_tqdm()
            self._label(pl_module)
        bar, step = self.train_progress_bar, trainer.global_step - self.lottery.state.level_start
        if bar.disable:  # ranks other than zero
            return
        # redraw at most every mininterval (a redraw per step doubled the step time)
        if step == bar.total or time.monotonic() - bar.last_print_t >= bar.mininterval:
            bar.n = step
            bar.set_postfix(self.get_metrics(trainer, pl_module))

    def _label(self, pl_module: pl.LightningModule) -> None:
        self._level = self.lottery.state.level
        weights = self.lottery.network.remaining_total()
        self.train_progress_bar.reset(total=self.lottery.state.level_steps)
        self.train_progress_bar.set_description(
            f"level {self._level}/{self.lottery.last_level}, weights {100 * weights:.1f}%"
        )
