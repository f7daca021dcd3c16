"""Read an offline W&B run (``run-<id>.wandb``) back; wandb 0.31 ships no reader for it.

The file is a ``:W&B`` header (7 bytes) followed by a LevelDB log: 32 KiB blocks of chunks, each a 7-byte
header (crc32 4 bytes, length 2 bytes little-endian, type 1 byte: FULL, FIRST, MIDDLE, LAST) and its
bytes; a block's tail shorter than a header is padding. The chunks carry ``Record`` protobufs.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto.wandb_internal_pb2 import Record

BLOCK, HEADER = 32 * 1024, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[Record]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, payload = HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # padding at a block's end
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        chunk, pos = data[pos + HEADER : pos + HEADER + length], pos + HEADER + length
        assert kind in (FULL, FIRST, MIDDLE, LAST), f"bad chunk type {kind} at {pos}"
        payload = chunk if kind in (FULL, FIRST) else payload + chunk
        if kind in (FULL, LAST):
            yield Record.FromString(payload)


def _items(items: Any) -> dict[str, Any]:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


@dataclass
class OfflineRun:
    run: Any = None  # the RunRecord: run_id, display_name, run_group, job_type, tags, ...
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[Any] = field(default_factory=list)  # ArtifactRecords
    exit_code: int | None = None  # None: the run was never finished


def read_run(path: Path) -> OfflineRun:
    out = OfflineRun()
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out.run = record.run
            out.config |= _items(record.run.config.update)
        elif kind == "config":
            out.config |= _items(record.config.update)
        elif kind == "history":
            out.history.append(_items(record.history.item))
        elif kind == "exit":
            out.exit_code = record.exit.exit_code
        elif kind == "summary":
            out.summary |= _items(record.summary.update)
        elif kind == "artifact":
            out.artifacts.append(record.artifact)
    return out
