"""The level record: what one finished level of a lottery measured, defined once.

``results.jsonl`` holds one record per line (``to_dict``); the W&B history and results table, the
console table and ``lth.report`` read their columns from the fields here. Field metadata says how
each is shown: ``label`` (a column title), ``percent`` (digits when shown as a percentage),
``console`` (a column of the table a job prints) and ``report`` (aggregated over seeds by lth.report).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _shown(doc: str, label: str | None = None, percent: int | None = None, **where: bool) -> dict[str, Any]:
    """A field's metadata: its doc, column title, percentage digits and where it is shown."""
    return {"doc": doc, "label": label, "percent": percent, **where}


@dataclass(frozen=True)
class LevelRecord:
    """One level of one lottery. Fractions are in [0, 1]; losses are per target element."""

    level: int = field(
        metadata=_shown(
            "0 = the first training (dense, or pruned at init); k = after k pruning events",
            "level",
            console=True,
        )
    )
    weights_remaining: float = field(
        metadata=_shown("fraction of prunable weights alive", "weights %", 1, console=True)
    )
    layers: dict[str, float] = field(metadata=_shown("fraction alive per prunable tensor"))
    test_acc: float | None = field(
        metadata=_shown(
            "test accuracy at the level's end (None for regression)",
            "test acc %",
            2,
            console=True,
            report=True,
        )
    )
    test_loss: float = field(metadata=_shown("test loss at the level's end", "test loss", report=True))
    val_acc: float | None = field(metadata=_shown("validation accuracy at the level's end", "val acc %", 2))
    val_loss: float = field(metadata=_shown("validation loss at the level's end", "val loss"))
    train_loss: float = field(
        metadata=_shown("mean training loss since the previous evaluation", "train loss")
    )
    early_stop_step: int = field(
        metadata=_shown(
            "step of the level (from 1) with the lowest finite validation loss",
            "early-stop iter",
            console=True,
            report=True,
        )
    )
    test_acc_at_early_stop: float | None = field(
        metadata=_shown(
            "test accuracy at early_stop_step", "test acc % @ early stop", 2, console=True, report=True
        )
    )
    test_loss_at_early_stop: float = field(
        metadata=_shown("test loss at early_stop_step", "test loss @ early stop")
    )
    val_loss_at_early_stop: float = field(
        metadata=_shown("validation loss at early_stop_step", "val loss @ early stop")
    )
    supermask_test_acc: float | None = field(
        metadata=_shown("test accuracy of this level's mask on theta_0, untrained", "supermask test acc %", 2)
    )
    forward_macs: int = field(
        metadata=_shown("multiply-accumulates per example of the masked forward pass", "forward MACs")
    )
    steps: int = field(metadata=_shown("optimizer steps the level trained", "steps"))
    wall_s: float = field(
        metadata=_shown("wall seconds of the level (training, evaluation, pruning)", "wall s")
    )
    status: str = field(metadata=_shown("ok, or diverged (non-finite training loss)", "status", console=True))
    ticket_source: dict[str, Any] | None = field(
        default=None,
        metadata=_shown(
            "init=ticket: the ticket's source (directory, level, weights_remaining, git_commit, git_dirty, "
            "data_step); None otherwise"
        ),
    )
    analyses: dict[str, Any] = field(default_factory=dict, metadata={"doc": "per-level analyses by name"})

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``results.jsonl``: the fields in order, each analysis under its own name."""
        record = asdict(self)
        return record | record.pop("analyses")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LevelRecord:
        names = {f.name for f in fields(cls)} - {"analyses"}
        known = {k: data[k] for k in names if k in data}  # records written before a field existed lack it
        return cls(**known, analyses={k: v for k, v in data.items() if k not in names})


FIELDS = tuple(f for f in fields(LevelRecord) if f.name != "analyses")
SCALAR_FIELDS = tuple(f.name for f in FIELDS if f.name not in ("layers", "ticket_source"))
"""Columns of the W&B results table (then one ``layers/<tensor>`` column per prunable tensor)."""
CONSOLE_FIELDS = tuple(f for f in FIELDS if f.metadata.get("console"))
REPORT_METRICS = tuple(f.name for f in FIELDS if f.metadata.get("report"))
