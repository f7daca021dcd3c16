"""What the lottery logs to each of a job's loggers, whichever they are: evaluations as step metrics; each
level as a row to the loggers that understand levels (``LotteryLogger``: lth's W&B logger), as flat
``level/*`` metrics to the others; each ticket to the loggers that understand levels only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from pytorch_lightning.loggers import Logger
from torch import Tensor

from lth.analysis.suite import flatten
from lth.lottery.record import ANALYSIS, LevelRecord


@runtime_checkable
class LotteryLogger(Protocol):
    """A logger that understands levels (other loggers get flat metrics); see ``log_level``, ``log_ticket``."""

    def log_level(self, record: Mapping[str, Any]) -> None: ...

    def log_ticket(self, level: int, masks: Mapping[str, Tensor], weights: Mapping[str, Tensor]) -> None: ...

    def log_results(self, records: Sequence[LevelRecord]) -> None: ...


def evaluation_metrics(entry: Mapping[str, float | None], level: int, remaining: float) -> dict[str, float]:
    """One evaluation as step metrics: ``train/loss``, ``val/acc``, ``test/loss``, ``level``, ..."""
    metrics = {k.replace("_", "/", 1): v for k, v in entry.items() if k != "step" and v is not None}
    return metrics | {"level": level, "weights_remaining": remaining}


def log_metrics(loggers: Iterable[Logger], metrics: Mapping[str, float], step: int) -> None:
    for logger in loggers:
        logger.log_metrics(dict(metrics), step=step)


def log_level(loggers: Iterable[Logger], record: LevelRecord, step: int) -> None:
    """A finished level: a row on the level axis of lottery loggers, flat ``level/*`` metrics elsewhere."""
    row = record.to_dict()
    for logger in loggers:
        if isinstance(logger, LotteryLogger):
            logger.log_level(row)
        else:
            logger.log_metrics(level_metrics(row), step=step)


def log_ticket(
    loggers: Iterable[Logger], level: int, masks: Mapping[str, Tensor], weights: Mapping[str, Tensor]
) -> None:
    """The masks and model state a level starts from (its ticket)."""
    for logger in loggers:
        if isinstance(logger, LotteryLogger):
            logger.log_ticket(level, masks, weights)


def level_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """A level's numbers as flat metrics: ``level/test_acc``, ``level/layers/fc1.weight``,
    ``level/analysis/distance/fc1/relative``, ..."""
    metrics = {f"level/{k}": v for k, v in record.items() if isinstance(v, int | float)}
    metrics |= {f"level/layers/{name}": v for name, v in record.get("layers", {}).items()}
    metrics |= flatten(record.get(ANALYSIS, {}), f"level/{ANALYSIS}/", "/")
    return metrics
