"""A job's files on disk, all written atomically (temp file in the same directory, then rename).

```
<output_dir>/config.yaml                 resolved config of the job
<output_dir>/results.jsonl               one JSON object per finished level
<output_dir>/levels/level_NN/masks.pt    masks the level trained with (bool tensors, plain names)
<output_dir>/levels/level_NN/weights.pt  prunable weights at the end of the level
<output_dir>/levels/level_NN/<analysis>.pt  tensors of a per-level analysis (e.g. specialisation.pt)
<output_dir>/DONE                        written last: {"status": ..., "levels": ...}
```
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import Tensor

from lth.config import ConfigError
from lth.run.readers import read_records

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(file)`` so readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def save_tensors(path: Path, tensors: Mapping[str, Tensor]) -> None:
    """Save CPU copies of ``tensors``; loadable with ``torch.load(weights_only=True)``."""
    cpu = {name: t.detach().cpu() for name, t in tensors.items()}
    atomic_write(path, lambda f: torch.save(cpu, f))


class RunDirectory:
    """The output directory of one job."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def results_file(self) -> Path:
        return self.path / "results.jsonl"

    @property
    def done_file(self) -> Path:
        return self.path / "DONE"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def claim(self, yaml_text: str) -> None:
        """Make sure the directory is writable and holds no job of another config."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if not os.access(self.path, os.W_OK):
                raise PermissionError(self.path)
        except OSError as exc:
            raise ConfigError(
                f"lth: invalid config: paths.output_dir={str(self.path)!r} is not writable ({exc})"
            ) from None
        config = self.path / "config.yaml"
        if config.exists() and config.read_text() != yaml_text:
            raise ConfigError(
                f"lth: invalid config: paths.output_dir={str(self.path)!r} holds a job with another config; "
                "rerun with that job's config to resume it, or choose a new hydra.run.dir / hydra.sweep.dir"
            )

    def level_dir(self, level: int) -> Path:
        return self.path / "levels" / f"level_{level:02d}"

    def write_config(self, yaml_text: str) -> None:
        atomic_write_text(self.path / "config.yaml", yaml_text)

    def write_records(self, records: list[dict[str, Any]]) -> None:
        atomic_write_text(self.results_file, "".join(json.dumps(r) + "\n" for r in records))

    def save_level(
        self,
        level: int,
        masks: Mapping[str, Tensor],
        weights: Mapping[str, Tensor] | None,
        analyses: Mapping[str, Mapping[str, Tensor]] | None = None,
    ) -> None:
        save_tensors(self.level_dir(level) / "masks.pt", masks)
        if weights is not None:
            save_tensors(self.level_dir(level) / "weights.pt", weights)
        for name, tensors in (analyses or {}).items():
            save_tensors(self.level_dir(level) / f"{name}.pt", tensors)

    def mark_done(self, status: str, levels: int) -> None:
        atomic_write_text(self.done_file, json.dumps({"status": status, "levels": levels}) + "\n")

    def read_records(self) -> list[dict[str, Any]]:
        return read_records(self.results_file)

    def load_masks(self, level: int) -> dict[str, Tensor]:
        return torch.load(self.level_dir(level) / "masks.pt", weights_only=True)
