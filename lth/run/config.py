"""Composing and checking every job a command line asks for, before anything is built: one line naming
the key and what it allows (the checks themselves: ``lth.run.checks``)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, OmegaConf

from lth.errors import ConfigError
from lth.run.checks import check_config
from lth.run.checks.rules import fail
from lth.run.sweeper import check_sweeper

CONF_DIR = Path(__file__).parents[1] / "conf"


def _composition_error(exc: ConfigCompositionException, overrides: list[str]) -> str:
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options:
        group, _, value = exc.missing_cfg_file.rpartition("/")
        return f"lth: invalid config: {group}={value}; allowed: one of " + ", ".join(sorted(exc.options))
    unknown = re.match(r"Could not override '(.+)'", str(exc))
    if unknown:
        key = unknown.group(1)
        parent, _, _ = key.rpartition(".")
        others = [o for o in overrides if not o.lstrip("+~").startswith(key + "=")]
        node = compose("config", overrides=others)
        node = OmegaConf.select(node, parent) if parent else node
        if isinstance(node, DictConfig) and key.rpartition(".")[2] in node:  # a mapping given a new key
            cause = str(exc.__cause__ or exc).splitlines()[0]
            return f"lth: invalid config: {key}: {cause}; to replace the mapping: ~{key} '+{key}={{...}}'"
        known = ", ".join(sorted(node.keys())) if isinstance(node, DictConfig) else "none"
        return f"lth: invalid config: {key} is not a config key; keys here: {known}"
    return "lth: invalid config: " + str(exc).strip().splitlines()[0]


def _parse_error(exc: OverrideParseException) -> str:
    """Hydra's grammar message for an override it cannot parse, on one line: the override named once
    (Hydra's "Error parsing override" line goes), a lexer's caret line as the character it points at."""
    override, lexer = exc.override, "LexerNoViableAltException: "
    lines = [line.rstrip() for line in exc.message.splitlines()]
    parts = []
    for line, below in zip(lines, [*lines[1:], ""], strict=True):
        text = line.strip()
        if text in ("", "^", f"Error parsing override '{override}'"):
            continue
        if text.startswith(lexer) and below.strip() == "^":  # the caret sits under the bad character
            at = len(below) - 1 - len(lexer)
            text = (
                f"unexpected character {override[at]!r} at position {at + 1}" if at < len(override) else text
            )
        parts.append("s" + text[1:] if text.startswith("See ") else text)
    return f"lth: invalid config: override {override!r} cannot be parsed: " + "; ".join(parts)


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """The overrides of every job of ``-m overrides``, as Hydra's basic sweeper expands them: the
    composed config's ``hydra.sweeper.params`` (e.g. from an experiment preset) come first, the
    command line after them. Needs an initialised Hydra (``initialize_config_dir``)."""
    parser = OverridesParser.create()
    first = BasicSweeper.split_arguments(parser.parse_overrides(overrides), None)[0][0]
    params = compose("config", overrides=list(first), return_hydra_config=True).hydra.sweeper.get("params")
    expanded = [f"{k}={v}" for k, v in (params or {}).items()] + list(overrides)
    return [list(job) for job in BasicSweeper.split_arguments(parser.parse_overrides(expanded), None)[0]]


def precheck(argv: list[str]) -> str | None:
    """Compose and check every job the command line asks for; return a one-line error, or None.

    Runs before Hydra creates any output directory, so a typo anywhere in a sweep starts no job.
    Sweeps other than comma-separated choices are left to Hydra's own sweeper.
    """
    args = get_args_parser().parse_args(argv)
    if args.config_name or args.config_path or args.config_dir:
        return None
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            jobs = sweep_jobs(args.overrides) if args.multirun else [args.overrides]
        except OverrideParseException as exc:
            return _parse_error(exc)
        except ConfigCompositionException as exc:
            return _composition_error(exc, list(args.overrides))
        except HydraException:
            return None
        for overrides in jobs:
            try:
                cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
            except OverrideParseException as exc:
                return _parse_error(exc)
            except ConfigCompositionException as exc:
                return _composition_error(exc, list(overrides))
            try:
                check_config(cfg)
                if args.multirun:
                    check_sweeper(cfg.hydra)
                key = "hydra.sweep.dir" if args.multirun else "hydra.run.dir"
                check_creatable(key, OmegaConf.select(cfg, key))
            except ConfigError as exc:
                return str(exc)
    return None


def check_creatable(key: str, path: str) -> None:
    """``path`` exists as a writable directory, or its nearest existing ancestor is one."""
    existing = Path(path).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        fail(key, path, f"a directory lth can create and write ({existing} is not a writable directory)")
