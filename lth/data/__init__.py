"""LightningDataModules that hold every dataset in memory as tensors."""

from lth.data.memory import InMemoryDataModule, ShuffledBatches, StepStream

__all__ = ["InMemoryDataModule", "ShuffledBatches", "StepStream"]
