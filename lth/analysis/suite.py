"""The analyses by name, as ``analysis=[...]`` and ``lth.analyze --only`` select them.

Each is ``f(level, **knobs) -> (numbers, tensors)`` with its knobs from ``analysis_cfg.<name>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lth.analysis.distance import distance
from lth.analysis.level import Result
from lth.analysis.mask_overlap import mask_overlap
from lth.analysis.node_distribution import node_distribution

ANALYSES: dict[str, Callable[..., Result]] = {
    "distance": distance,
    "node_distribution": node_distribution,
    "mask_overlap": mask_overlap,
}
DEFAULT = ("distance", "node_distribution", "mask_overlap")  # the cheap ones

Check = tuple[Callable[[Any], bool], str]  # (ok, what is allowed) for one knob's value
_COUNT: Check = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1")
KNOB_CHECKS: dict[tuple[str, str], Check] = {
    ("node_distribution", "draws"): _COUNT,
}
