"""The analyses of lth.analysis on inputs with a known answer."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from scipy import stats

from lth.analysis.clustering import cluster_angles, clustering
from lth.analysis.distance import distance
from lth.analysis.esd import eigenvalues, esd, power_law_fit
from lth.analysis.level import Level
from lth.analysis.mask_overlap import jaccard, mask_overlap
from lth.analysis.node_distribution import empty_probability, gini, node_distribution, spread
from lth.analysis.suite import ANALYSES
from lth.analysis.units import ablated_accuracies, units
from lth.analysis.update_spectrum import update_spectrum
from lth.data.memory import noisy_labels
from lth.errors import ConfigError
from lth.models import MLP, ConvNet, ResNet
from lth.run.building import build_datamodule
from lth.run.config import CONF_DIR, check_config, precheck, sweep_jobs


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


def test_a_rank_r_update_has_r_singular_values_and_its_top_r_projection_keeps_the_accuracy() -> None:
    torch.manual_seed(0)
    model = MLP((6,), 3, hidden=[8])
    theta_0 = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():  # a rank-2 update of fc1, a rank-1 update of fc2
        model.fc1.weight += torch.randn(8, 2) @ torch.randn(2, 6)
        model.fc2.weight += torch.randn(3, 1) @ torch.randn(1, 8)
    x = torch.randn(500, 6)
    y = model(x).argmax(1)
    y[:100] = (y[:100] + 1) % 3  # 80% accuracy, so a change in the network shows
    weights = {n: model.get_parameter(n).detach() for n in ("fc1.weight", "fc2.weight")}
    level = level_of(weights, theta_0, model=model, data=(x, y))
    summary, tensors = update_spectrum(level, ks=(1, 2))
    assert (tensors["fc1.singular_values"] > 1e-5).sum() == 2
    assert (tensors["fc2.singular_values"] > 1e-5).sum() == 1
    assert summary["fc1"]["rank90"] <= 2 and summary["fc2"]["effective_rank"] == pytest.approx(1.0, abs=1e-6)
    assert summary["fc1"]["residual_norm"]["2"] < 1e-5 < summary["fc1"]["residual_norm"]["1"]
    assert summary["acc"] == pytest.approx(0.8)
    assert summary["projected_acc"]["2"] == summary["acc"]
    assert summary["projected_acc"]["1"] != summary["acc"]  # one of fc1's two directions is not enough
    assert model.training  # the model's mode is restored


def test_the_update_spectrum_without_the_model_keeps_the_singular_values_only() -> None:
    weights = {"w": torch.eye(3)}
    summary, tensors = update_spectrum(level_of(weights, {"w": torch.zeros(3, 3)}), ks=(1,))
    assert summary == {"w": {"effective_rank": pytest.approx(3.0), "rank90": 3, "residual_norm": {"1": 1.0}}}
    assert tensors["w.singular_values"].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("alpha", [2.0, 3.0, 4.0])
def test_the_power_law_fit_recovers_alpha_and_xmin_of_a_synthetic_tail(alpha: float) -> None:
    rng = np.random.default_rng(int(alpha))
    tail = (1 - rng.random(2000)) ** (-1 / (alpha - 1))  # Pareto: density ~ x^-alpha above xmin = 1
    bulk = rng.uniform(0.05, 1.0, 3000)  # a bulk below xmin that the fit must leave out
    fit = power_law_fit(np.concatenate([bulk, tail]))
    assert fit["alpha"] == pytest.approx(alpha, abs=0.15)
    assert 0.9 <= fit["xmin"] <= 2.0 and fit["ks_distance"] < 0.05


def test_the_esd_of_a_conv_layer_pools_its_slices_eigenvalues() -> None:
    weight = torch.randn(8, 4, 3, 3)
    values = eigenvalues(weight)
    assert values.shape == (9 * 4,)
    assert values.sum().item() == pytest.approx(weight.pow(2).sum().item(), rel=1e-6)  # trace = ||W||_F^2
    summary, tensors = esd(level_of({"c.weight": weight}, {"c.weight": weight}))
    assert summary["c"]["tail"] >= 10 and summary["c"]["alpha"] == summary["c"]["alpha_init"]
    assert tensors["c.eigenvalues"].shape == (36,)


def test_k_means_recovers_the_directions_vectors_were_built_around() -> None:
    generator = torch.Generator().manual_seed(0)
    directions = torch.linalg.qr(torch.randn(20, 4, generator=generator))[0].T  # 4 orthonormal directions
    scales = torch.rand(200, 1, generator=generator) + 0.5
    vectors = scales * directions.repeat(50, 1) + 0.01 * torch.randn(200, 20, generator=generator)
    angles, centres = cluster_angles(vectors, 4, seed=0)
    assert (centres.float() @ directions.T).max(0).values.min() > 0.99  # every direction found
    assert angles.mean() < 5.0 and angles.max() < 15.0
    random_angles, _ = cluster_angles(torch.randn(200, 20, generator=generator), 4, seed=0)
    assert random_angles.mean() > 45.0  # random vectors in 20 dimensions cluster badly
    summary, _ = clustering(level_of({"fc.weight": vectors}, {"fc.weight": torch.randn(200, 20)}), k=4)
    assert summary["fc"]["within_15"] == 1.0 and summary["fc"]["within_15_init"] == 0.0


def twin_network() -> tuple[MLP, torch.Tensor, torch.Tensor]:
    """Hidden units 0 and 1 are copies (relu(x1)), unit 2 is relu(x2); class 0 iff h0 + h1 > h2. On
    points of quadrants II and IV only one side is active, so halving the twins' sum changes nothing."""
    model = MLP((2,), 2, hidden=[3])
    with torch.no_grad():
        model.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
        model.fc2.weight.copy_(torch.tensor([[1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]))
        model.fc1.bias.zero_()
        model.fc2.bias.zero_()
    x = torch.rand(400, 2) + 0.1
    x[:200, 1] *= -1  # quadrant IV: class 0
    x[200:, 0] *= -1  # quadrant II: class 1
    return model, x, torch.tensor([0] * 200 + [1] * 200)


def test_duplicated_units_correlate_at_one_and_each_is_removable_while_its_twin_remains() -> None:
    model, x, y = twin_network()
    weights = {n: model.get_parameter(n).detach() for n in ("fc1.weight", "fc2.weight")}
    summary, tensors = units(level_of(weights, dict(model.state_dict()), model=model, data=(x, y)))
    assert tensors["fc1.corr"][0, 1] == pytest.approx(1.0)
    assert tensors["fc1.drop"].tolist() == pytest.approx([0.0, 0.0, 0.5])
    assert summary["fc1"] | {"mean_drop": 0} == {
        "units": 3,
        "dead": 0,
        "repeated": 2,
        "clusters": 1,
        "removable": 2,
        "mean_drop": 0,
        "max_drop": pytest.approx(0.5),
        "acc": 1.0,
    }


def test_batched_ablations_equal_one_forward_pass_per_unit() -> None:
    torch.manual_seed(1)
    model = ConvNet((1, 8, 8), 4, plan=[6, "M"], hidden=[5])
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 4, (64,))
    relu = model.features.relu1
    batched_result = ablated_accuracies(model, relu, x, y, 6)
    for unit in range(6):
        handle = relu.register_forward_hook(
            lambda _m, _i, out, unit=unit: out.index_fill(1, torch.tensor([unit]), 0)
        )
        assert batched_result[unit] == (model(x).argmax(1) == y).double().mean()
        handle.remove()


def test_label_noise_replaces_the_right_fraction_seeded_and_leaves_val_and_test_alone(
    make_cfg: Callable[..., DictConfig],
) -> None:
    clean = build_datamodule(make_cfg())
    noisy = build_datamodule(make_cfg("data.label_noise=0.4"))
    again = build_datamodule(make_cfg("data.label_noise=0.4"))
    other = build_datamodule(make_cfg("data.label_noise=0.4", "seed=1"))
    y, y_noisy = clean.split("train")[1], noisy.split("train")[1]
    changed = (y != y_noisy).double().mean().item()
    assert changed == pytest.approx(0.4 * (1 - 1 / 10), abs=0.03)  # a random label is the true one 1 in 10
    assert torch.equal(y_noisy, again.split("train")[1]) and not torch.equal(y_noisy, other.split("train")[1])
    for split in ("val", "test"):
        assert torch.equal(clean.split(split)[1], noisy.split(split)[1])
    assert torch.equal(
        noisy_labels(y, 1.0, 10, 0).bincount(minlength=10) > 0, torch.ones(10, dtype=torch.bool)
    )


def test_every_mlp_and_conv_model_scales_its_widths() -> None:
    assert MLP((40,), 10, [100, 100], width_multiplier=0.25).fc2.weight.shape == (25, 25)
    conv = ConvNet((1, 28, 28), 10, plan=[64, "M"], hidden=[256], width_multiplier=2)
    assert conv.features.conv1.weight.shape[0] == 128 and conv.classifier.fc2.weight.shape == (10, 512)
    assert ResNet((3, 32, 32), 10, width_multiplier=0.5).conv.weight.shape[0] == 8


def test_the_redundancy_width_preset_sweeps_six_widths_with_every_analysis() -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        jobs = sweep_jobs(["experiment=redundancy_width"])
        cfg = compose("config", overrides=jobs[0])
    assert [o for job in jobs for o in job if o.startswith("model.width")] == [
        f"model.width_multiplier={w}" for w in ("0.25", "0.5", "1", "2", "4", "8")
    ]
    assert set(cfg.analysis) == set(ANALYSES)
    assert precheck(["-m", "experiment=redundancy_width"]) is None
