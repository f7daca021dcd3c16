"""``report.md``: the table of verdicts, then per claim its statement, numbers, command and plot."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import lth
from lth.claims.runner import command
from lth.claims.spec import Result
from lth.files import atomic_write_text
from lth.run.provenance import cpu_model, git_state


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(
    results: Sequence[Result], out: Path, quick: bool, seed: int, seconds: float, extra: Sequence[str]
) -> str:
    passed = sum(r.passed for r in results)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    commit, dirty = git_state(Path(lth.__file__).parent)
    code = f"commit {commit[:10]}{' (with changes)' if dirty else ''}" if commit else "no git checkout"
    when = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        "# lth.claims",
        "",
        f"{passed} of {len(results)} claims pass ({'--quick' if quick else 'full'} scale, seeds from {seed}), "
        f"{seconds:.0f} s in all. Command: `{' '.join(['python -m lth.claims', *sys.argv[1:]])}`; {when}, "
        f"{code}; {cpu_model()}, {os.cpu_count()} CPUs, load average at the end {load}.",
        "",
        "| claim | paper | measured | threshold | verdict | seconds |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        checks = r.outcome.checks if r.outcome else []
        measured = "; ".join(c.measured_text for c in checks) or f"error: {r.error}"
        threshold = "; ".join(c.threshold_text for c in checks) or "-"
        row = [r.claim.name, r.claim.paper, measured, threshold, r.verdict, f"{r.seconds:.0f}"]
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    for r in results:
        argv = command(r.claim, out / r.claim.name, quick, seed, extra)
        lines += ["", f"## {r.claim.name}: {r.verdict}", "", f"*{r.claim.paper}.* {r.claim.statement}", ""]
        if r.outcome:
            lines += [r.outcome.details, ""]
            lines += [f"- {'pass' if c.passed else 'FAIL'}: {c}" for c in r.outcome.checks]
            lines.append("")
        if r.error:
            lines += [f"Error: {r.error}", ""]
        lines += [
            f"Sweep (`python -m lth.report {r.claim.name}` tabulates it): `python -m lth.train {' '.join(argv[3:])}`",
        ]
        if r.plot:
            lines += ["", f"![{r.claim.name}]({r.plot})"]
    return "\n".join(lines) + "\n"


def write(
    results: Sequence[Result], out: Path, quick: bool, seed: int, seconds: float, extra: Sequence[str]
) -> Path:
    path = out / "report.md"
    atomic_write_text(path, markdown(results, out, quick, seed, seconds, extra))
    return path
