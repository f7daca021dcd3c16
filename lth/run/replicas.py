"""Replicates over devices: ``train.replicates=K trainer.devices=G`` (K >= G) runs G processes, as DDP
does, but without DDP: rank ``r`` trains replicates ``r, r+G, ...`` as its own stack on its own device,
with no gradient all-reduce, and writes their files and its own checkpoints (``checkpoints/rank_r/``).
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.plugins.environments import LightningEnvironment, SLURMEnvironment
from pytorch_lightning.strategies import DDPStrategy

from lth.run.threads import local_ranks, slurm_starts_ranks


class ReplicaStrategy(DDPStrategy):
    """DDP's processes and process group, the module left unwrapped: each rank trains its own replicates."""

    def configure_ddp(self) -> None:
        """No DistributedDataParallel: nothing is all-reduced."""

    def setup(self, trainer: pl.Trainer) -> None:
        """No collective per training step either: Lightning broadcasts rank zero's SIGTERM flag before
        every step, which hangs ranks that take different numbers of steps (each resumed from its own
        checkpoint, or its levels ended apart). A SIGTERM still stops each rank (the launcher passes it
        on; every rank checks its own flag after each batch)."""
        super().setup(trainer)
        loop = trainer.fit_loop.epoch_loop
        if not hasattr(loop, "_broadcast_sigterm_tensor"):  # a private API of pytorch-lightning 2.6
            raise RuntimeError(
                f"lth: pytorch-lightning {pl.__version__} has no fit_loop.epoch_loop._broadcast_sigterm_tensor, "
                "which lth turns off for replicates spread over ranks (lth.run.replicas; written for "
                "pytorch-lightning 2.6): install pytorch-lightning 2.6.x"
            )
        loop._broadcast_sigterm_tensor = lambda: None

    def save_checkpoint(self, checkpoint: dict[str, Any], filepath: Any, storage_options: Any = None) -> None:
        """Every rank saves its own (its replicates' weights and lotteries)."""
        self.checkpoint_io.save_checkpoint(checkpoint, filepath, storage_options=storage_options)


def replica_rank(trainer: DictConfig) -> tuple[int, int]:
    """This process's rank and the number of ranks of a replicate job, as Lightning will number them
    (node rank x processes per node + local rank, from the launcher's or SLURM's environment)."""
    nodes = int(trainer.get("num_nodes", 1))
    if slurm_starts_ranks():
        env = SLURMEnvironment()
        per_node = int(env.world_size()) // nodes
        return env.node_rank() * per_node + env.local_rank(), int(env.world_size())
    env = LightningEnvironment()
    per_node = local_ranks(trainer)
    return env.node_rank() * per_node + env.local_rank(), nodes * per_node
