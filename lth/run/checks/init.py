"""Checks of ``init``: what a pruned network restarts from (a rewind step, another job's ticket), and
the ticket's source job, read from its files once every other check passed."""

from __future__ import annotations

from omegaconf import DictConfig

from lth.lottery.names import OUTPUT_LAYER, PRUNED_WEIGHTS, STRATEGIES
from lth.run.checks.rules import Check, int_in, is_int, one_of
from lth.run.ticket import ticket_source


def init_checks(cfg: DictConfig) -> list[Check]:
    return [("init.name", one_of(STRATEGIES)), ("init.pruned_weights", one_of(PRUNED_WEIGHTS))]


def restart_checks(cfg: DictConfig) -> list[Check]:
    """``init=rewind``'s step and ``init=ticket``'s level and output layer."""
    checks: list[Check] = []
    if cfg.init.get("name") == "rewind":
        checks.append(("init.rewind_step", int_in(0, cfg.train.get("steps"))))
    if cfg.init.get("name") == "ticket":
        checks += [
            (
                "init.ticket.level",
                (
                    (lambda v: v is None or (is_int(v) and v >= 0)),
                    "null (the last level) or an integer >= 0",
                ),
            ),
            ("init.ticket.output_layer", one_of(OUTPUT_LAYER)),
            ("prune.at_init", ((lambda v: v is None), "null with init=ticket (the ticket brings its masks)")),
        ]
    return checks


def check_ticket_source(cfg: DictConfig) -> None:
    """``init=ticket``: the source job's files (after every other check)."""
    if cfg.init.get("name") == "ticket":
        ticket_source(cfg)
