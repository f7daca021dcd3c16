"""Start-up: composing and checking a config loads no torch, Lightning, W&B or matplotlib, and the
torch-free names the checks allow are exactly the keys of the registries that implement them."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from lth.analysis import names as analysis_names
from lth.analysis.suite import ANALYSES
from lth.lottery import names as lottery_names
from lth.lottery.at_init import SALIENCIES
from lth.lottery.optim import OPTIMIZERS, SCHEDULES
from lth.lottery.pruning import CRITERIA
from lth.lottery.restarts import WEIGHT_RULES
from lth.models import names as model_names
from lth.models.initializers import INITIALIZERS

HEAVY = ("torch", "pytorch_lightning", "lightning", "wandb", "matplotlib")


@pytest.mark.parametrize(
    ("registry", "names"),
    [
        (CRITERIA, lottery_names.CRITERIA),
        (SALIENCIES, lottery_names.SALIENCIES),
        (OPTIMIZERS, lottery_names.OPTIMIZERS),
        (SCHEDULES, lottery_names.SCHEDULES),
        (WEIGHT_RULES, lottery_names.WEIGHT_RULES),
        (INITIALIZERS, model_names.INITIALIZERS),
        (ANALYSES, analysis_names.ANALYSES),
    ],
)
def test_each_registry_is_keyed_by_its_torch_free_names(registry: dict[str, object], names: tuple) -> None:
    assert tuple(registry) == names


def test_the_torch_free_names_agree_with_what_they_name() -> None:
    assert set(lottery_names.STRUCTURED_CRITERIA) <= set(lottery_names.CRITERIA)
    assert set(lottery_names.WEIGHT_RULES) <= set(lottery_names.STRATEGIES)
    assert set(analysis_names.NEEDS_MODEL) <= set(analysis_names.ANALYSES)
    assert set(analysis_names.DEFAULT) <= set(analysis_names.ANALYSES)
    for name, function in ANALYSES.items():  # an analysis' knobs are its keyword arguments
        assert analysis_names.KNOBS[name] == tuple(
            p for p in inspect.signature(function).parameters if p != "level"
        )
    knobs = {(name, knob) for name, known in analysis_names.KNOBS.items() for knob in known}
    assert set(analysis_names.KNOB_CHECKS) == knobs


CHECKED = [  # command lines whose every job precheck composes and checks (all valid)
    [],
    ["-m", "experiment=liu_lr"],
    ["-m", "experiment=ts_reinit"],
    ["analysis=[units,clustering]", "analysis_cfg.units.samples=10"],
    ["trainer=ddp", "init=rewind", "prune=snip", "model.init=kaiming_normal", "train.budget=flops"],
    ["-m", "init=reshuffle,signed_reinit", "optim=adam", "optim.schedule=cosine"],
]
REFUSED = [  # and some it refuses, each with its one line
    ["prune.criterion=largest"],
    ["analysis_cfg.units.knob=1"],
    ["init=ticket"],
    ["data=teacher_student", "data.teacher_weights=uniform"],
]


def test_composing_and_checking_a_config_imports_no_torch(tmp_path: Path) -> None:
    """``python -m lth.train --cfg job`` whole (the checks, then Hydra's own composition), then the
    checks of other command lines: none of them imports torch, Lightning, W&B or matplotlib."""
    code = f"""
import runpy, sys
from lth.run.config import precheck
sys.argv[1:] = ["--cfg", "job"]
runpy.run_module("lth.train", run_name="__main__", alter_sys=True)
assert all(precheck(argv) is None for argv in {CHECKED!r}), "a valid command line refused"
assert all(precheck(argv).startswith("lth: invalid config: ") for argv in {REFUSED!r})
print("loaded:", sorted(m for m in {HEAVY!r} if m in sys.modules))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "loaded: []"
