"""The one error type for bad config values: Hydra prints only its one-line message."""

from __future__ import annotations

from typing import Any

from hydra.errors import CompactHydraException


class ConfigError(CompactHydraException):
    """A config value outside what lth allows."""


def invalid(key: str, value: Any, allowed: str) -> ConfigError:
    """``lth: invalid config: <key>=<value>; allowed: <allowed>``."""
    return ConfigError(f"lth: invalid config: {key}={value!r}; allowed: {allowed}")
