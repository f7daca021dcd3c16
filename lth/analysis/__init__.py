"""Measurements of trained networks: plain functions of tensors and models (no Lightning, Hydra or W&B)."""
