"""Checks of ``trainer``: precision, lth's own trainer keys (``threads``, ``oversubscribe``, ``verbose``,
``cuda_graphs``), the devices and, on CPU, the DDP ranks against the usable CPUs, and the Lightning
options lth's written-out optimizer steps leave out."""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig, OmegaConf

from lth.run.checks.rules import NULL, TRUE_OR_FALSE, Check, is_int, one_of
from lth.run.threads import local_ranks, on_cpu, usable_cpus

# full precision, or Lightning's autocast around each step (weights stay float32, so inputs need no cast)
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")


def trainer_checks(cfg: DictConfig) -> list[Check]:
    checks = [("trainer.precision", one_of(PRECISIONS)), ("trainer.verbose", TRUE_OR_FALSE)]
    if "cuda_graphs" in cfg.trainer:
        checks.append(
            ("trainer.cuda_graphs", ((lambda v: v in ("auto", True, False)), "one of auto, true, false"))
        )
    checks += device_checks(cfg)
    if "gradient_clip_val" in cfg.trainer:  # lth writes its optimizer steps out; Lightning clips none
        checks.append(("trainer.gradient_clip_val", NULL))
    if "accumulate_grad_batches" in cfg.trainer:
        checks.append(("trainer.accumulate_grad_batches", ((lambda v: v == 1), "1 (raise train.batch_size)")))
    return checks


def device_checks(cfg: DictConfig) -> list[Check]:
    """Checks of ``trainer.threads``, ``trainer.oversubscribe`` and ``trainer.devices``: at least one device, and on CPU, no more
    DDP ranks than usable CPUs unless ``trainer.oversubscribe``. Skipped where SLURM starts the ranks
    (``hydra/launcher=slurm``): there each rank is a task with CPUs of its own."""
    checks: list[Check] = [
        ("trainer.threads", ((lambda v: v == "auto" or (is_int(v) and v >= 1)), "auto or an integer >= 1")),
        ("trainer.oversubscribe", TRUE_OR_FALSE),
        (
            "trainer.devices",
            (
                (
                    lambda v: (
                        v == "auto"
                        or (is_int(v) and v >= 1)
                        or (isinstance(v, ListConfig) and len(v) > 0 and all(is_int(d) and d >= 0 for d in v))
                    )
                ),
                "an integer >= 1, a non-empty list of device indices, or auto",
            ),
        ),
    ]
    launcher = str(OmegaConf.select(cfg, "hydra.launcher._target_", default=""))
    trainer = cfg.trainer
    devices = trainer.get("devices")
    cpus = usable_cpus()
    if (
        "submitit" not in launcher
        and not trainer.get("oversubscribe")
        and (is_int(devices) and devices > cpus)  # (as many ranks as CPUs or fewer always fit)
        and on_cpu(trainer)  # last: under accelerator=auto it asks torch whether there is a GPU
    ):
        checks.append(
            (
                "trainer.devices",
                (
                    lambda _: local_ranks(trainer) <= cpus,
                    f"at most {cpus} (the usable CPUs) DDP processes on CPU; trainer.oversubscribe=true runs more",
                ),
            )
        )
    return checks
