"""The analyses by name, as ``analysis=[...]`` and ``lth.analyze --only`` select them.

Each is ``f(level, **knobs) -> (numbers, tensors)`` with its knobs from ``analysis_cfg.<name>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lth.analysis.clustering import clustering
from lth.analysis.distance import distance
from lth.analysis.esd import esd
from lth.analysis.level import Result
from lth.analysis.mask_overlap import mask_overlap
from lth.analysis.node_distribution import node_distribution
from lth.analysis.units import units
from lth.analysis.update_spectrum import update_spectrum

ANALYSES: dict[str, Callable[..., Result]] = {
    "distance": distance,
    "node_distribution": node_distribution,
    "mask_overlap": mask_overlap,
    "update_spectrum": update_spectrum,
    "esd": esd,
    "clustering": clustering,
    "units": units,
}
NEEDS_MODEL = ("units", "update_spectrum")  # run the network: the full level state, accuracy (classification)
DEFAULT = ("distance", "node_distribution", "mask_overlap")  # the cheap ones


def flatten(tree: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, float]:
    """The numbers of a nested mapping (a record's analyses) under joined keys: ``{"a": {"b": 1}}`` ->
    ``{"a.b": 1}``; None and text are left out."""
    flat: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{prefix}{key}{sep}", sep)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = value
    return flat


Check = tuple[Callable[[Any], bool], str]  # (ok, what is allowed) for one knob's value
_COUNT: Check = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1")
KNOB_CHECKS: dict[tuple[str, str], Check] = {
    ("node_distribution", "draws"): _COUNT,
    ("update_spectrum", "ks"): (
        lambda v: isinstance(v, Sequence) and len(v) > 0 and all(_COUNT[0](k) for k in v),
        "a non-empty list of integers >= 1",
    ),
    ("clustering", "k"): _COUNT,
    ("units", "threshold"): (lambda v: isinstance(v, int | float) and -1 <= v < 1, "a number in [-1, 1)"),
    ("units", "removable_drop"): (lambda v: isinstance(v, int | float) and 0 <= v <= 1, "a number in [0, 1]"),
    ("units", "samples"): _COUNT,
}
