"""CPU threads of a job (``trainer.threads``) and the checks of DDP ranks against the usable CPUs.

``trainer.threads=auto`` resolves to 1 for a model under ``SMALL_MODEL`` parameters (its ops are too
small to split); else to the CPUs this process may use (``SLURM_CPUS_PER_TASK``, else the affinity
mask) divided among the processes sharing them: the DDP ranks Lightning starts on this machine and
the jobs the ``local_parallel`` launcher runs at once; at most ``OMP_NUM_THREADS`` where that is set,
at least 1. The count sets torch's intra-op and inter-op threads. ``lth.run.checks.trainer`` checks
the DDP ranks against the usable CPUs.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf

if TYPE_CHECKING:  # torch is imported where a GPU or a model is asked about: the config checks need neither
    import torch

SMALL_MODEL = 1_000_000  # parameters
LTH_KEYS = (
    "threads",
    "oversubscribe",
    "verbose",
    "cuda_graphs",
)  # trainer keys of lth's own, not Lightning's Trainer's
JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"

log = logging.getLogger("lth")


def usable_cpus() -> int:
    """CPUs this process may use: ``SLURM_CPUS_PER_TASK`` under SLURM, else the affinity mask."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # macOS: no affinity masks


def on_cpu(trainer: DictConfig) -> bool:
    """Whether the job trains on CPU (``accelerator: cpu``, or ``auto`` without a GPU)."""
    accelerator = trainer.get("accelerator", "auto")
    if accelerator != "auto":
        return accelerator == "cpu"
    import torch

    return not torch.cuda.is_available()


def slurm_starts_ranks() -> bool:
    """Whether SLURM started this process as one rank of its own (Lightning's rule, without
    ``SLURMEnvironment.detect``'s warning wherever ``srun`` is installed)."""
    return "SLURM_NTASKS" in os.environ and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")


def local_ranks(trainer: DictConfig) -> int:
    """The processes Lightning starts on this machine for one job: one per device (more than one
    device means DDP, also under ``strategy: auto``). Under SLURM each rank is a task of its own with
    its own CPUs, so 1."""
    if slurm_starts_ranks():
        return 1
    devices = trainer.get("devices", 1)
    if isinstance(devices, int):
        return devices
    if isinstance(devices, ListConfig | list):
        return len(devices)
    if on_cpu(trainer):  # auto: one CPU process, every GPU
        return 1
    import torch

    return torch.cuda.device_count()


def concurrent_jobs() -> int:
    """How many jobs the ``local_parallel`` (joblib) launcher runs at once, seen from one of its jobs;
    1 under any other launcher. A negative ``n_jobs`` counts back from the usable CPUs (-1: all)."""
    if not HydraConfig.initialized():
        return 1
    launcher = HydraConfig.get().launcher
    if launcher.get("_target_") != JOBLIB_LAUNCHER:
        return 1
    n_jobs = int(launcher.n_jobs)
    return n_jobs if n_jobs > 0 else max(1, usable_cpus() + 1 + n_jobs)


def resolve_threads(setting: int | str, parameters: int, ranks: int, jobs: int) -> int:
    """The thread count of ``trainer.threads=setting`` for a model of ``parameters`` (module docstring)."""
    if setting != "auto":
        return int(setting)
    if parameters < SMALL_MODEL:
        return 1
    share = max(1, usable_cpus() // (ranks * jobs))
    omp = os.environ.get("OMP_NUM_THREADS", "")
    return min(share, int(omp)) if omp.isdigit() and int(omp) > 0 else share


def job_threads(trainer: DictConfig, model: torch.nn.Module, copies: int = 1) -> int:
    """The thread count of this job: ``trainer.threads`` resolved for ``copies`` of ``model`` trained
    together (stacked replicates), and logged."""
    setting = trainer.get("threads", "auto")
    parameters = copies * sum(p.numel() for p in model.parameters())
    ranks, jobs = local_ranks(trainer), concurrent_jobs()
    threads = resolve_threads(setting, parameters, ranks, jobs)
    log.info(
        "lth: %d torch thread(s) (trainer.threads=%s, %d parameters, %d usable CPUs, %d local rank(s), "
        "%d parallel job(s))",
        threads,
        setting,
        parameters,
        usable_cpus(),
        ranks,
        jobs,
    )
    return threads


def apply_threads(n: int) -> None:
    """Set torch's intra-op threads, and its inter-op threads (possible once, before any inter-op work)."""
    import torch

    torch.set_num_threads(n)
    if torch.get_num_interop_threads() != n:
        with contextlib.suppress(RuntimeError):  # already set by an earlier job of this process
            torch.set_num_interop_threads(n)


def lightning_kwargs(trainer: DictConfig) -> dict[str, Any]:
    """``trainer`` without lth's own keys: the keyword arguments of ``pytorch_lightning.Trainer``."""
    kwargs = OmegaConf.to_container(trainer, resolve=True)
    assert isinstance(kwargs, dict)
    return {str(k): v for k, v in kwargs.items() if k not in LTH_KEYS}


def parallel_jobs(trainer: DictConfig) -> int:
    """``local_parallel``'s default ``n_jobs``: usable CPUs / (threads x DDP ranks) of one job, with
    ``trainer.threads=auto`` counted as 1 (its value for small models, and for one job per core)."""
    threads = trainer.get("threads", "auto")
    per_job = (1 if threads == "auto" else int(threads)) * local_ranks(trainer)
    return max(1, usable_cpus() // per_job)


OmegaConf.register_new_resolver("lth.parallel_jobs", parallel_jobs, replace=True)
