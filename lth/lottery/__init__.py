"""The science of the lottery, importable without Lightning, Hydra or W&B.

``masks`` (MaskedNetwork), ``pruning`` (criteria, scopes, structured units), ``rates`` (per-tensor
rates, unit readers), ``plan`` (a pruning event), ``at_init`` (SNIP, GraSP, SynFlow), ``restarts``
(what survivors restart from), ``ticket`` (another lottery's ticket), ``supermask`` (learned supermask), ``budget`` (steps per level, forward
cost), ``record`` (the level record) and ``lottery`` (the state machine a training loop drives).
"""

from lth.lottery.budget import Budget, ForwardCost
from lth.lottery.lottery import Lottery, LotteryState, StepOutcome
from lth.lottery.masks import MaskedNetwork, prunable_weight_names
from lth.lottery.plan import PruningPlan
from lth.lottery.record import LevelRecord
from lth.lottery.restarts import Restart
from lth.lottery.ticket import Ticket

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
