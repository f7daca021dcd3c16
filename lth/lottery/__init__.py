"""The science of the lottery, importable without Lightning, Hydra or W&B.

``masks`` (MaskedNetwork), ``pruning`` (criteria, scopes, structured units), ``rates`` (per-tensor
rates, unit readers), ``plan`` (a pruning event), ``at_init`` (SNIP, GraSP, SynFlow), ``restarts``
(what survivors restart from), ``ticket`` (another lottery's ticket), ``supermask`` (learned supermask), ``budget`` (steps per level, forward
cost), ``record`` (the level record), ``lottery`` (the state machine a training loop drives),
``stacked`` (the step kernels of K >= 1 networks), ``group`` (K lotteries over one stack) and
``evaluation`` (a stack's K networks evaluated at once);
``names`` holds the names their config keys allow, as plain tuples. The package's names are imported
on first use, so ``lth.lottery.names`` loads no torch.

Science: it imports ``lth.models`` (masks wrap its layers) and the ground floor of lth, never data,
analysis, run, report or bench.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lth.exports import lazy_exports

if TYPE_CHECKING:
    from lth.lottery.budget import Budget, ForwardCost
    from lth.lottery.lottery import Lottery, LotteryState, StepOutcome
    from lth.lottery.masks import MaskedNetwork, prunable_weight_names
    from lth.lottery.plan import PruningPlan
    from lth.lottery.record import LevelRecord
    from lth.lottery.restarts import Restart
    from lth.lottery.ticket import Ticket

_HOMES = {  # where each name lives
    "Budget": "budget",
    "ForwardCost": "budget",
    "LevelRecord": "record",
    "Lottery": "lottery",
    "LotteryState": "lottery",
    "MaskedNetwork": "masks",
    "PruningPlan": "plan",
    "Restart": "restarts",
    "StepOutcome": "lottery",
    "Ticket": "ticket",
    "prunable_weight_names": "masks",
}

__all__ = [
    "Budget",
    "ForwardCost",
    "LevelRecord",
    "Lottery",
    "LotteryState",
    "MaskedNetwork",
    "PruningPlan",
    "Restart",
    "StepOutcome",
    "Ticket",
    "prunable_weight_names",
]
__getattr__ = lazy_exports(__name__, _HOMES)
