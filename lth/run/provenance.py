"""Provenance: which code, libraries, machine and command produced a job (its ``meta.json``).

``meta.json`` is written when a job starts and completed when it ends::

    {"lth_version": "0.1.0", "git_commit": "3f2a...", "git_dirty": false,
     "versions": {"python": "3.11.2", "torch": "2.13.0", "pytorch-lightning": "2.6.6", ...},
     "host": "node7", "device": "cpu: AMD EPYC 7763", "torch_threads": 1, "world_size": 1,
     "command": "/usr/bin/python3 -m lth.train prune.rate=0.5", "overrides": ["prune.rate=0.5"],
     "start_time": "2026-12-04T19:30:01+01:00", "end_time": "2026-12-04T19:43:33+01:00", "wall_s": 812.4,
     "starts": [{...the fields above, with this start's start_time, end_time, wall_s...}]}

The top-level fields are those of the start that ran last; ``start_time`` is the job's first start;
``end_time`` and ``wall_s`` (seconds run, summed over its starts) stay null until the job is done. Every
start (one, unless the job was resumed) is also in ``starts`` with its own times (``end_time`` null for
a start that was killed). ``git_commit`` and ``git_dirty`` are null unless lth runs from a git checkout.
"""

from __future__ import annotations

import json
import platform
import shlex
import socket
import subprocess
import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

import lth
from lth.files import atomic_write_text
from lth.run.readers import read_meta

PACKAGES = ("torch", "pytorch-lightning", "hydra-core", "omegaconf", "wandb", "torchmetrics", "numpy")
TIMES = ("start_time", "end_time", "wall_s")
GIT_TIMEOUT_S = 10


def git_state(package_dir: Path) -> tuple[str | None, bool | None]:
    """The commit and dirty flag (tracked or untracked changes) of the git checkout holding the package
    ``package_dir``, or ``(None, None)``: the package's parent must be the top of a work tree, so a copy
    installed into site-packages (even one inside some other checkout) has none, and so does a machine
    without git."""
    root = package_dir.resolve().parent

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True
        )
        return done.stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != root:
            return None, None
        return git("rev-parse", "HEAD"), bool(git("status", "--porcelain"))
    except (OSError, subprocess.SubprocessError):
        return None, None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """``cuda: NVIDIA H200``, ``cpu: AMD EPYC 7763``, ..."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return f"{device.type}: {name}"


def collect(device: torch.device, world_size: int, overrides: list[str]) -> dict[str, Any]:
    """This process's provenance: code, library versions, machine, command line."""
    commit, dirty = git_state(Path(lth.__file__).parent)
    return {
        "lth_version": lth.__version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "versions": {"python": platform.python_version()} | {p: _version(p) for p in PACKAGES},
        "host": socket.gethostname(),
        "device": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "world_size": world_size,
        "command": shlex.join(sys.orig_argv),
        "overrides": list(overrides),
    }


def now() -> datetime:
    """The local time, with its UTC offset."""
    return datetime.now().astimezone()


class Provenance:
    """The ``meta.json`` of one job directory, kept by the job's rank-zero process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.meta: dict[str, Any] = {}
        self.started = now()

    def start(self, fields: dict[str, Any], started: datetime) -> dict[str, Any]:
        """Record this start of the job, ``started`` when its process began to build it (after the earlier
        starts of a resumed job); returns the contents."""
        self.started = started
        earlier = read_meta(self.path)
        this = fields | {
            "start_time": self.started.isoformat(timespec="seconds"),
            "end_time": None,
            "wall_s": None,
        }
        starts = [*(earlier or {}).get("starts", []), this]
        self.meta = fields | {"start_time": starts[0]["start_time"], "end_time": None, "wall_s": None}
        self.meta["starts"] = starts
        return self._write()

    def end(self, finished: bool) -> dict[str, Any]:
        """Record the end of this start, and, if the job is ``finished``, of the job; returns the contents."""
        ended = now()
        this = self.meta["starts"][-1]
        this |= {
            "end_time": ended.isoformat(timespec="seconds"),
            "wall_s": round((ended - self.started).total_seconds(), 3),
        }
        if finished:
            total = sum(start["wall_s"] or 0.0 for start in self.meta["starts"])
            self.meta |= {"end_time": this["end_time"], "wall_s": round(total, 3)}
        return self._write()

    def _write(self) -> dict[str, Any]:
        atomic_write_text(self.path, json.dumps(self.meta, indent=1) + "\n")
        return self.meta


def run_config(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` as W&B run config entries: ``meta/git_commit``, ``meta/versions/torch``, ..., ``meta/starts``
    (how many times the job started)."""
    flat = {f"meta/{k}": v for k, v in meta.items() if k not in ("versions", "starts")}
    flat |= {f"meta/versions/{k}": v for k, v in meta.get("versions", {}).items()}
    return flat | {"meta/starts": len(meta.get("starts", []))}
