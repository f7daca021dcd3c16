"""What a claim is, what it checks and what it found; torch-free, so ``--list`` is instant."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class ClaimError(Exception):
    """A sweep that gives no answer (a job failed, an arm is missing): the claim fails with this message."""


@dataclass(frozen=True)
class Claim:
    """One finding of a paper, and the sweep that rechecks it at small scale."""

    name: str  # the --only name
    paper: str
    statement: str
    preset: str  # conf/experiment/<preset>.yaml: the sweep at full scale (its hydra.sweeper.params: the arms)
    seeds: int  # seeds per arm at full scale
    quick_seeds: int
    quick: tuple[str, ...] = ()  # overrides that make the --quick scale
    evaluate: str = ""  # "<module of lth.claims>.<function>": (sweep dir, quick) -> Outcome

    def overrides(self, quick: bool, seed: int) -> list[str]:
        """The sweep's overrides after the preset: its seeds and, with ``quick``, the cheaper scale."""
        count = self.quick_seeds if quick else self.seeds
        return [*(self.quick if quick else ()), "seed=" + ",".join(str(seed + k) for k in range(count))]


@dataclass(frozen=True)
class Check:
    """One measured number against its threshold."""

    label: str
    measured: float
    threshold: float
    direction: Literal[">=", "<="] = ">="

    @property
    def passed(self) -> bool:
        if not math.isfinite(self.measured):
            return False
        return self.measured >= self.threshold if self.direction == ">=" else self.measured <= self.threshold

    @property
    def measured_text(self) -> str:
        x = self.measured
        return f"{self.label} {x:.3f}" if 0.001 <= abs(x) < 100 else f"{self.label} {x:.3g}"

    @property
    def threshold_text(self) -> str:
        return f"{self.direction} {self.threshold:g}"

    def __str__(self) -> str:
        return f"{self.measured_text} {self.threshold_text}"


@dataclass
class Outcome:
    """What a claim's evaluation found: its checks, a line of context and its figure."""

    checks: list[Check]
    details: str = ""
    figure: Figure | None = None


@dataclass
class Result:
    """A claim as it ran: its outcome (or why there is none) and its wall time."""

    claim: Claim
    seconds: float
    outcome: Outcome | None = None
    error: str | None = None
    plot: str | None = None  # the PNG's file name in the output directory

    @property
    def passed(self) -> bool:
        return self.error is None and self.outcome is not None and all(c.passed for c in self.outcome.checks)

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    @property
    def measured(self) -> str:
        if self.outcome is None:
            return f"error: {self.error}"
        return "; ".join(str(c) for c in self.outcome.checks) + (
            f"; error: {self.error}" if self.error else ""
        )

    def line(self) -> str:
        """The console line: verdict, claim, the numbers against their thresholds, time."""
        return (
            f"{self.verdict} {self.claim.name} ({self.claim.paper}): {self.measured} [{self.seconds:.0f} s]"
        )
