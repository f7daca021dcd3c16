"""Checks of ``analysis`` (which analyses run) and ``analysis_cfg.<name>.<knob>`` (their knobs)."""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig

from lth.analysis.names import ANALYSES, KNOB_CHECKS, KNOBS
from lth.run.checks.rules import Check, fail, one_of


def analysis_checks(cfg: DictConfig) -> list[Check]:
    """Checks of ``analysis`` (names) and ``analysis_cfg.<name>.<knob>`` (known knobs, their values)."""
    names = one_of(ANALYSES)[1].removeprefix("one of ")
    checks = [
        (
            "analysis",
            (
                (lambda v: v is None or (isinstance(v, ListConfig) and all(n in ANALYSES for n in v))),
                f"a list of analyses from: {names}",
            ),
        )
    ]
    knobs = cfg.get("analysis_cfg") or {}
    for name in knobs:
        if name not in ANALYSES:
            fail("analysis_cfg", name, f"analyses from: {names}")
        known = KNOBS[name]
        for knob in knobs[name] or {}:
            if knob not in known:
                fail(f"analysis_cfg.{name}", knob, "knobs " + (", ".join(known) or "none"))
            checks.append((f"analysis_cfg.{name}.{knob}", KNOB_CHECKS[name, knob]))
    return checks
