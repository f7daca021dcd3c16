"""What a job shows on the terminal: a progress bar per level and a results table at the end."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.callbacks.progress.tqdm_progress import Tqdm
from rich.console import Console
from rich.table import Table

from lth.lottery import Lottery
from lth.lottery.group import LotteryGroup
from lth.lottery.record import CONSOLE_FIELDS, LevelRecord
from lth.run.naming import natural_key
from lth.run.readers import DamagedFile, read_job_files


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


def sweep_table(sweep: Path) -> Table:
    """One row per job of a sweep directory (per replicate of a ``train.replicates`` job): its name, last
    level's weights and test accuracy, status."""
    table = Table(title=f"sweep {sweep}")
    for column in ("job", "levels", "weights %", "test acc %", "status"):
        table.add_column(column, justify="left" if column in ("job", "status") else "right")
    jobs = []
    found = (p.parent for p in sweep.glob("*/config.yaml") if p.parent.name != ".hydra")  # a run's own
    for job in sorted(found, key=lambda p: natural_key(p.name)):
        replicates = sorted(job.glob("replicate_*/config.yaml"), key=lambda p: natural_key(p.parent.name))
        jobs += [p.parent for p in replicates] or [job]
    for job in jobs:
        name = str(job.relative_to(sweep))
        try:
            records, done = read_job_files(job)
        except DamagedFile as exc:
            table.add_row(name, "-", "-", "-", str(exc))
            continue
        last = records[-1] if records else {}
        status = done["status"] if done else "unfinished"
        weights, accuracy = last.get("weights_remaining"), last.get("test_acc")
        table.add_row(name, str(len(records)), _percent(weights, 1), _percent(accuracy), status)
    return table


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class LotteryProgressBar(TQDMProgressBar):
    """One bar per level, ``level 2/5, weights 64.0%``, counting the level's steps; its postfix shows the
    job's progress over all levels and an ETA. A finished level's bar stays with its full count, its
    time and the level's test accuracy."""

    REDRAW_S = 0.1  # a redraw per step doubled the step time of a small model

    def __init__(self, group: LotteryGroup) -> None:
        super().__init__()
        self.group = group
        self._level, self._drawn = 0, 0.0  # the level of the bar on screen, when it was last drawn
        self._start: tuple[float, int] = (0.0, 0)  # wall time and global step when training started

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._start = (time.time(), trainer.global_step)

    @property
    def lottery(self) -> Lottery:
        """The lottery whose level the bar shows (of several trained together, the first live one)."""
        return self.group.lead

    def init_train_tqdm(self) -> Tqdm:
        """The bar of the current level, labelled from its first draw."""
        self._level, self._drawn = self.lottery.state.level, 0.0
        weights = self.lottery.network.remaining_total()
        stack = f"{len(self.group)} lotteries, " if len(self.group) > 1 else ""
        return Tqdm(
            desc=f"{stack}level {self._level}/{self.lottery.last_level}, weights {100 * weights:.1f}%",
            total=self.lottery.state.level_steps,
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stdout,
            smoothing=0,
            bar_format=self.BAR_FORMAT,
        )

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        """The lottery is one endless epoch: the bar is per level, not per epoch."""

    def on_train_batch_end(self, trainer: pl.Trainer, *_: Any) -> None:
        state = self.lottery.state
        if state.level != self._level:  # the level ended with this batch: finish its bar, start the next
            self._finish_bar()
            self.train_progress_bar = self.init_train_tqdm()
        bar, step = self.train_progress_bar, trainer.global_step - state.level_start
        if bar.disable:  # ranks other than zero
            return
        if self.group.finished:
            self._finish_bar()
        elif time.time() - self._drawn >= self.REDRAW_S:
            self._drawn = time.time()
            bar.n = step
            bar.set_postfix_str(self._job_progress(trainer.global_step))

    def on_train_end(self, *_: Any) -> None:
        if not self.train_progress_bar.disable and not self.group.finished:
            self.train_progress_bar.close()  # interrupted: the bar stays where it was

    def _finish_bar(self) -> None:
        """Show the finished level's steps, time and test accuracy (of a stack: its lotteries' range at
        that level), and leave its bar on screen."""
        bar = self.train_progress_bar
        if bar.disable:
            return
        record = self.lottery.state.records[-1]
        ended = [
            r for lottery in self.group.lotteries for r in lottery.state.records if r.level == record.level
        ]
        accs = sorted(r.test_acc for r in ended if r.test_acc is not None)
        bar.n = record.steps
        accuracy = "-".join(dict.fromkeys(_percent(a) for a in (accs[0], accs[-1]))) if accs else ""
        statuses = ", ".join(sorted({r.status for r in ended}))
        bar.set_postfix_str((f"test acc {accuracy}%, " if accs else "") + statuses, refresh=False)
        bar.close()

    def _job_progress(self, step: int) -> str:
        """Steps of the whole job done (all levels at the current level's length) and the time left."""
        total = (self.lottery.levels + 1) * self.lottery.state.level_steps
        started, first = self._start
        done = step - first
        left = (time.time() - started) * (total - step) / done if done else None
        eta = _duration(left) if left is not None else "?"
        return f"job {100 * step / total:.0f}%, ETA {eta}"
