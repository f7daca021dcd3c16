"""The analyses of lth.analysis on inputs with a known answer."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from scipy import stats

from lth.analysis.distance import distance
from lth.analysis.level import Level
from lth.analysis.mask_overlap import jaccard, mask_overlap
from lth.analysis.node_distribution import empty_probability, gini, node_distribution, spread
from lth.errors import ConfigError
from lth.run.config import check_config


def level_of(weights: dict[str, torch.Tensor], theta_0: dict[str, torch.Tensor], **more: object) -> Level:
    masks = more.pop("masks", {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()})
    return Level(weights, theta_0, masks, **more)  # type: ignore[arg-type]


def test_distance_is_the_frobenius_norm_of_the_update_absolute_and_relative() -> None:
    start = torch.zeros(3, 4)
    start[0, 0] = 2.0
    trained = start.clone()
    trained[1, 2] = 3.0
    trained[2, 3] = 4.0
    summary, _ = distance(level_of({"fc1.weight": trained}, {"fc1.weight": start}))
    assert summary == {"fc1": {"frobenius": pytest.approx(5.0), "relative": pytest.approx(2.5)}}


def test_the_distance_of_a_ticket_is_taken_from_theta_0_under_its_mask() -> None:
    start = torch.ones(2, 2)
    mask = torch.tensor([[True, False], [True, True]])
    summary, _ = distance(level_of({"w": start * mask}, {"w": start}, masks={"w": mask}))
    assert summary["w"]["frobenius"] == 0.0


def test_jaccard_overlap_of_masks_and_none_at_the_first_level() -> None:
    a = torch.tensor([True, True, False, False])
    b = torch.tensor([True, False, True, False])
    assert jaccard(a, b) == pytest.approx(1 / 3)
    assert jaccard(a & False, b & False) == 1.0
    weights = {"fc1.weight": torch.zeros(4)}
    assert mask_overlap(level_of(weights, weights, masks={"fc1.weight": a}))[0] == {}
    summary, _ = mask_overlap(
        level_of(weights, weights, masks={"fc1.weight": a}, previous_masks={"fc1.weight": b})
    )
    assert summary == {"fc1": {"jaccard": pytest.approx(1 / 3)}, "all": {"jaccard": pytest.approx(1 / 3)}}


def test_gini_of_equal_counts_is_zero_and_of_one_unit_holding_all_is_one_minus_one_over_n() -> None:
    assert gini(np.array([3, 3, 3, 3]))[0] == 0.0
    assert gini(np.array([0, 0, 0, 8]))[0] == pytest.approx(3 / 4)


def test_the_exact_probability_of_an_empty_unit() -> None:
    # 2 of 4 weights survive; a unit of 2 is empty in 1 of the C(4, 2) = 6 draws
    assert empty_probability(4, 2, 2) == pytest.approx(1 / 6)
    assert empty_probability(4, 2, 3) == 0.0


def test_a_mask_concentrated_on_two_units_is_far_from_random() -> None:
    mask = torch.zeros(20, 50, dtype=torch.bool)
    mask[:2] = True  # 100 of 1000 weights, all in units 0 and 1
    summary, tensors = node_distribution(
        level_of({"fc.weight": mask.float()}, {}, masks={"fc.weight": mask}), draws=200
    )
    incoming = summary["fc"]["incoming"]
    assert incoming["p_value"] == pytest.approx(1 / 201)
    assert (
        incoming["dispersion"] > 10
        and incoming["empty"] == 0.9
        and incoming["empty_null"] == pytest.approx(math.comb(950, 100) / math.comb(1000, 100))
    )
    assert incoming["gini"] == pytest.approx(0.9) and incoming["gini_null"] < 0.3
    assert incoming["conditional"] == 1.0 and incoming["lift"] == pytest.approx(999 / 99)
    assert summary["fc"]["outgoing"]["dispersion"] == 0.0  # every input keeps exactly 2 weights
    assert tensors["fc.incoming"].tolist() == [50, 50] + [0] * 18


def test_uniformly_random_masks_give_calibrated_p_values_and_no_lift() -> None:
    generator, rng = torch.Generator().manual_seed(0), np.random.default_rng(0)
    p_values, lifts = [], []
    for _ in range(300):
        mask = torch.zeros(1000, dtype=torch.bool)
        mask[torch.randperm(1000, generator=generator)[:300]] = True
        result = spread(mask.view(20, 50).sum(1), 50, 200, rng)
        p_values.append(result["p_value"])
        lifts.append(result["lift"])
    assert 0.02 <= np.mean(np.array(p_values) < 0.05) <= 0.09
    assert stats.kstest(p_values, "uniform").pvalue > 1e-3
    assert np.mean(lifts) == pytest.approx(1.0, abs=0.01)


def test_node_distribution_of_a_conv_mask_counts_filters_in_and_channels_out() -> None:
    mask = torch.zeros(4, 3, 2, 2, dtype=torch.bool)
    mask[0] = True  # filter 0 keeps its 12 weights: 4 per input channel
    summary, tensors = node_distribution(
        level_of({"c.weight": mask.float()}, {}, masks={"c.weight": mask}), draws=10
    )
    assert tensors["c.incoming"].tolist() == [12, 0, 0, 0]
    assert tensors["c.outgoing"].tolist() == [4, 4, 4]
    assert summary["c"]["incoming"]["expected"] == 3.0 and not math.isnan(summary["c"]["incoming"]["gini"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("analysis=[distance,nope]", "analysis=['distance', 'nope']; allowed: a list of analyses from:"),
        ("+analysis_cfg.distance.k=3", "analysis_cfg.distance='k'; allowed: knobs none"),
        (
            "analysis_cfg.node_distribution.draws=0",
            "analysis_cfg.node_distribution.draws=0; allowed: an integer >= 1",
        ),
    ],
)
def test_analysis_config_errors_are_one_line(
    make_cfg: Callable[..., DictConfig], override: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(make_cfg(override))
