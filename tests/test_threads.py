"""trainer.threads resolved from SLURM, the affinity mask, DDP ranks and parallel jobs; DDP on CPU
limited to the usable CPUs; trainer.devices below 1 refused in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from torch import nn

from lth.errors import ConfigError
from lth.run.callback import Threads
from lth.run.config import CONF_DIR, check_config
from lth.run.job import build_job
from lth.run.threads import (
    SMALL_MODEL,
    apply_threads,
    concurrent_jobs,
    job_threads,
    lightning_kwargs,
    local_ranks,
    resolve_threads,
    usable_cpus,
)

BIG, SMALL = SMALL_MODEL, SMALL_MODEL - 1
CPUS = len(os.sched_getaffinity(0))


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No SLURM and no OMP_NUM_THREADS in the environment; an affinity mask of 8 CPUs."""
    for var in ("SLURM_CPUS_PER_TASK", "SLURM_NTASKS", "SLURM_JOB_NAME", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    return monkeypatch


def test_auto_threads_share_the_affinity_mask_among_ranks_and_jobs(machine: pytest.MonkeyPatch) -> None:
    assert usable_cpus() == 8
    assert resolve_threads("auto", BIG, ranks=1, jobs=1) == 8
    assert resolve_threads("auto", BIG, ranks=2, jobs=1) == 4
    assert resolve_threads("auto", BIG, ranks=2, jobs=3) == 1  # 8 // 6
    assert resolve_threads("auto", BIG, ranks=4, jobs=4) == 1  # never 0
    assert resolve_threads("auto", SMALL, ranks=1, jobs=1) == 1  # small models: 1
    assert resolve_threads(3, SMALL, ranks=2, jobs=2) == 3  # a set count is kept
    machine.setenv("OMP_NUM_THREADS", "2")
    assert resolve_threads("auto", BIG, ranks=1, jobs=1) == 2  # at most OMP_NUM_THREADS


def test_auto_threads_under_slurm_are_the_task_cpus(machine: pytest.MonkeyPatch) -> None:
    machine.setenv("SLURM_CPUS_PER_TASK", "6")
    assert usable_cpus() == 6
    assert resolve_threads("auto", BIG, ranks=1, jobs=2) == 3


def test_ddp_ranks_on_this_machine_divide_the_cpus(machine: pytest.MonkeyPatch, make_cfg) -> None:
    big = nn.Linear(1000, 1000)  # 1,001,000 parameters
    ddp = make_cfg("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=4").trainer
    assert local_ranks(ddp) == 4 and job_threads(ddp, big) == 2
    assert job_threads(make_cfg("trainer=cpu").trainer, big) == 8
    assert job_threads(make_cfg("trainer=cpu").trainer, nn.Linear(10, 10)) == 1
    # stacked replicates count as one model of all their parameters
    assert job_threads(make_cfg("trainer=cpu").trainer, nn.Linear(1000, 100), copies=10) == 8
    # more than one device is DDP under any strategy, auto included
    assert local_ranks(make_cfg("trainer=cpu", "trainer.devices=2").trainer) == 2
    # under SLURM every rank is a task with CPUs of its own
    machine.setenv("SLURM_NTASKS", "4")
    machine.setenv("SLURM_JOB_NAME", "lth")
    machine.setenv("SLURM_CPUS_PER_TASK", "3")
    assert local_ranks(ddp) == 1 and job_threads(ddp, big) == 3


def hydra_cfg(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=["logger=none", *overrides], return_hydra_config=True)


@pytest.mark.parametrize(("threads", "n_jobs", "job"), [("auto", 8, 1), (2, 4, 2), (3, 2, 3)])
def test_local_parallel_runs_cpus_over_threads_jobs(
    machine: pytest.MonkeyPatch, threads: int | str, n_jobs: int, job: int
) -> None:
    cfg = hydra_cfg("hydra/launcher=local_parallel", "trainer=cpu", f"trainer.threads={threads}")
    assert cfg.hydra.launcher.n_jobs == n_jobs
    machine.setattr(HydraConfig.instance(), "cfg", None)  # restored after the test
    HydraConfig.instance().set_config(cfg)
    assert concurrent_jobs() == n_jobs
    assert job_threads(cfg.trainer, nn.Linear(1000, 1000)) == job  # auto: 8 CPUs / 8 jobs


def test_threads_apply_to_torch_and_stay_out_of_lightning(make_cfg) -> None:
    before = torch.get_num_threads()
    try:
        apply_threads(2)
        assert torch.get_num_threads() == 2
        apply_threads(1)  # inter-op threads are settable once per process: no error the second time
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    kwargs = lightning_kwargs(make_cfg("trainer.threads=2").trainer)
    assert "threads" not in kwargs and "oversubscribe" not in kwargs and kwargs["devices"] == 1


def test_a_job_sets_its_threads_and_sets_them_again_in_every_rank(make_cfg) -> None:
    """build_job applies trainer.threads; its Threads callback reapplies them at setup, after
    Lightning's DDP launcher has set its own count."""
    before = torch.get_num_threads()
    try:
        job = build_job(make_cfg("trainer=cpu", "trainer.threads=2"))
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)  # as Lightning's launcher would
        (threads,) = [c for c in job.trainer.callbacks if isinstance(c, Threads)]
        threads.setup(job.trainer, job.module, "fit")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_more_ddp_ranks_than_cpus_only_when_asked(machine: pytest.MonkeyPatch, make_cfg) -> None:
    ddp = ("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=9")
    with pytest.raises(ConfigError, match=r"trainer.devices=9; allowed: at most 8 \(the usable CPUs\)"):
        check_config(make_cfg(*ddp))
    check_config(make_cfg(*ddp, "trainer.oversubscribe=true"))
    check_config(make_cfg("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=8"))
    check_config(hydra_cfg(*ddp, "hydra/launcher=slurm"))  # SLURM gives every rank its own CPUs


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["trainer.devices=0"],
            "lth: invalid config: trainer.devices=0; allowed: an integer >= 1, "
            "a non-empty list of device indices, or auto",
        ),
        (
            ["trainer=ddp", "trainer.accelerator=cpu", f"trainer.devices={CPUS + 1}"],
            f"lth: invalid config: trainer.devices={CPUS + 1}; allowed: at most {CPUS} (the usable CPUs) "
            "DDP processes on CPU; trainer.oversubscribe=true runs more",
        ),
        (["trainer.threads=0"], "lth: invalid config: trainer.threads=0; allowed: auto or an integer >= 1"),
    ],
    ids=["devices", "oversubscribed", "threads"],
)
def test_cli_refuses_in_one_line(lth_cli, tmp_path: Path, args: list[str], error: str) -> None:
    proc = lth_cli(*args, "logger=none", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    assert proc.stderr.strip() == error
    assert not (tmp_path / "run").exists()


def test_a_replicate_job_applies_its_threads(make_cfg) -> None:
    try:
        build_job(make_cfg("train.replicates=2", "trainer.threads=2"))
        assert torch.get_num_threads() == 2
        build_job(make_cfg("train.replicates=2"))  # auto: small models get one
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(1)
