"""Experiment-logger factories referenced from ``conf/logger/``."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

from pytorch_lightning.loggers import WandbLogger


def wandb_credentials_configured() -> bool:
    """True when an API key is in the environment or in ~/.netrc (what ``wandb login`` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def run_name() -> str | None:
    """The job's overrides (``prune.rate=0.2,optim.lr=0.01``) when running under Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().job.override_dirname or None


def wandb_logger(
    project: str, entity: str | None, offline: bool | str, save_dir: str, name: str | None = None
) -> WandbLogger:
    """A WandbLogger that runs offline when ``offline`` is true, or ``auto`` and no credentials exist."""
    if offline == "auto":
        offline = os.environ.get("WANDB_MODE") == "offline" or not wandb_credentials_configured()
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        project=project, entity=entity, save_dir=save_dir, offline=bool(offline), name=name or run_name()
    )
