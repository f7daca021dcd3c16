"""Measurements of trained networks: plain functions of tensors and models (no Lightning, Hydra or W&B).

The redundancy analyses, teacher-student specialisation, ``suite`` (the analyses by name) and ``names``
(their names, knobs and the knobs' checks, torch-free). Science: it imports only the ground floor of
lth, never models, lottery, data, run, report or bench.
"""
