"""The analyses' names and knobs, and the checks of the knobs' values: no torch, so checking a config
is fast. ``suite.ANALYSES`` is keyed by exactly these names, in this order, and each function's keyword
arguments after ``level`` are exactly its ``KNOBS``; ``suite`` asserts both on import."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

ANALYSES = (
    "distance",
    "node_distribution",
    "mask_overlap",
    "update_spectrum",
    "esd",
    "clustering",
    "units",
)
NEEDS_MODEL = ("units", "update_spectrum")  # run the network: the full level state, accuracy (classification)
DEFAULT = ("distance", "node_distribution", "mask_overlap")  # the cheap ones
KNOBS: dict[str, tuple[str, ...]] = {  # analysis_cfg.<name>.<knob>, in the order of the function's arguments
    "distance": (),
    "node_distribution": ("draws",),
    "mask_overlap": (),
    "update_spectrum": ("ks",),
    "esd": (),
    "clustering": ("k",),
    "units": ("threshold", "removable_drop", "samples"),
}

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
