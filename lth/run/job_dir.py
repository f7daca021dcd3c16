"""The job directory: a job's files on disk, all written atomically (``lth.files``).

```
<output_dir>/config.yaml                 resolved config of the job
<output_dir>/meta.json                   provenance: code, library versions, machine, command, times (lth.run.provenance)
<output_dir>/results.jsonl               one JSON object per finished level
<output_dir>/curves.jsonl                one JSON object per evaluation: level, step (within the level),
                                         train_loss, val_loss, val_acc, test_loss, test_acc (appended)
<output_dir>/init.pt                     theta_0: the full model state at initialisation (every tensor)
<output_dir>/rewind.pt                   theta_k, the rewind point the survivors restart from (init=rewind)
<output_dir>/levels/level_NN/masks.pt    masks the level trained with (bool tensors, plain names)
<output_dir>/levels/level_NN/state.pt    the full model state at the end of the level
<output_dir>/levels/level_NN/<analysis>.pt  tensors of a per-level analysis (e.g. specialisation.pt)
<output_dir>/DONE                        written last: {"status": ..., "levels": ...}
```
``init.pt``, ``rewind.pt`` and ``state.pt`` are skipped with ``results.save_weights=false``; every ``.pt``
file is a dict of tensors by plain name, loadable with ``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lth.errors import ConfigError
from lth.files import atomic_write_text, save_tensors
from lth.lottery.record import LevelRecord
from lth.run.readers import read_records


class RunDirectory:
    """The output directory of one job."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def results_file(self) -> Path:
        return self.path / "results.jsonl"

    @property
    def curves_file(self) -> Path:
        return self.path / "curves.jsonl"

    @property
    def done_file(self) -> Path:
        return self.path / "DONE"

    @property
    def meta_file(self) -> Path:
        return self.path / "meta.json"

    @property
    def init_file(self) -> Path:
        return self.path / "init.pt"

    @property
    def rewind_file(self) -> Path:
        return self.path / "rewind.pt"

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

    def discard_if_unused(self) -> None:
        """Remove the directory when it holds only what Hydra put there (``.hydra/``, its log): a job
        refused before training leaves no output directory, nor empty parents below the working one."""
        if not self.path.is_dir() or any(
            p.name != ".hydra" and p.suffix != ".log" for p in self.path.iterdir()
        ):
            return
        shutil.rmtree(self.path)
        cwd = Path.cwd().resolve()
        for parent in self.path.resolve().parents:
            if parent == cwd or cwd not in parent.parents or any(parent.iterdir()):
                break
            parent.rmdir()

    def level_dir(self, level: int) -> Path:
        return self.path / "levels" / f"level_{level:02d}"

    def write_config(self, yaml_text: str) -> None:
        atomic_write_text(self.path / "config.yaml", yaml_text)

    def write_records(self, records: list[LevelRecord]) -> None:
        atomic_write_text(self.results_file, "".join(json.dumps(r.to_dict()) + "\n" for r in records))

    def append_evaluation(self, level: int, entry: Mapping[str, float | None]) -> None:
        """One evaluation as a line of ``curves.jsonl``; a line cut short by a kill stays on its own line
        (readers skip it)."""
        line = (json.dumps({"level": level, **entry}) + "\n").encode()
        with self.curves_file.open("a+b") as f:  # appends always go to the end, wherever f was read
            end = f.seek(0, os.SEEK_END)
            if end and (f.seek(end - 1), f.read(1))[1] != b"\n":
                line = b"\n" + line
            f.write(line)

    def save_start_points(self, theta_0: Mapping[str, Tensor], rewind: Mapping[str, Tensor] | None) -> None:
        """``init.pt`` and (given) ``rewind.pt``, each written once: they never change during a job."""
        for path, state in ((self.init_file, theta_0), (self.rewind_file, rewind)):
            if state is not None and not path.exists():
                save_tensors(path, state)

    def save_level(
        self,
        level: int,
        masks: Mapping[str, Tensor],
        state: Mapping[str, Tensor] | None,
        analyses: Mapping[str, Mapping[str, Tensor]] | None = None,
    ) -> None:
        """A finished level's masks, full model state (unless None) and analyses' tensors."""
        save_tensors(self.level_dir(level) / "masks.pt", masks)
        if state is not None:
            save_tensors(self.level_dir(level) / "state.pt", state)
        for name, tensors in (analyses or {}).items():
            save_tensors(self.level_dir(level) / f"{name}.pt", tensors)

    def mark_done(self, status: str, levels: int) -> None:
        atomic_write_text(self.done_file, json.dumps({"status": status, "levels": levels}) + "\n")

    def read_records(self) -> list[dict[str, Any]]:
        return read_records(self.results_file)

    def load_masks(self, level: int) -> dict[str, Tensor]:
        return torch.load(self.level_dir(level) / "masks.pt", weights_only=True)

    def load_state(self, level: int) -> dict[str, Tensor]:
        """The full model state at the end of ``level``."""
        return torch.load(self.level_dir(level) / "state.pt", weights_only=True)
