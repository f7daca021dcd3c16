"""The analyses by name, as ``analysis=[...]`` and ``lth.analyze --only`` select them.

Each is ``f(level, **knobs) -> (numbers, tensors)`` with its knobs from ``analysis_cfg.<name>``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from lth.analysis import names
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
assert tuple(ANALYSES) == names.ANALYSES, "lth.analysis.names.ANALYSES must name ANALYSES' keys"
assert all(
    tuple(p for p in inspect.signature(f).parameters if p != "level") == names.KNOBS[n]
    for n, f in ANALYSES.items()
), "lth.analysis.names.KNOBS must name each analysis' keyword arguments"


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
