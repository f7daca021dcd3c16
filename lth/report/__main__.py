"""``python -m lth.report <sweep or run dir> [--out DIR]``: see ``lth.report.cli``."""

from lth.report.cli import main

main()
