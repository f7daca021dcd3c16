"""``init=ticket``: the job a ticket comes from, checked from its files, and the ticket loaded from them.

The source (``init.ticket.from``) must be a finished lth job (``DONE``) of this job's model that saved its
weights (``init.pt``, and ``rewind.pt`` if it rewound), restarted its survivors from stored weights
(``init=winning_ticket``, ``rewind``, ``random_prune`` or ``ticket``), and have the level asked for
(``init.ticket.level``, default its last). Each refusal is one line naming the key, before anything trains.

The new job's training batches continue the source's data stream where the ticket's level started
(``data_step``), so a ticket trained under its source's config repeats the source's levels exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from omegaconf import DictConfig, OmegaConf

from lth.errors import ConfigError, invalid
from lth.run.readers import DamagedFile, read_job_files, read_meta

SOURCE_RESTARTS = (
    "winning_ticket",
    "rewind",
    "random_prune",
    "ticket",
)  # they restart from init.pt/rewind.pt

# torch is imported where a ticket is loaded: checking its source (a config check) needs none
if TYPE_CHECKING:
    from torch import Tensor, nn

    from lth.lottery.ticket import Ticket


@dataclass(frozen=True)
class TicketSource:
    """A finished job a ticket is taken from, and the level it is taken at."""

    path: Path
    level: int
    record: dict[str, Any]  # the level's record in results.jsonl
    meta: dict[str, Any] | None  # its meta.json
    data_step: int  # the step of the source's data stream where the level started
    rewound: bool  # it has a rewind point (rewind.pt)

    def provenance(self) -> dict[str, Any]:
        """The ``ticket_source`` of every record of the new job."""
        meta = self.meta or {}
        return {
            "directory": str(self.path),
            "level": self.level,
            "weights_remaining": self.record["weights_remaining"],
            "git_commit": meta.get("git_commit"),
            "git_dirty": meta.get("git_dirty"),
            "data_step": self.data_step,
        }


def _model(config: dict[str, Any]) -> dict[str, Any]:
    """A model config without its initialiser (the ticket brings the weights)."""
    return {k: v for k, v in config.items() if k != "init"}


def ticket_source(cfg: DictConfig) -> TicketSource:
    """The source of ``cfg``'s ticket, checked from its files (nothing is loaded but JSON and YAML)."""
    given = cfg.init.ticket.get("from")
    if not isinstance(given, str) or not given:
        raise invalid("init.ticket.from", given, "the directory of a finished lth job")
    path = Path(given).expanduser().resolve()

    def refuse(why: str, allowed: str = "the directory of a finished lth job") -> ConfigError:
        return ConfigError(f"lth: invalid config: init.ticket.from={given!r}: {why}; allowed: {allowed}")

    try:
        config = OmegaConf.to_container(OmegaConf.load(path / "config.yaml"))
    except FileNotFoundError:
        raise refuse(f"{path} holds no lth job (no config.yaml)") from None
    except (OSError, yaml.YAMLError) as exc:
        raise refuse(f"{path / 'config.yaml'} is unreadable ({type(exc).__name__})") from None
    if not (isinstance(config, dict) and all(isinstance(config.get(k), dict) for k in ("model", "init"))):
        raise refuse(f"{path / 'config.yaml'} is not the config of an lth job")
    records, done = read_job_files(path)
    if done is None or not records:
        raise refuse(f"{path} is unfinished (no DONE)" if done is None else f"{path} recorded no level")
    levels = [record["level"] for record in records]
    level = cfg.init.ticket.get("level")
    level = levels[-1] if level is None else level
    if level not in levels:
        raise invalid("init.ticket.level", level, f"a level of {path}: " + ", ".join(map(str, levels)))
    theirs, ours = _model(config["model"]), _model(OmegaConf.to_container(cfg.model, resolve=True))
    if theirs != ours:
        raise refuse(
            f"its model is {json.dumps(theirs)}, this job's {json.dumps(ours)}", "a job of this model"
        )
    restart = config["init"].get("name")
    if restart not in SOURCE_RESTARTS:
        raise refuse(
            f"its init={restart} restarts levels from weights it does not store",
            "a job run with init=" + ", ".join(SOURCE_RESTARTS),
        )
    needed = [path / "init.pt", path / "levels" / f"level_{level:02d}" / "masks.pt"]
    needed += [path / "rewind.pt"] if restart == "rewind" else []
    for file in needed:
        if not file.exists():
            saved = config.get("results", {}).get("save_weights", True)
            raise refuse(
                f"{file} is missing" + ("" if saved else " (it ran with results.save_weights=false)")
            )
    first = records[0].get("ticket_source") or {}  # a source that itself started from a ticket
    data_step = first.get("data_step", 0) + sum(r["steps"] for r in records if r["level"] < level)
    record = records[levels.index(level)]
    return TicketSource(
        path, level, record, read_meta(path / "meta.json"), data_step, (path / "rewind.pt").exists()
    )


def _load(path: Path) -> dict[str, Tensor]:
    import torch

    try:
        return torch.load(path, weights_only=True)
    except Exception as exc:  # a file cut short or not written by lth: whatever torch raises
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DamagedFile(
            f"lth: damaged file {path}: not a tensor file lth wrote ({why}); restore it"
        ) from None


def load_ticket(cfg: DictConfig, model: nn.Module, prunable: list[str]) -> tuple[Ticket, int]:
    """The ticket of ``cfg.init.ticket`` fitted to ``model`` (its tensors checked), and the step of the
    source's data stream the new job's first step continues."""
    from lth.lottery.ticket import Ticket, fit_ticket

    source = ticket_source(cfg)
    found = Ticket(
        level=source.level,
        masks=_load(source.path / "levels" / f"level_{source.level:02d}" / "masks.pt"),
        theta_0=_load(source.path / "init.pt"),
        snapshot=_load(source.path / "rewind.pt") if source.rewound else None,
        source=source.provenance(),
    )
    key = f"init.ticket.from={cfg.init.ticket['from']!r}"
    return fit_ticket(found, model, prunable, cfg.init.ticket.output_layer, key), source.data_step
