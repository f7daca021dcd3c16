"""Rotating, atomic Lightning checkpoints, and the choice of which one a rerun resumes from.

``<output_dir>/checkpoints/last.ckpt`` is written (temp file, then rename) at every level end and
every ``every`` global steps; the one before it is kept as ``prev.ckpt``. A rerun resumes from the newest
checkpoint that loads with ``torch.load(weights_only=True)`` (so loading never runs pickled code);
a truncated or corrupt one is reported and skipped.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint

from lth.run.callback import PruningCallback

log = logging.getLogger("lth")

LAST, PREVIOUS = "last.ckpt", "prev.ckpt"


class RotatingCheckpoint(Checkpoint):
    """Saves ``last.ckpt`` when the PruningCallback says one is due (level ends and every
    ``train.checkpoint_every`` steps, where it ends its training batches), keeping the previous one.
    ``each_rank``: every rank saves its own, when its own are due (replicates spread over ranks)."""

    def __init__(self, dirpath: Path, schedule: PruningCallback, each_rank: bool = False) -> None:
        self.dirpath, self.schedule, self.each_rank = Path(dirpath), schedule, each_rank

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        """Runs after the PruningCallback (Lightning runs checkpoint callbacks last): a level that just
        ended has finished the lottery or started the next level."""
        if self.schedule.checkpoint_due:
            self.save(trainer)

    def save(self, trainer: pl.Trainer) -> None:
        tmp = self.dirpath / f".{LAST}.tmp"
        if self.each_rank:  # no barrier: the ranks' levels may end apart (a replicate that diverged)
            self.dirpath.mkdir(parents=True, exist_ok=True)
            checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
            trainer.strategy.save_checkpoint(checkpoint, tmp)
        else:
            trainer.save_checkpoint(tmp, weights_only=False)  # collective under DDP; rank zero writes
        if self.each_rank or trainer.is_global_zero:
            install_checkpoint(self.dirpath, tmp)


def install_checkpoint(dirpath: Path, written: Path) -> None:
    """Make the fully ``written`` file ``last.ckpt``, the previous one ``prev.ckpt``."""
    last = dirpath / LAST
    if last.exists():
        os.replace(last, dirpath / PREVIOUS)
    os.replace(written, last)


def resumable_checkpoint(dirpath: Path) -> Path | None:
    """The newest checkpoint in ``dirpath`` that loads safely, or None."""
    for name in (LAST, PREVIOUS):
        path = Path(dirpath) / name
        if not path.exists():
            continue
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated, corrupt or unsafe: all mean "do not resume from it"
            log.warning(
                "lth: checkpoint %s is unreadable (%s); trying an older one", path, type(exc).__name__
            )
            continue
        return path
    return None


def remove_checkpoints(dirpath: Path) -> None:
    for name in (LAST, PREVIOUS, f".{LAST}.tmp"):
        (Path(dirpath) / name).unlink(missing_ok=True)
