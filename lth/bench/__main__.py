"""``python -m lth.bench [--replicates | --sweep | --cuda | --compare-threads N ...]``: see ``lth.bench.cli``."""

from lth.bench.cli import main

main()
