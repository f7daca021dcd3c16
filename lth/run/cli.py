"""What ``python -m lth.train`` does around Hydra, kept light: nothing here imports torch, Lightning or W&B.

Importing this module registers the ``${lth.job_dir:...}`` resolver that names sweep job directories
(``lth.run.naming``); ``lth.train``'s task function refers to it, so a launcher that ships the task
function to another process (submitit) imports it there too.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from hydra._internal.utils import get_args_parser
from omegaconf import DictConfig, open_dict

from lth.errors import ConfigError
from lth.run import naming  # noqa: F401  (registers the job-directory resolver)
from lth.run.config import precheck
from lth.run.resume import NO_JOB, is_rank_zero, pinned_argv
from lth.run.sweeper import STACK_KEY


def _no_litlogger_advert(record: logging.LogRecord) -> bool:
    return "litlogger" not in record.getMessage()


def quiet_third_party_noise(verbose: bool = False) -> None:
    """Keep the console to lth's own lines: Lightning's device lines, tips and hints, matplotlib's font
    cache note, and wandb's banners, history and summary stay off unless ``verbose``
    (``trainer.verbose=true``). Lightning's advert for its LitLogger and the FutureWarning it triggers
    through torch's ``LeafSpec`` always go."""
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_no_litlogger_advert)  # once
    for name in ("pytorch_lightning.utilities.rank_zero", "matplotlib"):  # device lines; font cache built
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
    )
    warnings.filterwarnings("default" if verbose else "ignore", message=r"The `srun` command is available")
    os.environ["WANDB_SILENT"] = "false" if verbose else "true"


def prepare(argv: list[str]) -> list[str]:
    """Check every job of the command line (one-line error, exit 2), then pin its output directory."""
    problem = precheck(argv)
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(2)
    return pinned_argv(argv)


def summarize(argv: list[str]) -> None:
    """After a sweep: one table of all its jobs (name, levels, final weights and test accuracy, status)."""
    args = get_args_parser().parse_args(argv)
    sweep = [a.partition("=")[2] for a in argv if a.startswith("hydra.sweep.dir=")]
    if not (args.multirun and sweep and is_rank_zero()) or any(getattr(args, a) for a in NO_JOB):
        return
    from rich.console import Console

    from lth.run.console import sweep_table

    Console().print(sweep_table(Path(sweep[-1])))


def job(cfg: DictConfig) -> list[dict[str, Any]]:
    """Run one job of the command line; a config error is its one line and exit code 2."""
    quiet_third_party_noise(bool(cfg.trainer.get("verbose", False)))  # before Lightning is imported
    from lth.run.job import run
    from lth.run.job_dir import RunDirectory

    try:
        stack = cfg.get(STACK_KEY)
        if stack is None:
            return run(cfg)
        with open_dict(cfg):  # the host job of a stacked sweep's stack: its members are in the manifest
            del cfg[STACK_KEY]
        from lth.run.stack import load_members, logs_in

        members = load_members(stack)
        with logs_in(members):
            return run(cfg, members)
    except ConfigError as exc:
        RunDirectory(cfg.paths.output_dir).discard_if_unused()
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
