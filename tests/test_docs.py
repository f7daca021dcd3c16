"""The documentation stays true: its commands pass lth's config check, its API example runs, its config
reference is what conf/ says, and the README stays short. (`make docs` builds the site with --strict.)"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
FENCE = re.compile(r"^ *(```|~~~)")
PLACEHOLDER = re.compile(r"<[^<>]+>")  # <mnist dir>: a value the reader fills in


def load(path: Path, name: str) -> ModuleType:  # a module from a file outside the package
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Command:
    where: str  # page:line
    argv: tuple[str, ...]  # the arguments after `python -m lth.train`
    error: str | None  # the error line the page shows right after it, if any


def fenced_lines(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, lines) of every fenced code block."""
    block: list[str] | None = None
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            if block is None:
                block, start = [], number + 1
            else:
                yield start, block
                block = None
        elif block is not None:
            block.append(line)


def commands(page: Path) -> Iterator[Command]:
    """Every `python -m lth.train ...` in the page's fenced code blocks: a `$ ` prompt, line continuations
    (trailing backslash), trailing `# comments` and anything after `&&`, `;` or `|` are stripped."""
    for start, lines in fenced_lines(page.read_text()):
        joined: list[tuple[int, str]] = []
        carry = ""
        for offset, line in enumerate(lines):
            text = line.strip()
            if text.endswith("\\"):
                carry += text[:-1] + " "
                continue
            joined.append((start + offset, carry + text))
            carry = ""
        for i, (number, text) in enumerate(joined):
            try:
                tokens = shlex.split(PLACEHOLDER.sub("<placeholder>", text.removeprefix("$ ")), comments=True)
            except ValueError:  # not shell (an unbalanced quote in output text)
                continue
            starts = [j for j in range(len(tokens) - 2) if is_lth_train(tokens[j : j + 3])]
            if not starts:
                continue
            tokens = tokens[starts[0] + 3 :]
            for j, token in enumerate(tokens):
                if token in ("&&", ";", "|", "||"):
                    tokens = tokens[:j]
                    break
            following = joined[i + 1][1] if i + 1 < len(joined) else ""
            error = following if following.startswith("lth: invalid config:") else None
            yield Command(f"{page.relative_to(ROOT)}:{number}", tuple(tokens), error)


def is_lth_train(tokens: list[str]) -> bool:
    """``python -m lth.train`` (any python: python3, .venv/bin/python)."""
    return re.fullmatch(r"(.*/)?python[\d.]*", tokens[0]) is not None and tokens[1:] == ["-m", "lth.train"]


ALL = [c for page in PAGES for c in commands(page)]


def runnable(command: Command, tmp: Path) -> tuple[list[str] | None, str]:
    """The argv to check, with placeholders filled in, or None and why it is skipped.

    - `...` standing for "more overrides" is dropped; a value `...` or `<a dir>` (data.root=<mnist dir>,
      hydra.sweep.dir=<dir>) becomes a fresh directory: the precheck reads no dataset files.
    - `init.ticket.from=<a path>` is skipped: the precheck opens the source job, which must be a finished
      lth job on disk (tests/test_tickets.py and tests/test_presets.py run those commands for real).
    """
    argv = []
    for token in command.argv:
        if token == "...":
            continue
        key, _, value = token.partition("=")
        if key.endswith("init.ticket.from"):
            return None, "init.ticket.from names a finished job on disk"
        if value == "..." or PLACEHOLDER.search(value):
            token = f"{key}={tmp / 'placeholder'}"
        argv.append(token)
    return argv, ""


def covering(jobs: list[list[str]]) -> list[list[str]]:
    """A few of ``jobs`` that between them set every ``key=value`` any of them sets (greedy set cover):
    for a grid, as many jobs as its longest list of values, not their product. Of a key's numbers only
    the smallest and the largest need covering (``seed=0,1,2``, ``optim.lr=0.01,0.1``, widths): a
    number between them is of the same kind, so the check costs fewer jobs."""
    values: dict[str, set[str]] = {}
    for job in jobs:
        for override in job:
            key, _, value = override.partition("=")
            values.setdefault(key, set()).add(value)
    left = set()
    for key, seen in values.items():
        numbers = sorted((float(v), v) for v in seen if is_number(v))
        ends = {numbers[0][1], numbers[-1][1]} if numbers else set()
        left |= {f"{key}={v}" for v in seen if not is_number(v) or v in ends}
    chosen = []
    while left:
        best = max(jobs, key=lambda job: len(left & set(job)))
        chosen.append(best)
        left -= set(best)
    return chosen


def is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def plan(argv: list[str], error: str | None) -> list[list[str]]:
    """The argvs whose precheck answers decide ``argv``'s: itself for a single run (or a command the page
    shows failing: its exact error line); for a sweep (``-m``), a covering set of its jobs, each checked
    as a single run, as precheck expands the sweep (a whole sweep of 24 jobs takes ~4 s)."""
    from hydra import initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from lth.run.config import precheck

    if error is not None or "-m" not in argv:
        return [argv]
    config = sys.modules[precheck.__module__]  # sweep_jobs and CONF_DIR live beside precheck
    overrides = get_args_parser().parse_args(argv).overrides
    try:
        if any(o.lstrip("+").startswith("experiment=") for o in overrides):  # its hydra.sweeper.params
            with initialize_config_dir(config_dir=str(config.CONF_DIR), version_base="1.3"):
                jobs = config.sweep_jobs(overrides)
        else:  # the command line alone (what sweep_jobs does, without composing a config first)
            parsed = OverridesParser.create().parse_overrides(overrides)
            jobs = [list(job) for job in BasicSweeper.split_arguments(parsed, None)[0]]
    except Exception:  # a sweep Hydra cannot expand: precheck says why, in its one line
        return [argv]
    return covering(jobs)


def precheck_of(argv: list[str]) -> str | None:
    from lth.run.config import precheck

    return precheck(argv)


def test_the_docs_quote_commands_to_check() -> None:
    pages = {c.where.split(":")[0] for c in ALL}
    assert len(ALL) >= 40 and "README.md" in pages and len(pages) >= 15, (len(ALL), sorted(pages))


COMMANDS = sorted(set(ALL), key=lambda c: c.where)


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[Command, str | None]:
    """precheck's answer for every runnable command: the first error of its planned argvs, each distinct
    argv checked once however many pages quote it."""
    tmp = tmp_path_factory.mktemp("docs")
    todo = [(c, argv) for c in COMMANDS if (argv := runnable(c, tmp)[0]) is not None]
    plans = [plan(argv, c.error) for c, argv in todo]
    distinct = list(dict.fromkeys(tuple(a) for argvs in plans for a in argvs))
    checked = {a: precheck_of(list(a)) for a in distinct}  # make test spreads the tests over the cores
    return {
        c: next((checked[tuple(a)] for a in argvs if checked[tuple(a)] is not None), None)
        for (c, _), argvs in zip(todo, plans, strict=True)
    }


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.where)
def test_every_quoted_command_passes_the_config_check(
    command: Command, answers: dict[Command, str | None], tmp_path: Path
) -> None:
    argv, why = runnable(command, tmp_path)
    if argv is None:
        pytest.skip(why)
    assert answers[command] == command.error, f"{command.where}: python -m lth.train {shlex.join(argv)}"


def test_the_api_example_drives_a_lottery_to_nested_masks(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    example = load(DOCS / "examples" / "own_loop.py", "docs_example_own_loop")
    lottery, masks = example.main()
    records = lottery.state.records
    assert [r.level for r in records] == [0, 1, 2, 3] and lottery.state.status == "complete"
    for level in range(1, 4):  # each event keeps a subset of the survivors: 80% (output layer 90%)
        for name, mask in masks[level].items():
            before, after = int(masks[level - 1][name].sum()), int(mask.sum())
            assert not (mask & ~masks[level - 1][name]).any(), (level, name)
            rate = 0.1 if name == "4.weight" else 0.2
            assert after == before - round(rate * before), (level, name)
    network = lottery.network
    for name in network.prunable:  # pruned weights are exactly zero at the end
        assert torch.equal(
            network.weights()[name][~masks[-1][name]], torch.zeros(int((~masks[-1][name]).sum()))
        )
    assert records[-1].weights_remaining == pytest.approx(network.remaining_total())
    assert all(r.test_acc > 0.9 for r in records)  # separable classes: every ticket learns them
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[:3] == ["level", "weights", "%"] and len(printed) == 5
    assert [float(line.split()[1]) for line in printed[1:]] == [
        round(100 * r.weights_remaining, 1) for r in records
    ]

    _, again = example.main()  # the same seed gives the same lottery
    assert all(torch.equal(again[-1][k], masks[-1][k]) for k in masks[-1])


def test_the_readme_is_at_most_200_lines() -> None:
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= 200, f"README.md has {lines} lines; move detail into docs/"


def test_the_config_reference_is_what_conf_says() -> None:
    generator = load(DOCS / "gen_config_reference.py", "docs_gen_config_reference")
    assert generator.PAGE.read_text() == generator.render(), (
        "docs/reference/config.md is stale: run python docs/gen_config_reference.py"
    )


def leaves(tree: object, prefix: str = "") -> set[str]:
    """The dotted keys of a YAML mapping's values that are not mappings themselves."""
    if isinstance(tree, dict):
        return {key for k, v in tree.items() for key in (leaves(v, f"{prefix}{k}.") if v else {prefix + k})}
    return {prefix[:-1]}


def test_the_config_reference_lists_every_key_of_every_file() -> None:
    generator = load(DOCS / "gen_config_reference.py", "docs_gen_config_reference")
    files = sorted(generator.CONF.rglob("*.yaml"))
    assert len(files) >= 50
    page = generator.PAGE.read_text()
    for path in files:
        entries = generator.parse(path).entries  # a mapping's own row has no value, its keys follow it
        listed = {
            e.key for e in entries if e.value or not any(o.key.startswith(e.key + ".") for o in entries)
        }
        assert listed == leaves(yaml.safe_load(path.read_text()) or {}), path
        group = path.parent.relative_to(generator.CONF)
        heading = "## `config.yaml`" if path.parent == generator.CONF else f"### `{group}={path.stem}`"
        assert heading in page, path
