"""``hydra/sweeper=stacked``: a sweep whose compatible lotteries train as stacks, one process each.

The grid expands exactly as Hydra's basic sweeper expands it (same jobs, same job numbers); each job's
config is composed and its directory named as the unstacked sweep would name it (``hydra.sweep.subdir``
with that job's number). Jobs with equal ``lth.run.stacking.stack_key`` (in job order) make one stack,
at most ``max_stack`` lotteries (a job with ``train.replicates=R`` brings its R replicates, never split).
The sweeper prints one line (``lth: 8 jobs in 2 stacks (they differ in model.hidden)``) and launches one
launcher job per stack (any launcher: basic, joblib, submitit):

- a stack of several jobs runs in ``<sweep dir>/.stacks/stack_<i>_<hash>`` (hidden: no report or
  sweep table lists it; it holds the stack's checkpoints and, once every member is done, its DONE). The
  sweeper writes each member's ``.hydra/{config,hydra,overrides}.yaml`` as Hydra writes them for the
  unstacked job, and ``stack_<i>_<hash>.yaml`` beside the stack's directory (each member's job number, overrides
  and directory), passed to the job as ``+lth_stack=<that file>``; the job (``lth.run.cli.job``) loads
  each member from its ``.hydra`` files (``lth.run.stack.load_members``) and trains them all
  (``lth.run.job.run(host, members)``);
- a stack of one job is that job, launched as the unstacked sweep launches it, in its own directory.

A stack whose lotteries are all done is not launched again, so rerunning the command finishes only
what is left; an interrupted stack resumes from its checkpoint (its directory is named by its members).
The stacks are formed before any job starts; torch is imported only for ``max_stack=auto``'s estimate of
a lottery's memory (``lth.run.stack_memory``).
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.grammar.utils import escape_special_characters
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import _save_config
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from lth.errors import invalid
from lth.run.stack_memory import Fit, auto_fit
from lth.run.stacking import incompatibility, stack_key

STACKS_DIR = ".stacks"  # under the sweep directory; hidden from lth.report and the sweep table
STACK_KEY = "lth_stack"  # the override that gives a stack's job its members' manifest


Key = tuple[tuple[str, Any], ...]  # lth.run.stacking.stack_key: what lotteries of one stack share


@dataclass
class Member:
    """One job of the grid: its number, overrides, directory and composed configs."""

    num: int
    overrides: list[str]
    output_dir: Path
    config: DictConfig  # with its ``hydra`` node, as Hydra's launcher composes it
    resolved: DictConfig  # the job's config, resolved as the job resolves it
    key: Key

    @property
    def lotteries(self) -> int:
        """How many lotteries the job trains: itself, or its ``train.replicates``."""
        return int(self.resolved.train.replicates)

    @property
    def done(self) -> bool:
        return (self.output_dir / "DONE").exists()


def max_stack_size(value: Any) -> int | None:
    """``max_stack``: a positive integer, or ``auto`` (None: as many as fit in memory, ``lth.run.stack_memory``)."""
    if str(value).lower() == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid("hydra.sweeper.max_stack", value, "an integer >= 1 or auto")
    return value


def memory_size(value: Any) -> float | None:
    """``memory_gb``: null (the free memory found where the stack trains), or a positive number of GB."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise invalid("hydra.sweeper.memory_gb", value, "a number of GB > 0, or null (the free memory found)")
    return float(value)


def check_sweeper(hydra: DictConfig) -> None:
    """A ``ConfigError`` for what the stacked sweeper (when it is the sweeper) cannot run with: a bad
    ``max_stack`` or ``memory_gb``, or no ``.hydra`` files (each stacked job's config is read back from them)."""
    if not str(hydra.sweeper.get("_target_", "")).endswith(".StackedSweeper"):
        return
    max_stack_size(hydra.sweeper.max_stack)
    memory_size(hydra.sweeper.get("memory_gb"))
    if hydra.output_subdir is None:
        raise invalid(
            "hydra.output_subdir",
            None,
            "a directory name with hydra/sweeper=stacked (it reads each job's config there)",
        )


def by_key(members: list[Member]) -> dict[Key, list[Member]]:
    """The members of each stack key, in job order."""
    keyed: dict[Key, list[Member]] = {}
    for member in members:
        keyed.setdefault(member.key, []).append(member)
    return keyed


def group(members: list[Member], max_stack: int | Mapping[Key, int]) -> list[list[Member]]:
    """Members with equal stack keys, in job order, in stacks of at most ``max_stack`` lotteries (one
    number, or one per key: ``max_stack=auto``'s fits); a job with ``train.replicates=R`` counts R and
    is never split, and one of more than ``max_stack`` is a stack of its own. A group the stack checks
    refuse (``incompatibility``, e.g. a flops budget with prune.scope=global) runs its jobs one by one."""
    stacks: list[list[Member]] = []
    for key, same in by_key(members).items():
        cap = max_stack if isinstance(max_stack, int) else max_stack[key]
        chunks: list[list[Member]] = [[]]
        for member in same:
            if chunks[-1] and sum(m.lotteries for m in chunks[-1]) + member.lotteries > cap:
                chunks.append([])
            chunks[-1].append(member)
        for chunk in chunks:
            if len(chunk) > 1 and incompatibility([m.resolved for m in chunk]):
                stacks += [[m] for m in chunk]
            else:
                stacks.append(chunk)
    return sorted(stacks, key=lambda s: s[0].num)


def differing_keys(stacks: list[list[Member]]) -> list[str]:
    """The stack-key entries that differ between stacks (what splits the grid)."""
    keys = [dict(s[0].key) for s in stacks]
    names = sorted(set().union(*keys))
    return [n for n in names if len({k.get(n) for k in keys}) > 1]


def summary(n_jobs: int, stacks: list[list[Member]], fits: Mapping[Key, Fit] | None = None) -> str:
    """``lth: 8 jobs in 2 stacks (they differ in model.hidden)``; ``lth: 2 jobs (4 lotteries) in 1 stack``;
    with ``fits`` (``max_stack=auto``), a split it made names the fit (``max_stack=auto: 4 lotteries ...``)."""
    lotteries = sum(m.lotteries for s in stacks for m in s)
    text = f"lth: {n_jobs} job{'s' if n_jobs != 1 else ''}"
    if lotteries != n_jobs:  # jobs of train.replicates
        text += f" ({lotteries} lotteries)"
    text += f" in {len(stacks)} stack{'s' if len(stacks) != 1 else ''}"
    differ = differing_keys(stacks)
    if differ:
        shown = ", ".join(differ[:4]) + (f" and {len(differ) - 4} more" if len(differ) > 4 else "")
        text += f" (they differ in {shown})"
    elif len(stacks) > 1 and fits:
        text += f" ({fits[stacks[0][0].key].describe()})"
    elif len(stacks) > 1:
        text += " (at most hydra.sweeper.max_stack each)"
    return text


def stack_name(i: int, stack: list[Member]) -> str:
    """``stack_<i>_<hash of its members' directories>``: a rerun that groups otherwise resumes nothing."""
    digest = hashlib.sha256("\n".join(str(m.output_dir) for m in stack).encode()).hexdigest()[:8]
    return f"stack_{i}_{digest}"


def _override(key: str, value: str) -> str:
    return f"{key}={escape_special_characters(value)}"


class StackedSweeper(BasicSweeper):
    """Hydra's basic sweeper, launching one job per stack of compatible lotteries (module docstring)."""

    def __init__(
        self,
        max_stack: Any = "auto",
        memory_gb: Any = None,
        max_batch_size: int | None = None,
        params: dict[str, str] | None = None,
    ) -> None:
        # BasicSweeper.__init__ calls super(BasicSweeper, self): Hydra's plugin scan executes its module
        # again, so that name is no longer this class's base; its attributes are set here instead
        Sweeper.__init__(self)
        self.overrides = None
        self.batch_index = 0
        self.max_batch_size = max_batch_size
        self.params = params or {}
        self.hydra_context = None
        self.config = None
        self.launcher = None
        self.max_stack = max_stack_size(max_stack)
        self.memory_gb = memory_size(memory_gb)

    def compose(self, num: int, overrides: list[str]) -> Member:
        """Job ``num``'s config and directory, as Hydra's launcher and ``run_job`` make them."""
        assert self.hydra_context is not None and self.config is not None
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = num
            config.hydra.job.num = num
        previous = HydraConfig.instance().cfg
        try:
            HydraConfig.instance().set_config(config)
            output_dir = os.path.join(str(config.hydra.sweep.dir), str(config.hydra.sweep.subdir))
            with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
                config.hydra.runtime.output_dir = os.path.abspath(output_dir)
            HydraConfig.instance().set_config(config)
            task = copy.deepcopy(config)
            with read_write(task), open_dict(task):
                del task["hydra"]
            resolved = OmegaConf.create(OmegaConf.to_container(task, resolve=True))
        finally:
            HydraConfig.instance().cfg = previous
        output_dir = Path(config.hydra.runtime.output_dir)
        return Member(num, list(overrides), output_dir, config, resolved, stack_key(resolved))

    def write_hydra_files(self, member: Member) -> None:
        """The member's ``.hydra/`` files, as Hydra's ``run_job`` writes them for the unstacked job."""
        config = member.config
        if config.hydra.output_subdir is None:
            return
        task = copy.deepcopy(config)
        with read_write(task), open_dict(task):
            del task["hydra"]
        hydra_dir = member.output_dir / str(config.hydra.output_subdir)
        _save_config(task, "config.yaml", hydra_dir)
        _save_config(OmegaConf.masked_copy(config, "hydra"), "hydra.yaml", hydra_dir)
        _save_config(config.hydra.overrides.task, "overrides.yaml", hydra_dir)

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        params = [*self._parse_config(), *arguments]
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        jobs = [list(j) for j in self.split_arguments(parser.parse_overrides(params), None)[0]]
        self.overrides = [jobs]
        self.batch_index = 1

        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        members = [self.compose(num, overrides) for num, overrides in enumerate(jobs)]
        fits = None
        if self.max_stack is None:  # auto: each key's lotteries as many as fit in memory
            fits = {key: auto_fit(same[0].resolved, self.memory_gb) for key, same in by_key(members).items()}
        caps = self.max_stack or {key: fit.lotteries for key, fit in (fits or {}).items()}
        stacks = group(members, caps)
        print(summary(len(jobs), stacks, fits), flush=True)
        batch = []
        for i, stack in enumerate(stacks):
            if all(m.done for m in stack):
                continue
            if len(stack) == 1:  # the unstacked job, in its own directory
                subdir = os.path.relpath(stack[0].output_dir, sweep_dir.absolute())
                batch.append([*stack[0].overrides, _override("hydra.sweep.subdir", subdir)])
                continue
            name = stack_name(i, stack)
            manifest = sweep_dir.absolute() / STACKS_DIR / f"{name}.yaml"
            manifest.parent.mkdir(parents=True, exist_ok=True)
            for member in stack:
                self.write_hydra_files(member)
            entries = [
                {"num": m.num, "overrides": m.overrides, "output_dir": str(m.output_dir)} for m in stack
            ]
            manifest.write_text(OmegaConf.to_yaml(OmegaConf.create({"members": entries})))
            batch.append(
                [
                    *stack[0].overrides,
                    _override("hydra.sweep.subdir", f"{STACKS_DIR}/{name}"),
                    _override(f"+{STACK_KEY}", str(manifest)),
                ]
            )
        if not batch:
            return []
        results = self.launcher.launch(batch, initial_job_idx=0)
        for r in results:
            _ = r.return_value  # a failed job raises here, as in the basic sweeper
        return [results]
