"""The one error type for bad config values; entry points print its one-line message and exit 2."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A config value outside what lth allows."""


def invalid(key: str, value: Any, allowed: str) -> ConfigError:
    """``lth: invalid config: <key>=<value>; allowed: <allowed>``."""
    return ConfigError(f"lth: invalid config: {key}={value!r}; allowed: {allowed}")
