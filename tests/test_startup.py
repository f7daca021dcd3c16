"""Start-up: the torch-free names the config checks allow are exactly the keys of the registries that
implement them."""

from __future__ import annotations

import inspect

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
