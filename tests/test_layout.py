"""The layout of lth, read statically with ``ast`` from every module under lth/: each module lives on a
floor and imports only from its own floor and the floors beneath it, and no modules import each other
round in a cycle.

Every import counts, those inside functions and under ``if TYPE_CHECKING:`` too, with two exceptions in
the cycle check only: an import under ``if TYPE_CHECKING:`` never runs, so it cannot close a cycle at
import time and is left out of the graph there (it still counts for the floors). A lazily exported name
(``from lth.lottery import Lottery``, served by the package's ``_HOMES``) is an import of the module it
lives in, and the package imports each of its homes on first use.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

LTH = Path(__file__).resolve().parents[1] / "lth"

# The floors, low to high. A floor names the modules it holds (a name covers the module and everything
# under it; the longest name wins) and the floors its modules may import besides their own; each of
# those must lie lower in this list. Floors side by side (models, data, analysis) know nothing of each
# other. The config checks in lth.run read each package's torch-free names.py (a names module imports
# nothing of lth but the ground floor: test_names_modules_import_only_the_ground_floor).
GROUND = ("lth", "lth.errors", "lth.seeds", "lth.files", "lth.exports")  # "lth" is lth/__init__.py alone
EDGE = ("run", "lottery", "analysis", "models", "data", "ground")  # what the top may import
REPORT_PARTS = ("overlap", "curves", "plots", "tables", "jobs")  # lth.report's modules beneath its cli
BENCHMARKS = ("raw_loop", "threads", "replicates", "sweep", "cuda")  # lth.bench's, one per benchmark
FLOORS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # floor: (modules, floors it may import)
    "ground": (GROUND, ()),
    "models": (("lth.models",), ("ground",)),  # models know nothing of masks
    "data": (("lth.data",), ("ground",)),  # data knows nothing of models
    "lottery": (("lth.lottery",), ("models", "ground")),  # masks wrap lth.models.layers
    "analysis": (("lth.analysis",), ("ground",)),  # reads weights and records, not models or masks
    "run": (("lth.run",), ("lottery", "analysis", "models", "data", "ground")),  # Lightning, Hydra, W&B
    # the top: reports and entry points (python -m lth.<name>), none imported by lth nor by each other.
    # lth.report: its command line (cli) over the figures, over the plots, over the tables, over the jobs
    "report.jobs": (("lth.report.jobs",), EDGE),
    "report.tables": (("lth.report.tables",), ("report.jobs", *EDGE)),
    "report.plots": (("lth.report.plots",), ("report.tables", "report.jobs", *EDGE)),
    "report.curves": (("lth.report.curves",), ("report.plots", "report.tables", "report.jobs", *EDGE)),
    "report.overlap": (("lth.report.overlap",), ("report.plots", "report.tables", "report.jobs", *EDGE)),
    "report": (("lth.report",), tuple(f"report.{m}" for m in REPORT_PARTS) + EDGE),
    # lth.bench: its command line (cli) over the benchmarks, which know nothing of each other, over common
    "bench.common": (("lth.bench.common",), EDGE),
    **{f"bench.{b}": ((f"lth.bench.{b}",), ("bench.common", *EDGE)) for b in BENCHMARKS},
    "bench": (("lth.bench",), (*(f"bench.{b}" for b in BENCHMARKS), "bench.common", *EDGE)),
    "train": (("lth.train",), EDGE),
    "analyze": (("lth.analyze",), EDGE),
    # above the top: the papers' claims rechecked (python -m lth.claims) run sweeps and read them with lth.report
    "claims": (("lth.claims",), ("report", *(f"report.{m}" for m in REPORT_PARTS), *EDGE)),
}


@dataclass(frozen=True)
class Import:
    target: str  # the lth module imported
    type_checking: bool  # under ``if TYPE_CHECKING:``: never runs


def module_name(path: Path) -> str:
    parts = path.relative_to(LTH.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(LTH.rglob("*.py"))}


@cache
def lazy_homes(package: str) -> dict[str, str]:
    """A package's lazy exports: name -> the module it lives in (its ``_HOMES``, read statically)."""
    path = modules().get(package)
    if path is None or path.name != "__init__.py":
        return {}
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if any(isinstance(t, ast.Name) and t.id == "_HOMES" for t in targets):
            return {name: f"{package}.{home}" for name, home in ast.literal_eval(node.value).items()}
    return {}


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def walk(node: ast.AST, type_checking: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node under ``node``, and whether it sits in the body of an ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and is_type_checking(child.test):
            for stmt in child.body:
                yield stmt, True
                yield from walk(stmt, True)
            for stmt in child.orelse:
                yield stmt, type_checking
                yield from walk(stmt, type_checking)
        else:
            yield child, type_checking
            yield from walk(child, type_checking)


@cache
def imports(module: str) -> tuple[Import, ...]:
    """Every lth module ``module`` imports, at any depth of its code."""
    path, known = modules()[module], modules()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[Import] = set()
    for node, type_checking in walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {Import(a.name, type_checking) for a in node.names if a.name.split(".")[0] == "lth"}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            source = ".".join([*base, *([node.module] if node.module else [])])
            if source.split(".")[0] != "lth":
                continue
            for alias in node.names:  # a submodule, a lazy export's home, or the module itself
                submodule = f"{source}.{alias.name}"
                target = submodule if submodule in known else lazy_homes(source).get(alias.name, source)
                found.add(Import(target, type_checking))
    if module in known and path.name == "__init__.py":  # the package imports its homes on first use
        found |= {Import(home, False) for home in lazy_homes(module).values()}
    return tuple(sorted((i for i in found if i.target != module), key=lambda i: (i.target, i.type_checking)))


def floor_of(module: str) -> str:
    def covers(prefix: str) -> bool:
        return module == prefix or (prefix != "lth" and module.startswith(f"{prefix}."))

    matches = [(len(p), floor) for floor, (prefixes, _) in FLOORS.items() for p in prefixes if covers(p)]
    assert matches, f"{module} lies on no floor: add it to FLOORS in tests/test_layout.py"
    return max(matches)[1]


def test_floors_only_look_down() -> None:
    order = list(FLOORS)
    for floor, (_, below) in FLOORS.items():
        assert all(order.index(b) < order.index(floor) for b in below), f"{floor} may import {below}"


def test_every_module_lies_on_a_floor() -> None:
    assert len(modules()) > 50  # the walk found lth
    for module in modules():
        floor_of(module)


@pytest.mark.parametrize("floor", list(FLOORS))
def test_modules_import_only_their_floor_and_the_floors_below(floor: str) -> None:
    allowed = {floor, *FLOORS[floor][1]}
    wrong = {
        f"{module} imports {i.target} ({floor_of(i.target)})"
        for module in modules()
        if floor_of(module) == floor
        for i in imports(module)
        if floor_of(i.target) not in allowed
    }
    assert not wrong, "\n".join(sorted(wrong))


def test_every_import_names_a_module_of_lth() -> None:
    missing = {f"{m} imports {i.target}" for m in modules() for i in imports(m) if i.target not in modules()}
    assert not missing, "\n".join(sorted(missing))


def test_names_modules_import_only_the_ground_floor() -> None:
    """names.py modules hold what the config allows, torch-free, for the config checks to read."""
    names = [m for m in modules() if m.endswith(".names")]
    assert len(names) >= 3
    wrong = {f"{m} imports {i.target}" for m in names for i in imports(m) if floor_of(i.target) != "ground"}
    assert not wrong, "\n".join(sorted(wrong))


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components of ``graph``, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def shortest_cycle(graph: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """The shortest path start -> ... -> start inside ``within`` (breadth first)."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node] & within):
                if child == start:
                    return [*paths[node], start]
                if child not in paths:
                    paths[child] = [*paths[node], child]
                    nxt.append(child)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """Each import cycle as ``a -> b -> a``: for every module caught in one, the shortest through it."""
    found: set[str] = set()
    for component in strongly_connected(graph):
        if len(component) == 1 and not graph[next(iter(component))] & component:
            continue
        for module in component:
            path = shortest_cycle(graph, module, component)
            first = path.index(min(path[:-1]))  # one rotation for each cycle: from its smallest name
            found.add(" -> ".join([*path[first:-1], *path[:first], path[first]]))
    return sorted(found)


def import_graph() -> dict[str, set[str]]:
    return {
        m: {i.target for i in imports(m) if not i.type_checking and i.target in modules()} for m in modules()
    }


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles between modules of lth:\n" + "\n".join(found)


def test_the_cycle_check_sees_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"d"}, "e": {"a"}}
    assert cycles(graph) == ["a -> b -> c -> a", "d -> d"]
