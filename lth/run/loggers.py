"""lth's experiment logger: the W&B factory referenced from ``conf/logger/wandb.yaml`` and starting and
closing a job's loggers (``lth.run.every_logger`` logs to each of them).

A W&B run is one job: grouped by its sweep, named like its directory, with the resolved config and the
job's provenance (``meta/...``, as in ``meta.json``) as its config, per-step curves, one row per level
on a ``level`` axis, and the results as a table; each replicate of a ``train.replicates`` job is a job
here too, its run open beside the others'. W&B is a convenience, never a dependency of the results:
if it fails to start the job logs to CSV instead, and if it fails later the job goes on without it
(both with a one-line warning)."""

from __future__ import annotations

import functools
import logging
import netrc
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger
from pytorch_lightning.utilities.rank_zero import rank_zero_only
from torch import Tensor

from lth.lottery.record import SCALAR_FIELDS, LevelRecord
from lth.run.every_logger import LotteryLogger, level_metrics
from lth.run.naming import run_label

log = logging.getLogger("lth")

DEFAULT_JOB_TYPE = "lottery"
MAX_GROUP_LENGTH = 128  # W&B's limit on group names


def wandb_credentials_configured() -> bool:
    """True when an API key is in the environment or in ~/.netrc (what ``wandb login`` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def _hydra() -> Any:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def run_name() -> str | None:
    """The job's name under Hydra: its sweep directory's name (``3_optim.lr=0.01,prune.rate=0.2``), or
    a single run's overrides."""
    hydra = _hydra()
    return run_label(hydra) if hydra else None


def sweep_group() -> str | None:
    """A name unique to the sweep: its directory (a single run's: the run directory), at most 128 chars."""
    from hydra.types import RunMode

    hydra = _hydra()
    if hydra is None:
        return None
    directory = hydra.sweep.dir if hydra.mode == RunMode.MULTIRUN else hydra.run.dir
    return str(directory)[-MAX_GROUP_LENGTH:]


def experiment_name() -> str:
    """The ``experiment=`` preset chosen on the command line, else ``lottery``."""
    hydra = _hydra()
    choice = hydra.runtime.choices.get("experiment") if hydra else None
    return choice or DEFAULT_JOB_TYPE


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


Method = TypeVar("Method", bound=Callable[..., None])


def _tolerant(method: Method) -> Method:
    """Run a W&B call; on its first failure warn once, then skip every later W&B call of the job."""

    @functools.wraps(method)
    def call(self: LotteryWandbLogger, *args: Any, **kwargs: Any) -> None:
        if self.failed:
            return
        try:
            method(self, *args, **kwargs)
        except Exception as exc:
            self.failed = True
            log.warning("lth: W&B failed (%s); the job goes on without W&B", _one_line(exc))

    return cast(Method, call)


class LotteryWandbLogger(WandbLogger):
    """WandbLogger with the lottery's level axis, results table and (optionally) tickets as artifacts."""

    def __init__(self, *, log_tickets: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._wandb_init.pop("anonymous")  # Lightning always passes it; wandb warns that it has no effect
        self.log_tickets = log_tickets
        self.failed = False
        self._defined: set[str] = set()

    @rank_zero_only
    def start(self, config: Mapping[str, Any]) -> None:
        """Create the run now (raising what ``wandb.init`` raises) with ``config`` and the level axis."""
        run = self.experiment
        run.config.update(dict(config), allow_val_change=True)
        run.define_metric("level/level")

    def as_replicate(self, k: int) -> None:
        """Make this replicate ``k``'s run: named ``<the job's name>/replicate_k``, and one of several runs
        open at once in the process (``wandb.init(reinit="create_new")``, which leaves ``wandb.run`` alone)."""
        name = self._wandb_init.get("name")
        replicate = f"{name}/replicate_{k}" if name else f"replicate_{k}"
        self._wandb_init |= {"name": replicate, "reinit": "create_new"}

    def beside_others(self) -> None:
        """Make this run one of several open at once in the process (a member of a stack), its name kept."""
        self._wandb_init |= {"reinit": "create_new"}

    @rank_zero_only
    @_tolerant
    def update_config(self, values: Mapping[str, Any]) -> None:
        self.experiment.config.update(dict(values), allow_val_change=True)

    @rank_zero_only
    @_tolerant
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        super().log_metrics(metrics, step)

    @rank_zero_only
    @_tolerant
    def log_level(self, record: Mapping[str, Any]) -> None:
        """One row per level. Every ``level/*`` metric is defined against the ``level/level`` axis, so
        ``level/weights_remaining`` can be any chart's x axis (accuracy vs. sparsity)."""
        metrics = level_metrics(record)
        for key in metrics.keys() - self._defined - {"level/level"}:
            self.experiment.define_metric(key, step_metric="level/level")
            self._defined.add(key)
        self.experiment.log(metrics)

    @rank_zero_only
    @_tolerant
    def log_ticket(self, level: int, masks: Mapping[str, Tensor], weights: Mapping[str, Tensor]) -> None:
        """With ``log_tickets``: the masks a level trains with and the model state it starts from, as
        version ``level-<level>`` of the artifact ``ticket-<run id>``."""
        if not self.log_tickets:
            return
        import wandb

        artifact = wandb.Artifact(f"ticket-{self.experiment.id}", type="ticket", metadata={"level": level})
        for name, tensors in (("masks.pt", masks), ("weights.pt", weights)):
            with artifact.new_file(name, mode="xb") as f:
                torch.save({k: t.detach().cpu() for k, t in tensors.items()}, f)
        self.experiment.log_artifact(artifact, aliases=[f"level-{level}"])

    @rank_zero_only
    @_tolerant
    def log_results(self, records: Sequence[LevelRecord]) -> None:
        """The per-level results (``results.jsonl``) as the table ``results``."""
        import wandb

        layers = list(records[0].layers) if records else []
        columns = [*SCALAR_FIELDS, *(f"layers/{name}" for name in layers)]
        rows = [[getattr(r, c) for c in SCALAR_FIELDS] + [r.layers.get(n) for n in layers] for r in records]
        self.experiment.log({"results": wandb.Table(columns=columns, data=rows)})

    @rank_zero_only
    def finish(self, finished: bool = True) -> str | None:
        """Close the run, even after a failure, so the next job of the process starts its own run; the
        directory of a run saved offline (what ``wandb sync`` uploads).

        A job that did not finish closes its run as failed (exit code 1): wandb then keeps the run id
        in ``<save_dir>/wandb/wandb-resume.json`` and the rerun that resumes the job continues it."""
        run = self._experiment
        if run is None:
            return None
        try:
            run.finish(exit_code=0 if finished else 1)
        except Exception as exc:
            if not self.failed:
                log.warning("lth: W&B failed to finish the run (%s)", _one_line(exc))
            return None
        return str(run.settings.sync_dir) if run.offline else None


def report_offline_runs(directories: Sequence[str]) -> None:
    """One line saying how to upload the W&B runs saved offline (if any)."""
    if directories:
        runs = "run" if len(directories) == 1 else f"{len(directories)} runs"
        log.info("W&B %s saved offline; upload with: wandb sync %s", runs, " ".join(directories))


def wandb_mode(offline: bool | str) -> str | None:
    """``wandb.init``'s mode: ``offline=auto`` leaves a set ``WANDB_MODE`` to wandb, else goes online
    only with credentials."""
    if offline == "auto":
        if os.environ.get("WANDB_MODE"):
            return None
        offline = not wandb_credentials_configured()
    return "offline" if offline else "online"


def wandb_logger(
    project: str,
    entity: str | None,
    offline: bool | str,
    save_dir: str,
    group: str | None = None,
    job_type: str | None = None,
    tags: Iterable[str] = (),
    log_tickets: bool = False,
    name: str | None = None,
) -> LotteryWandbLogger:
    """The W&B logger of a job; offline when ``offline`` is true, or ``auto`` and no credentials exist.

    ``group``, ``job_type`` and ``name`` default to the sweep directory, the ``experiment=`` preset
    (else ``lottery``) and the job's name (``run_name``). The mode is passed to ``wandb.init`` rather than set
    process-wide (as ``WandbLogger(offline=True)`` does), so one job's mode never leaks into the next.
    """
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return LotteryWandbLogger(
        project=project,
        entity=entity,
        save_dir=save_dir,
        mode=wandb_mode(offline),
        name=name or run_name(),
        group=group or sweep_group(),
        job_type=job_type or experiment_name(),
        tags=list(tags),
        log_tickets=log_tickets,
        resume="auto",  # a rerun of an unfinished job continues its run (see LotteryWandbLogger.finish)
    )


def start_loggers(loggers: Iterable[Logger], config: Mapping[str, Any], csv_dir: str) -> list[Logger]:
    """Start every W&B run; one that fails to start is replaced by a CSV logger, with a one-line warning."""
    started: list[Logger] = []
    for logger in loggers:
        if isinstance(logger, LotteryWandbLogger):
            try:
                logger.start(config)
            except Exception as exc:
                log.warning(
                    "lth: W&B failed to start (%s); logging to CSV in %s/csv", _one_line(exc), csv_dir
                )
                logger.failed = True
                logger = csv_fallback(csv_dir)
        started.append(logger)
    return started


def csv_fallback(csv_dir: str) -> CSVLogger:
    """The CSV logger a job logs to when W&B fails to start: ``<csv_dir>/csv/metrics.csv``."""
    return CSVLogger(csv_dir, name="csv", version="")


def start_replicate_loggers(
    loggers: Sequence[Sequence[Logger]], configs: Sequence[Mapping[str, Any]], csv_dirs: Sequence[str]
) -> list[list[Logger]]:
    """Start each replicate's loggers as a job's (``start_loggers``). W&B failing to start is the
    environment's doing (credentials, network), not a replicate's: after a failure the later replicates
    log to CSV without trying W&B again, so the job warns once."""
    started: list[list[Logger]] = []
    failed = False
    for group, config, csv_dir in zip(loggers, configs, csv_dirs, strict=True):
        if failed:
            group = [csv_fallback(csv_dir) if isinstance(x, LotteryWandbLogger) else x for x in group]
        started.append(start_loggers(group, config, csv_dir))
        failed = failed or any(isinstance(x, LotteryWandbLogger) and x.failed for x in group)
    return started


def finish_loggers(
    loggers: Iterable[Logger], records: Sequence[LevelRecord], finished: bool, config: Mapping[str, Any]
) -> list[str]:
    """Log the results table (of a finished job), update the run config with ``config`` (the job's final
    ``meta/`` entries), and close each W&B run; the directories of the runs saved offline."""
    offline = []
    for logger in loggers:
        if finished and isinstance(logger, LotteryLogger):
            logger.log_results(records)
        if isinstance(logger, LotteryWandbLogger):
            logger.update_config(config)
            directory = logger.finish(finished)
            offline += [directory] if directory else []
    return offline
