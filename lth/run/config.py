"""Config checks that run before anything is built: one line naming the key and what it allows."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

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
from omegaconf import DictConfig, ListConfig, OmegaConf

# the names each key allows, torch-free: composing and checking a config imports no torch (nor Lightning, W&B)
from lth.analysis.names import ANALYSES, KNOB_CHECKS, KNOBS, NEEDS_MODEL
from lth.data.download import is_file_name
from lth.errors import ConfigError, invalid
from lth.lottery.names import (
    BUDGETS,
    CRITERIA,
    NORMS,
    OPTIMIZERS,
    OUTPUT_LAYER,
    PRUNED_WEIGHTS,
    SALIENCIES,
    SCHEDULES,
    SCOPES,
    STRATEGIES,
    STRUCTURED_CRITERIA,
    STRUCTURES,
)
from lth.models.names import INITIALIZERS, TEACHER_WEIGHTS
from lth.run.sweeper import check_sweeper
from lth.run.threads import trainer_checks
from lth.run.ticket import ticket_source

CONF_DIR = Path(__file__).parents[1] / "conf"
# full precision, or Lightning's autocast around each step (weights stay float32, so inputs need no cast)
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")


def _fail(key: str, value: Any, allowed: str) -> None:
    raise invalid(key, value, allowed)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check(cfg: DictConfig, key: str, ok: Callable[[Any], bool], allowed: str) -> None:
    value = cfg
    for part in key.split("."):
        value = value.get(part) if isinstance(value, DictConfig) else None
    if not ok(value):
        _fail(key, value, allowed)


def _one_of(options: Iterable[str]) -> tuple[Callable[[Any], bool], str]:
    options = sorted(options)
    return (lambda v: v in options), "one of " + ", ".join(options)


def _int_in(low: int, high: float = float("inf")) -> tuple[Callable[[Any], bool], str]:
    text = f"an integer >= {low}" if high == float("inf") else f"an integer in [{low}, {high}]"
    return (lambda v: _is_int(v) and low <= v <= high), text


OPEN_UNIT = (lambda v: _is_number(v) and 0 < v < 1), "a number in (0, 1)"
POSITIVE = (lambda v: _is_number(v) and v > 0), "a number > 0"
NON_NEGATIVE = (lambda v: _is_number(v) and v >= 0), "a number >= 0"
TENSOR_RATES = (
    lambda v: (
        v is None or (isinstance(v, DictConfig) and all(_is_number(r) and 0 <= r < 1 for r in v.values()))
    ),
    "null or a mapping of tensor names to rates in [0, 1), e.g. {features.conv2.weight: 0}",
)
MIRRORS = (
    lambda v: (
        isinstance(v, ListConfig)
        and len(v) > 0
        and all(str(u).startswith(("http://", "https://")) for u in v)
    ),
    "a non-empty list of http(s) base URLs, tried in order",
)
MD5S = (
    lambda v: (
        isinstance(v, DictConfig)
        and len(v) > 0
        and all(is_file_name(str(k)) and re.fullmatch(r"[0-9a-f]{32}", str(h)) for k, h in v.items())
    ),
    "a non-empty mapping of file names to lowercase hex MD5s, e.g. {t10k-labels-idx1-ubyte.gz:ec29112d...}",
)


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value lth cannot run with."""
    steps = cfg.train.get("steps")
    checks: list[tuple[str, tuple[Callable[[Any], bool], str]]] = [
        ("seed", _int_in(0)),
        ("train.steps", _int_in(1)),
        ("train.batch_size", _int_in(1)),
        ("train.eval_every", _int_in(1)),
        ("train.budget", _one_of(BUDGETS)),
        ("train.budget_cap", ((lambda v: _is_number(v) and v >= 1), "a number >= 1")),
        ("train.replicates", _int_in(1)),
        ("data.val_size", _int_in(1)),
        ("prune.levels", _int_in(0)),
        ("prune.rate", OPEN_UNIT),
        ("prune.scope", _one_of(SCOPES)),
        ("prune.criterion", _one_of(CRITERIA)),
        ("prune.structure", _one_of(STRUCTURES)),
        ("prune.norm", ((lambda v: v in NORMS), "one of 1, 2")),
        ("prune.exclude", ((lambda v: isinstance(v, ListConfig)), "a list of tensor names")),
        ("prune.rates", TENSOR_RATES),
        ("init.name", _one_of(STRATEGIES)),
        ("init.pruned_weights", _one_of(PRUNED_WEIGHTS)),
        ("optim.name", _one_of(OPTIMIZERS)),
        ("optim.lr", POSITIVE),
        ("optim.weight_decay", NON_NEGATIVE),
        ("optim.schedule", _one_of(SCHEDULES)),
        ("optim.warmup_steps", _int_in(0, steps if _is_int(steps) else float("inf"))),
    ]
    for key in ("output_rate", "conv_rate"):
        if cfg.prune.get(key) is not None:
            checks.append((f"prune.{key}", OPEN_UNIT))
    if cfg.train.get("checkpoint_every") is not None:
        checks.append(("train.checkpoint_every", _int_in(1)))
    checks.append(("trainer.precision", _one_of(PRECISIONS)))
    checks.append(("trainer.verbose", ((lambda v: isinstance(v, bool)), "true or false")))
    if "cuda_graphs" in cfg.trainer:
        checks.append(
            ("trainer.cuda_graphs", ((lambda v: v in ("auto", True, False)), "one of auto, true, false"))
        )
    checks += trainer_checks(cfg)
    if "gradient_clip_val" in cfg.trainer:  # lth writes its optimizer steps out; Lightning clips none
        checks.append(("trainer.gradient_clip_val", ((lambda v: v is None), "null")))
    if "accumulate_grad_batches" in cfg.trainer:
        checks.append(("trainer.accumulate_grad_batches", ((lambda v: v == 1), "1 (raise train.batch_size)")))
    at_init = cfg.prune.get("at_init")
    if at_init is not None:
        checks.append(
            ("prune.at_init", ((lambda v: v in SALIENCIES), "null or one of " + ", ".join(SALIENCIES)))
        )
    if at_init == "synflow":
        checks.append(("prune.iterations", _int_in(1)))
    if at_init in ("snip", "grasp"):
        checks.append(("prune.batches", _int_in(1)))
    if cfg.prune.get("structure", "unstructured") != "unstructured":  # structured: layer-wise weight norms
        checks += [
            ("prune.scope", _one_of(["layer"])),
            ("prune.criterion", _one_of(STRUCTURED_CRITERIA)),
            ("prune.at_init", ((lambda v: v is None), "null")),
            ("init.name", _one_of(set(STRATEGIES) - {"random_prune"})),
        ]
    if cfg.prune.get("learned"):  # one run that trains the scores of frozen weights
        checks += [
            ("init.name", _one_of(set(STRATEGIES) - {"ticket"})),
            ("prune.levels", _int_in(0, 0)),
            ("prune.at_init", ((lambda v: v is None), "null")),
            ("prune.structure", _one_of(["unstructured"])),
        ]
    if "momentum" in cfg.optim:
        checks.append(("optim.momentum", ((lambda v: _is_number(v) and 0 <= v < 1), "a number in [0, 1)")))
    if "init" in cfg.model:
        checks.append(("model.init", _one_of(INITIALIZERS)))
    if "width_multiplier" in cfg.model:
        checks.append(("model.width_multiplier", POSITIVE))
    checks.append(("data.label_noise", ((lambda v: _is_number(v) and 0 <= v <= 1), "a number in [0, 1]")))
    if "depth" in cfg.model:
        depth_ok = (
            (lambda v: _is_int(v) and v >= 8 and (v - 2) % 6 == 0),
            "an integer 6n+2 >= 8 (20, 32, 44, 56, 110)",
        )
        checks.append(("model.depth", depth_ok))
    if "download" in cfg.data:
        checks.append(("data.download", ((lambda v: isinstance(v, bool)), "true or false")))
    if "mirrors" in cfg.data:
        checks += [("data.mirrors", MIRRORS), ("data.md5", MD5S)]
    if cfg.init.get("name") == "rewind":
        checks.append(("init.rewind_step", _int_in(0, steps)))
    ticket = cfg.init.get("name") == "ticket"
    if ticket:
        checks += [
            (
                "init.ticket.level",
                (
                    (lambda v: v is None or (_is_int(v) and v >= 0)),
                    "null (the last level) or an integer >= 0",
                ),
            ),
            ("init.ticket.output_layer", _one_of(OUTPUT_LAYER)),
            ("prune.at_init", ((lambda v: v is None), "null with init=ticket (the ticket brings its masks)")),
        ]
    if cfg.get("logger") and cfg.logger.get("_target_") == "lth.run.loggers.wandb_logger":
        checks += [
            ("logger.offline", ((lambda v: v in ("auto", True, False)), "one of auto, true, false")),
            ("logger.tags", ((lambda v: isinstance(v, ListConfig)), "a list of tags, e.g. [imp,mnist1d]")),
            ("logger.log_tickets", ((lambda v: isinstance(v, bool)), "true or false")),
        ]
    checks += analysis_checks(cfg)
    if "teacher_seed" in cfg.data:
        checks += teacher_student_checks(cfg)
    elif "teacher_hidden" in cfg.model:
        _fail("model", "student", "model=student only with data=teacher_student")
    if _is_int(cfg.train.get("replicates")) and cfg.train.replicates > 1:
        checks += replicate_checks(cfg)
    for key, (ok, allowed) in checks:
        _check(cfg, key, ok, allowed)
    if ticket:
        ticket_source(cfg)  # the source job's files


def analysis_checks(cfg: DictConfig) -> list[tuple[str, tuple[Callable[[Any], bool], str]]]:
    """Checks of ``analysis`` (names) and ``analysis_cfg.<name>.<knob>`` (known knobs, their values)."""
    names = _one_of(ANALYSES)[1].removeprefix("one of ")
    checks = [
        (
            "analysis",
            (
                (lambda v: v is None or (isinstance(v, ListConfig) and all(n in ANALYSES for n in v))),
                f"a list of analyses from: {names}",
            ),
        )
    ]
    knobs = cfg.get("analysis_cfg") or {}
    for name in knobs:
        if name not in ANALYSES:
            _fail("analysis_cfg", name, f"analyses from: {names}")
        known = KNOBS[name]
        for knob in knobs[name] or {}:
            if knob not in known:
                _fail(f"analysis_cfg.{name}", knob, "knobs " + (", ".join(known) or "none"))
            checks.append((f"analysis_cfg.{name}.{knob}", KNOB_CHECKS[name, knob]))
    return checks


def replicate_checks(cfg: DictConfig) -> list[tuple[str, tuple[Callable[[Any], bool], str]]]:
    """What ``train.replicates`` > 1 cannot run with (the README's list)."""
    why = f"with train.replicates={cfg.train.replicates}"
    prune = cfg.prune
    # flops: a level's length follows its per-tensor survivor counts, the same in every replicate when
    # each tensor is pruned at its own rate (layer scope), or when the only level is dense
    same_counts = prune.get("scope") == "layer" or (prune.get("levels") == 0 and prune.get("at_init") is None)
    flops = (
        f"steps {why} and prune.scope={prune.get('scope')} (each replicate would keep its own count per "
        "tensor, so its own level lengths, and the stack trains in lockstep); flops with prune.scope=layer"
    )
    devices = cfg.trainer.get("devices", 1)
    return [
        ("train.budget", ((lambda v: v == "steps" or (v == "flops" and same_counts)), flops)),
        (
            "trainer.devices",
            (
                (lambda v: not isinstance(v, int) or v <= cfg.train.replicates),
                f"at most {cfg.train.replicates} {why} (each device trains its share of the replicates)",
            ),
        ),
        (
            "trainer.strategy",
            (
                (lambda v: v in (None, "auto", "ddp") or devices in (1, "1")),
                f"auto or ddp {why} (the replicates are spread over the devices)",
            ),
        ),
    ]


def teacher_student_checks(cfg: DictConfig) -> list[tuple[str, tuple[Callable[[Any], bool], str]]]:
    """Checks of ``data=teacher_student`` (and ``model=student``)."""
    batch = cfg.train.get("batch_size")
    checks = [
        # SNIP and GraSP score with a classification loss; SynFlow is data-free
        ("prune.at_init", ((lambda v: v in (None, "synflow")), "null or synflow with data=teacher_student")),
        ("data.input_dim", _int_in(1)),
        ("data.output_dim", _int_in(1)),
        (
            "data.hidden",
            (
                (lambda v: isinstance(v, ListConfig) and all(_is_int(w) and w > 0 for w in v)),
                "a list of positive integers",
            ),
        ),
        ("data.teacher_weights", _one_of(TEACHER_WEIGHTS)),
        ("data.label_noise", ((lambda v: v == 0), "0 with data=teacher_student (regression targets)")),
        ("data.teacher_seed", _int_in(0)),
        ("data.sigma", POSITIVE),
        (
            "data.samples",
            (
                (lambda v: v == "infinite" or (_is_int(v) and v >= batch)),
                f"infinite or an integer >= train.batch_size ({batch})",
            ),
        ),
        ("data.test_size", _int_in(1)),
        ("data.match_threshold", ((lambda v: _is_number(v) and -1 <= v < 1), "a number in [-1, 1)")),
    ]
    if cfg.data.get("retrain_teacher_seed") is not None:
        checks.append(("data.retrain_teacher_seed", _int_in(0)))
    regression = (
        lambda v: not set(v or []) & set(NEEDS_MODEL),
        "analyses without " + ", ".join(NEEDS_MODEL) + " (they measure accuracy) with data=teacher_student",
    )
    return [*checks, ("analysis", regression)]


def check_tensor_names(cfg: DictConfig, prunable: list[str]) -> None:
    """Every tensor named in ``prune.exclude`` and ``prune.rates`` must be a prunable tensor of the model."""
    allowed = "names of prunable tensors: " + ", ".join(prunable)
    for key, names in (("prune.exclude", cfg.prune.exclude), ("prune.rates", cfg.prune.rates or {})):
        for name in names:
            if name not in prunable:
                _fail(key, name, allowed)
    if set(prunable) <= set(cfg.prune.exclude):
        _fail(
            "prune.exclude",
            list(cfg.prune.exclude),
            "a list that leaves at least one of " + ", ".join(prunable),
        )


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
        _fail(key, path, f"a directory lth can create and write ({existing} is not a writable directory)")
