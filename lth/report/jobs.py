"""The jobs of a report: each job directory's own files read back (overrides, records, ``DONE``,
``meta.json``), the overrides that vary between jobs, and what the jobs trained (their ``config.yaml``)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from lth.run.readers import DamagedFile, read_job_files, read_meta, read_overrides

IGNORED_KEYS = ("seed", "train.replicates")  # replicates are seeds
OPTIMIZERS = {"sgd": "SGD", "adam": "Adam"}

Group = tuple[str, ...]  # a group's value of each varying override key
Configs = Mapping[Path, Mapping[str, Any]]  # job directory -> its resolved config


@dataclass
class Job:
    """One job directory as written by ``lth.train``."""

    path: Path
    overrides: dict[str, str]
    records: list[dict[str, Any]]
    done: dict[str, Any] | None
    damage: str | None = None  # why its files cannot be read; the job is skipped
    meta: dict[str, Any] | None = None  # its meta.json (None: absent or damaged)

    @property
    def status(self) -> str:
        if self.damage:
            return "damaged"
        return "unfinished" if self.done is None else str(self.done["status"])

    @property
    def problem(self) -> str | None:
        """Why the job is not a clean, complete lottery (None if it is)."""
        if self.damage:
            return self.damage
        bad = [r for r in self.records if r.get("status") != "ok"]
        if self.status == "complete" and not bad:
            return None
        text = f"{self.status}: {len(self.records)} level(s) recorded"
        if bad:
            text += f"; level {bad[0]['level']} {bad[0].get('status')}"
        return text


def _parse_override(text: str) -> tuple[str, str]:
    key, _, value = text.lstrip("+~").partition("=")
    return key, value


def load_job(path: Path) -> Job:
    """A job directory; replicate ``k`` of a ``train.replicates`` job (``<job>/replicate_k``) is a job of
    its own, with the stack's overrides and its own seed."""
    stack = path.parent if path.name.startswith("replicate_") else path
    parsed: dict[str, str] = {}
    try:
        parsed = dict(_parse_override(o) for o in read_overrides(stack / ".hydra" / "overrides.yaml"))
        if stack != path:
            parsed |= {"seed": str(read_config(path).get("seed", ""))}
        job = Job(path, parsed, *read_job_files(path))
    except DamagedFile as exc:
        return Job(path, parsed, [], None, damage=str(exc).removeprefix("lth: "))
    try:
        job.meta = read_meta(path / "meta.json")
    except DamagedFile as exc:  # the results stand; only their provenance is unknown
        print(f"lth.report: warning: {str(exc).removeprefix('lth: ')}", file=sys.stderr)
    return job


def find_jobs(root: Path) -> list[Job]:
    """Every job directory at or below ``root``: where Hydra or lth wrote a job's files (a
    ``train.replicates`` job's replicates, not the job itself)."""
    dirs = {p.parent for name in ("results.jsonl", "DONE") for p in root.rglob(name)}
    dirs |= {p.parent.parent for p in root.rglob(".hydra/overrides.yaml")}
    # not W&B's files, nor a hidden directory's (a stacked sweep's stacks, .stacks/: their lotteries are jobs)
    jobs = [
        d
        for d in sorted(dirs)
        if not any(part == "wandb" or part.startswith(".") for part in d.relative_to(root).parts)
    ]
    return [load_job(d) for d in jobs if not (d / "replicate_0").is_dir()]


def varying_keys(jobs: Sequence[Job]) -> list[str]:
    """Override keys whose value differs between jobs (a key some jobs lack counts), minus the seed."""
    keys = list(dict.fromkeys(k for job in jobs for k in job.overrides))
    return [k for k in keys if k not in IGNORED_KEYS and len({job.overrides.get(k) for job in jobs}) > 1]


def label(keys: Sequence[str], group: Sequence[str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(keys, group, strict=True)) or "all jobs"


# --- the jobs' configs: context for the titles, the seed of a job that did not sweep it -----------------


def read_config(path: Path) -> dict[str, Any]:
    """The resolved ``config.yaml`` lth wrote into the job directory ``path``; ``{}`` if absent or unreadable."""
    try:
        config = OmegaConf.to_container(OmegaConf.load(path / "config.yaml"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}


def seed_of(job: Job, config: Mapping[str, Any]) -> str:
    """The job's seed: its override, else its config's, else ``""`` (unknown)."""
    return job.overrides.get("seed", str(config.get("seed", "")))


def _class_name(target: object, suffix: str = "") -> str:
    name = str(target).rsplit(".", 1)[-1]
    return name.removesuffix(suffix) or name


def describe_model(model: Mapping[str, Any]) -> str:
    """The model's class and size: ``MLP 100-100``, ``ConvNet 2 conv, fc 256-256``, ``ResNet-20``."""
    text = _class_name(model.get("_target_", "?"))
    if "depth" in model:
        text += f"-{model['depth']}"
    convs = sum(1 for item in model.get("plan") or [] if item != "M")
    if convs:
        text += f" {convs} conv"
    multiplier = model.get("width_multiplier", 1)
    widths = [max(1, round(multiplier * w)) for w in model.get("hidden") or model.get("teacher_hidden") or []]
    if widths:
        text += (", fc " if convs else " ") + "-".join(map(str, widths))
    return text


def _describe_optimizer(optim: Mapping[str, Any]) -> str:
    name = str(optim.get("name", "?"))
    return OPTIMIZERS.get(name, name)


@dataclass(frozen=True)
class Context:
    """What a report's jobs trained, from their configs: each field lists the distinct values, ' / '-joined."""

    dataset: str
    model: str
    optimizer: str
    max_steps: int | None  # the most steps of a level (records' steps, train.steps): bounds early stop

    def title(self, *more: str) -> str:
        return " · ".join(part for part in (self.dataset, self.model, self.optimizer, *more) if part)


def context(jobs: Sequence[Job], configs: Sequence[Mapping[str, Any]]) -> Context:
    """The context of ``jobs`` from their ``configs`` (an empty config, a missing file, adds nothing)."""
    known = [c for c in configs if c]

    def values(describe: Callable[[Mapping[str, Any]], str]) -> str:
        return " / ".join(dict.fromkeys(describe(c) for c in known))

    steps = [r["steps"] for job in jobs for r in job.records if isinstance(r.get("steps"), int)]
    steps += [c["train"]["steps"] for c in known if isinstance(c.get("train", {}).get("steps"), int)]
    return Context(
        values(lambda c: _class_name(c.get("data", {}).get("_target_", "?"), "DataModule")),
        values(lambda c: describe_model(c.get("model", {}))),
        values(lambda c: _describe_optimizer(c.get("optim", {}))),
        max(steps, default=None),
    )
