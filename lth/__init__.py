"""lth: Lottery Ticket Hypothesis experiments as Hydra sweeps on PyTorch Lightning."""

__version__ = "0.1.0"
