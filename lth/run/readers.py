"""Reading a job's ``results.jsonl``, ``DONE``, ``meta.json`` and Hydra's ``overrides.yaml`` back: damage from
outside (a line cut short by a full disk, a copy that broke off, an edit) is one line naming the file and the line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lth.errors import ConfigError

Shape = tuple[Callable[[Any], bool], str]
RECORD_KEYS = ("level", "weights_remaining", "status")  # what every reader of a record relies on
RECORD: Shape = (
    lambda v: isinstance(v, dict) and all(k in v for k in RECORD_KEYS),
    "not a JSON object with " + ", ".join(RECORD_KEYS),
)
META: Shape = (lambda v: isinstance(v, dict), "not a JSON object")
DONE: Shape = (
    lambda v: isinstance(v, dict) and isinstance(v.get("status"), str) and type(v.get("levels")) is int,
    'not a JSON object {"status": <text>, "levels": <integer>}',
)


class DamagedFile(ConfigError):
    """A job file that is not what lth wrote; ``lth.train`` prints it and exits 2."""


def damaged(path: Path, line: int, what: str, job: Path | None = None) -> DamagedFile:
    """``lth: damaged file <path>, line <line>: <what>; ...`` with what to do about it (``job``: the job
    directory ``path`` belongs to, its parent unless given)."""
    return DamagedFile(
        f"lth: damaged file {path}, line {line}: {what}; restore it, or delete {job or path.parent} to run the job again"
    )


def _parse(path: Path, line: int, raw: bytes, shape: Shape) -> dict[str, Any]:
    """``raw`` (from ``line`` of ``path`` on) as JSON of ``shape``."""
    try:
        value = json.loads(raw.decode())
    except UnicodeDecodeError:
        raise damaged(path, line, "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise damaged(
            path, line + exc.lineno - 1, f"not valid JSON ({exc.msg}: column {exc.colno})"
        ) from None
    ok, what = shape
    if not ok(value):
        raise damaged(path, line, what)
    return value


def read_records(path: Path) -> list[dict[str, Any]]:
    """The per-level records of ``results.jsonl`` (none if it does not exist)."""
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    return [_parse(path, n, raw, RECORD) for n, raw in enumerate(lines, 1) if raw.strip()]


def read_done(path: Path) -> dict[str, Any] | None:
    """The contents of ``DONE`` (None if it does not exist)."""
    return _parse(path, 1, path.read_bytes(), DONE) if path.exists() else None


def read_meta(path: Path) -> dict[str, Any] | None:
    """The provenance in ``meta.json`` (None if it does not exist)."""
    return _parse(path, 1, path.read_bytes(), META) if path.exists() else None


def read_job_files(job: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """A job's records and ``DONE``; a finished job must have as many records as ``DONE`` says."""
    records, done = read_records(job / "results.jsonl"), read_done(job / "DONE")
    if done is not None and done["levels"] != len(records):
        raise damaged(
            job / "results.jsonl",
            min(len(records), done["levels"]) + 1,
            f"{len(records)} record(s), but {job / 'DONE'} counts {done['levels']} level(s)",
        )
    return records, done


def read_overrides(path: Path) -> list[str]:
    """The command-line overrides Hydra saved in ``<job>/.hydra/overrides.yaml`` (none if it does not exist)."""
    if not path.exists():
        return []
    job = path.parent.parent
    try:
        overrides = yaml.safe_load(path.read_bytes().decode())
    except UnicodeDecodeError:
        raise damaged(path, 1, "not UTF-8 text", job) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise damaged(path, line, f"not valid YAML ({getattr(exc, 'problem', None)})", job) from None
    if overrides is None:
        return []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise damaged(path, 1, "not a YAML list of overrides (key=value)", job)
    return overrides
