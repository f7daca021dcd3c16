"""What ``python -m lth.train`` does around Hydra, kept light: nothing here imports Lightning or W&B.

Importing this module registers the ``${lth.job_dir:...}`` resolver that names sweep job directories
(``lth.run.naming``); ``lth.train``'s task function refers to it, so a launcher that ships the task
function to another process (submitit) imports it there too.
"""

from __future__ import annotations

import sys
from typing import Any

from omegaconf import DictConfig

from lth.errors import ConfigError
from lth.run import naming  # noqa: F401  (registers the job-directory resolver)
from lth.run.config import precheck
from lth.run.resume import pinned_argv


def prepare(argv: list[str]) -> list[str]:
    """Check every job of the command line (one-line error, exit 2), then pin its output directory."""
    problem = precheck(argv)
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(2)
    return pinned_argv(argv)


def job(cfg: DictConfig) -> list[dict[str, Any]]:
    """Run one job of the command line; a config error is its one line and exit code 2."""
    from lth.run.console import quiet_third_party_noise
    from lth.run.job import run

    quiet_third_party_noise()
    try:
        return run(cfg)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
