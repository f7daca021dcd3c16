"""Job directory names: short, flat and unique, computed inside every job process (SLURM's too).

A sweep's job directory is ``<job num>_<swept overrides>``: the job's overrides, sorted, except the
keys the sweep does not vary (``lth.train`` passes those to Hydra as
``hydra.job.config.override_dirname.exclude_keys``), as ``key=value`` joined by commas, every path
or URL in a value reduced to its last component. A name over ``MAX_NAME_BYTES`` is cut and ends in
``..`` and a hash of the job's full override list. The resolver ``lth.job_dir`` (registered when
this module is imported, used by ``hydra.sweep.subdir`` in conf/config.yaml) computes it; a job
directory of the earlier ``<job num>_<all overrides>`` scheme that already exists is kept, so a
sweep started before resumes into its own directories.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Collection, Sequence
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

MAX_NAME_BYTES = 128  # file systems allow 255 bytes per name
HASH_CHARS = 8
_SEPARATORS = re.compile(r"([,\[\]{}\s]+)")  # between the elements of a list or mapping value


def short_value(value: str) -> str:
    """``value`` without quotes, each element containing ``/`` reduced to its last component:
    ``/data/mnist/`` -> ``mnist``, ``[https://a.org/x/,b]`` -> ``[x,b]``."""
    parts = _SEPARATORS.split(value.replace("'", "").replace('"', ""))
    return "".join(p.rstrip("/").rpartition("/")[2] if "/" in p else p for p in parts)


def describe(overrides: Sequence[str], exclude: Collection[str] = ()) -> str:
    """The overrides whose key is not in ``exclude``, sorted, as ``key=value`` joined by commas."""
    items = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if override.key_or_group in exclude:
            continue
        key = ("~" if override.is_delete() else "") + override.key_or_group.replace("/", ".")
        if override.value_type is None:  # ~key
            items.append(key)
        else:
            items.append(f"{key}={short_value(override.get_value_element_as_str())}")
    return ",".join(sorted(items))


def capped(name: str, overrides: Sequence[str]) -> str:
    """``name`` if it fits in ``MAX_NAME_BYTES``, else its start, ``..`` and a hash of ``overrides``."""
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:HASH_CHARS]
    start = name.encode()[: MAX_NAME_BYTES - 2 - HASH_CHARS].decode(errors="ignore")
    return f"{start}..{digest}"


def job_name(num: int, overrides: Sequence[str], exclude: Collection[str] = ()) -> str:
    """``<num>_<swept overrides>`` (just ``<num>`` when the sweep varies nothing), at most 128 bytes."""
    body = describe(overrides, exclude)
    return capped(f"{num}_{body}" if body else str(num), overrides)


def legacy_name(num: int, overrides: Sequence[str]) -> str:
    """The name Hydra gave before: ``${hydra.job.num}_${hydra.job.override_dirname}``, nothing excluded."""
    return f"{num}_{','.join(sorted(overrides))}"


def job_dir(num: int, overrides: Sequence[str], exclude: Collection[str], sweep_dir: str) -> str:
    """The resolver ``lth.job_dir``: the job's directory name under ``sweep_dir``."""
    legacy = legacy_name(num, overrides)
    if os.path.isdir(os.path.join(sweep_dir, legacy)):  # False also for a name the file system refuses
        return legacy
    return job_name(num, overrides, exclude)


def natural_key(text: str) -> list[int | str]:
    """Sort key ordering embedded numbers by value: ``2_x`` before ``10_x``."""
    return [int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", text))]


def run_label(hydra: DictConfig) -> str | None:
    """A job's readable name (W&B's run name): in a sweep its directory's name, in a single run its
    overrides as in ``describe`` (cut like a directory name); None without overrides."""
    if hydra.mode == RunMode.MULTIRUN:
        return Path(hydra.runtime.output_dir).name
    overrides = list(hydra.overrides.task)
    return capped(describe(overrides), overrides) or None


OmegaConf.register_new_resolver("lth.job_dir", job_dir)
