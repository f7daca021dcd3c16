"""``python -m lth.claims [--only NAME ...] [--quick] [--list] [--out DIR]``: recheck the papers' findings.

Runs each claim's sweep, prints one line per claim (verdict, the measured numbers against their
thresholds, seconds) and writes ``<out>/report.md`` with a plot per claim, beside the sweeps' job
directories (``python -m lth.report <out>/<claim>`` reads them). Exit code 0 when every claim passes, 1
when one fails, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import NoReturn

from lth.claims.catalogue import BY_NAME, CLAIMS
from lth.claims.spec import Claim


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit code 2
        self.exit(2, f"lth.claims: {message}\n")


def parser() -> Parser:
    p = Parser(prog="python -m lth.claims", description=__doc__.splitlines()[0])
    p.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="these claims (repeat, or a comma list)"
    )
    p.add_argument("--quick", action="store_true", help="the cheaper scale (fewer seeds, steps, arms)")
    p.add_argument("--list", action="store_true", help="list the claims and exit")
    p.add_argument("--out", type=Path, help="output directory (default claims/<date>/<time>)")
    p.add_argument(
        "--seed", type=int, default=0, help="first seed of each arm (calibration: other seed sets)"
    )
    p.add_argument("--jobs", type=int, default=2, help="sweeps at once (default 2)")
    p.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="appended to every sweep's overrides",
    )
    return p


def chosen(p: Parser, only: Sequence[str]) -> list[Claim]:
    names = [n.strip() for item in only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        p.error(f"unknown claim {unknown[0]!r}; allowed: {', '.join(BY_NAME)}")
    return [c for c in CLAIMS if c.name in names] if names else list(CLAIMS)


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    claims = chosen(p, args.only)
    if args.seed < 0 or args.jobs < 1:
        p.error("--seed must be >= 0 and --jobs >= 1")
    if args.list:
        for c in claims:
            print(f"{c.name:16} {c.paper}: {c.statement}")
        return 0
    from lth.claims import runner, writing

    out = (args.out or Path("claims") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = {}
    for result in runner.run(claims, out, args.quick, args.seed, args.override, args.jobs):
        results[result.claim.name] = result
        print(result.line(), flush=True)
    ordered = [results[c.name] for c in claims]
    report = writing.write(ordered, out, args.quick, args.seed, time.perf_counter() - start, args.override)
    passed = sum(r.passed for r in ordered)
    print(f"lth.claims: {passed} of {len(ordered)} pass in {time.perf_counter() - start:.0f} s; {report}")
    return 0 if passed == len(ordered) else 1


if __name__ == "__main__":
    sys.exit(main())
