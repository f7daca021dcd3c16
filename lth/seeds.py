"""Seeds derived from the job's seed: one stable stream per purpose and level."""

from __future__ import annotations

import zlib


def derived_seed(seed: int, purpose: str, level: int = 0) -> int:
    """A stable 31-bit seed for one purpose at one level, independent of Python's hash salt."""
    return zlib.crc32(f"{seed}/{purpose}/{level}".encode()) & 0x7FFFFFFF
