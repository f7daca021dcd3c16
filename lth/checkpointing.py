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

from lth.callbacks import PruningCallback

log = logging.getLogger("lth")

LAST, PREVIOUS = "last.ckpt", "prev.ckpt"


class RotatingCheckpoint(Checkpoint):
    """Saves ``last.ckpt`` at level ends and every ``schedule.checkpoint_every`` steps, keeping the
    previous one (the schedule ends its training batches at those steps)."""

    def __init__(self, dirpath: Path, schedule: PruningCallback) -> None:
        self.dirpath, self.schedule = Path(dirpath), schedule

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        """Runs after the PruningCallback: a level that just ended has finished or started the next."""
        step, state, every = trainer.global_step, self.schedule.state, self.schedule.checkpoint_every
        level_ended = step == state.level_start or state.status != "running"
        if level_ended or (every and step % every == 0):
            self.save(trainer)

    def save(self, trainer: pl.Trainer) -> None:
        tmp = self.dirpath / f".{LAST}.tmp"
        trainer.save_checkpoint(tmp, weights_only=False)  # collective under DDP; rank zero writes
        if trainer.is_global_zero:
            last = self.dirpath / LAST
            if last.exists():
                os.replace(last, self.dirpath / PREVIOUS)
            os.replace(tmp, last)


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
