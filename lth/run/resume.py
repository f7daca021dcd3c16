"""Before Hydra starts: fix the output directory and print the command that resumes it.

A rerun resumes only in the same directory, and the default one is a timestamp. ``lth.train``
resolves it once, appends it to the command line (``hydra.sweep.dir=...`` or ``hydra.run.dir=...``)
and prints it with the exact command that resumes the run: a sweep's at once, a single run's once its
job has passed its checks (``announce``), so a refused job prints its one error line only. For a
sweep it also tells Hydra which keys the sweep does not vary, so job directories are named by the
swept ones (``lth.run.naming``).
"""

from __future__ import annotations

import os
import shlex
from collections import defaultdict
from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from hydra._internal.grammar.utils import escape_special_characters
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf

from lth.run.config import CONF_DIR, sweep_jobs

COMMAND = ("python", "-m", "lth.train")
EXCLUDE_KEYS = "hydra.job.config.override_dirname.exclude_keys"
# options after which Hydra prints something and runs no job
NO_JOB = ("cfg", "help", "hydra_help", "info", "shell_completion", "experimental_rerun")
_pending: list[str] = []  # a single run's directory and resume command, printed by announce()


def is_rank_zero() -> bool:
    """False in the processes a launcher starts for ranks > 0 (DDP re-runs the command line in them)."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if key in os.environ:
            return int(os.environ[key]) == 0
    return True


def fixed_keys(jobs: Sequence[Sequence[str]]) -> list[str]:
    """The override keys every job of a sweep sets to the same value."""
    parser = OverridesParser.create()
    lines: defaultdict[str, list[tuple[str, ...]]] = defaultdict(list)
    for job in jobs:
        by_key: defaultdict[str, list[str]] = defaultdict(list)
        for override in parser.parse_overrides(list(job)):
            by_key[override.key_or_group].append(str(override.input_line))
        for key, values in by_key.items():
            lines[key].append(tuple(values))
    return sorted(k for k, v in lines.items() if len(v) == len(jobs) and len(set(v)) == 1)


def resume_command(argv: Sequence[str], key: str, directory: str) -> str:
    """``argv`` as a shell command, with ``key`` (any value of it replaced) set to ``directory``."""
    kept = [a for a in argv if not a.startswith(f"{key}=")]
    return shlex.join([*COMMAND, *kept, f"{key}={escape_special_characters(directory)}"])


def pinned_argv(argv: list[str]) -> list[str]:
    """``argv`` with the output directory fixed and, for a sweep, its unvaried keys excluded from the job
    names; prints the directory and the command that resumes it. Unchanged when Hydra will run no job
    or the command line is not one ``precheck`` composes."""
    args = get_args_parser().parse_args(argv)
    if args.config_name or args.config_path or args.config_dir or any(getattr(args, a) for a in NO_JOB):
        return argv
    key = "hydra.sweep.dir" if args.multirun else "hydra.run.dir"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            jobs = sweep_jobs(args.overrides) if args.multirun else [args.overrides]
        except HydraException:  # a sweep Hydra's basic sweeper cannot expand: Hydra reports it
            return argv
        directory = str(OmegaConf.select(compose("config", list(jobs[0]), return_hydra_config=True), key))
    pinned = [*argv, f"{key}={escape_special_characters(directory)}"]
    if args.multirun and not any(a.startswith(f"{EXCLUDE_KEYS}=") for a in argv):
        pinned.append(f"{EXCLUDE_KEYS}=[{','.join(repr(k) for k in fixed_keys(jobs))}]")
    if is_rank_zero():
        kind = "sweep" if args.multirun else "output"
        _pending[:] = [
            f"lth: {kind} directory {directory}; to resume it, rerun:",
            f"  {resume_command(argv, key, directory)}",
        ]
        if args.multirun:
            announce()
    return pinned


def announce() -> None:
    """Print the pinned output directory and its resume command, if not yet printed."""
    for line in _pending:
        print(line, flush=True)
    _pending.clear()
