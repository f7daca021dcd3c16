"""The form of a config check: a key, a test of its value and what the key allows, failing in one line
(``lth: invalid config: <key>=<value>; allowed: <what>``); and the tests the groups share."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from omegaconf import DictConfig

from lth.errors import invalid

Rule = tuple[Callable[[Any], bool], str]  # (ok, what the key allows)
Check = tuple[str, Rule]  # a dotted key and its rule


def fail(key: str, value: Any, allowed: str) -> None:
    raise invalid(key, value, allowed)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check(cfg: DictConfig, key: str, ok: Callable[[Any], bool], allowed: str) -> None:
    value = cfg
    for part in key.split("."):
        value = value.get(part) if isinstance(value, DictConfig) else None
    if not ok(value):
        fail(key, value, allowed)


def one_of(options: Iterable[str]) -> Rule:
    options = sorted(options)
    return (lambda v: v in options), "one of " + ", ".join(options)


def int_in(low: int, high: float = float("inf")) -> Rule:
    text = f"an integer >= {low}" if high == float("inf") else f"an integer in [{low}, {high}]"
    return (lambda v: is_int(v) and low <= v <= high), text


OPEN_UNIT: Rule = (lambda v: is_number(v) and 0 < v < 1), "a number in (0, 1)"
POSITIVE: Rule = (lambda v: is_number(v) and v > 0), "a number > 0"
NON_NEGATIVE: Rule = (lambda v: is_number(v) and v >= 0), "a number >= 0"
TRUE_OR_FALSE: Rule = (lambda v: isinstance(v, bool)), "true or false"
NULL: Rule = (lambda v: v is None), "null"
