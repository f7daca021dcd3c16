"""LightningDataModules that hold every dataset in memory as tensors."""
