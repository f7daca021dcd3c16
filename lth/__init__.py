"""lth: Lottery Ticket Hypothesis experiments as Hydra sweeps on PyTorch Lightning.

Floors, low to high (tests/test_layout.py checks that each imports only its own and those beneath):
the ground (``errors``, ``seeds``, ``files``, ``exports``: plain Python); the science side by side,
``models``, ``data``, ``analysis`` and ``lottery`` (which wraps ``models``), never importing ``run``,
``report`` or ``bench``, nor Hydra or W&B; ``run``, the edge (Lightning, Hydra, W&B around the
lottery); on top the entry points ``train``, ``analyze``, ``report`` and ``bench`` (``python -m
lth.<name>``), which nothing in lth imports.
"""

__version__ = "0.1.0"
