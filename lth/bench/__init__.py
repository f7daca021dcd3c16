"""``python -m lth.bench``: how fast lth trains, one module per benchmark.

``raw_loop`` (lth's step against a hand-written PyTorch loop, the default), ``threads``
(``--compare-threads``), ``replicates`` (``--replicates``), ``sweep`` (``--sweep``), ``cuda`` (``--cuda``),
``common`` (what they share: data, clocks, configs) and ``cli`` (``main``). The top floor: it may import
lth.run and the science (lottery, models, data, analysis) beneath it; nothing in lth imports it. It
times lth through its public entry points (``build_job(..., callbacks=...)``, ``execute``), never by
replacing library code.
"""
