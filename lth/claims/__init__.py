"""``python -m lth.claims``: the source papers' findings rechecked on the current code.

Each claim runs a small-scale sweep of real lotteries (``python -m lth.train -m hydra/sweeper=stacked
experiment=claim_<name> ...``), reads the job directories' files and compares what it measured with a
threshold calibrated over several seed sets (the calibration runs' numbers sit next to each threshold in
:mod:`lth.claims.tickets` and :mod:`lth.claims.structure`). The claims layer sits on top of lth: it
imports ``lth.report`` and nothing in lth imports it.

- :mod:`~lth.claims.spec`: what a claim, a check and an outcome are (torch-free, for ``--list``);
- :mod:`~lth.claims.catalogue`: the six claims, their papers, presets, seeds and quick scale;
- :mod:`~lth.claims.tickets`, :mod:`~lth.claims.structure`: each claim's evaluation of its sweep;
- :mod:`~lth.claims.measure`, :mod:`~lth.claims.plots`: reading the jobs' records, drawing the figures;
- :mod:`~lth.claims.runner`: running the sweeps (subprocesses, a few at a time) and timing them;
- :mod:`~lth.claims.writing`: ``report.md``.
"""
