"""The paper architectures: parameter counts against the papers, every model on every input shape,
model/data mismatches as config errors, and per-layer-kind prune rates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lth.errors import ConfigError
from lth.lottery.masks import prunable_weight_names
from lth.lottery.rates import tensor_rates
from lth.models import IncompatibleInput
from lth.run.config import CONF_DIR
from lth.run.job import build_job, execute

SHAPES = {"mnist1d": (40,), "digits": (1, 8, 8), "mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
MODELS = ["mlp", "lenet300_100", "lenet5", "conv2", "conv4", "conv6", "vgg16", "vgg19", "resnet20"]
# which input shapes each model accepts: conv nets need images; LeNet-5 (two valid 5x5 convs and two
# pools) and VGG (four pools before its last block) need more than 8x8 pixels
FITS = {
    "mlp": set(SHAPES),
    "lenet300_100": set(SHAPES),
    "lenet5": {"mnist", "cifar10"},
    "conv2": {"digits", "mnist", "cifar10"},
    "conv4": {"digits", "mnist", "cifar10"},
    "conv6": {"digits", "mnist", "cifar10"},
    "vgg16": {"mnist", "cifar10"},
    "vgg19": {"mnist", "cifar10"},
    "resnet20": {"digits", "mnist", "cifar10"},
}


def build(model: str, shape: tuple[int, ...], num_classes: int = 10) -> nn.Module:
    return instantiate(
        OmegaConf.load(CONF_DIR / "model" / f"{model}.yaml"), input_shape=shape, num_classes=num_classes
    )


def counts(model: nn.Module) -> tuple[int, int, int]:
    """(all parameters incl. biases and batch norm, prunable weights, conv weights)."""
    params = dict(model.named_parameters())
    weights = [params[n] for n in prunable_weight_names(model)]
    return (
        sum(p.numel() for p in params.values()),
        sum(w.numel() for w in weights),
        sum(w.numel() for w in weights if w.dim() == 4),
    )


# Frankle & Carbin 2019, Figure 2 ("All/Conv weights"): LeNet 266K; Conv-2 4.3M / 38K; Conv-4 2.4M / 260K;
# Conv-6 1.7M / 1.1M; VGG-19 20.0M; ResNet ("Resnet-18", i.e. ResNet-20) 274K / 270K. Asserted exactly:
# - LeNet-300-100: 266,610 parameters including biases (266,200 weights, the paper's 266K);
# - Conv-2/4/6, VGG-19, ResNet-20: prunable weights without biases/batch norm (the paper's "weights").
#   Conv-2, Conv-4, VGG-19 and every conv count match the figure; Conv-6's total cannot: its published
#   layers (three pools, 4*4*256 -> 256 -> 256 -> 10) have 2,261,184 weights, not 1.7M.
#   ResNet-20 with 1x1 projection shortcuts has 270,256 conv weights (270K); 270,896 with the fc layer.
# - LeNet-5 (Caffe variant of the pruning literature, Han et al. 2015): 431,080 parameters incl. biases (431K).
PAPER_COUNTS = {
    "lenet300_100": ((1, 28, 28), {"all": 266_610, "weights": 266_200}),
    "lenet5": ((1, 28, 28), {"all": 431_080}),
    "conv2": ((3, 32, 32), {"weights": 4_300_992, "conv": 38_592}),
    "conv4": ((3, 32, 32), {"weights": 2_425_024, "conv": 259_776}),
    "conv6": ((3, 32, 32), {"weights": 2_261_184, "conv": 1_144_512}),
    "vgg19": ((3, 32, 32), {"weights": 20_024_000, "conv": 20_018_880}),
    "resnet20": ((3, 32, 32), {"weights": 270_896, "conv": 270_256}),
}


@pytest.mark.parametrize("model", list(PAPER_COUNTS))
def test_parameter_counts_match_the_papers(model: str) -> None:
    shape, expected = PAPER_COUNTS[model]
    total, weights, conv = counts(build(model, shape))
    got = {"all": total, "weights": weights, "conv": conv}
    assert {k: got[k] for k in expected} == expected


@pytest.mark.parametrize("model", MODELS)
def test_every_model_runs_on_every_input_shape_it_fits(model: str) -> None:
    for data, shape in SHAPES.items():
        if data not in FITS[model]:
            with pytest.raises(InstantiationException) as caught:
                build(model, shape)
            assert isinstance(caught.value.__cause__, IncompatibleInput), (model, data)
            continue
        torch.manual_seed(0)
        net = build(model, shape, num_classes=7)
        x = torch.randn(3, *shape)
        out = net(x)
        assert out.shape == (3, 7), (model, data)
        out.square().mean().backward()
        names = prunable_weight_names(net)
        assert all(net.get_parameter(n).grad is not None for n in names)
        output = net.get_parameter(names[-1])  # the output layer is the last Linear/Conv registered
        assert output.shape[0] == 7 and output.dim() == 2


def test_tensor_rates_give_conv_layers_their_own_rate(make_cfg: Callable[..., DictConfig]) -> None:
    model = build("conv2", (1, 8, 8))
    prunable = prunable_weight_names(model)
    cfg = make_cfg("model=conv2", "data=digits", "prune.rate=0.2", "prune.conv_rate=0.1")
    assert tensor_rates(cfg.prune, model, prunable) == {
        "features.conv1.weight": 0.1,
        "features.conv2.weight": 0.1,
        "classifier.fc1.weight": 0.2,
        "classifier.fc2.weight": 0.2,
        "classifier.fc3.weight": 0.1,
    }
    cfg = make_cfg("model=conv2", "data=digits", "prune.rate=0.3", "prune.output_rate=0.05")
    rates = tensor_rates(cfg.prune, model, prunable)
    assert rates["features.conv1.weight"] == rates["classifier.fc1.weight"] == 0.3  # conv_rate null = rate
    assert rates["classifier.fc3.weight"] == 0.05
    cfg = make_cfg(
        "model=conv2", "data=digits", "prune.rates={features.conv2.weight:0,classifier.fc3.weight:0.4}"
    )
    rates = tensor_rates(cfg.prune, model, prunable)
    assert (rates["features.conv2.weight"], rates["classifier.fc3.weight"]) == (
        0,
        0.4,
    )  # over conv/output rates
    assert rates["features.conv1.weight"] == rates["classifier.fc1.weight"] == 0.2


def test_conv_lottery_on_digits_prunes_each_layer_kind_at_its_rate(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg(
        "model=conv2",
        "data=digits",
        "prune.rate=0.5",
        "prune.conv_rate=0.25",
        "train.steps=10",
        "train.eval_every=5",
    )
    records = execute(build_job(cfg))
    assert [r["status"] for r in records] == ["ok"] * 3
    layers = records[2]["layers"]
    assert layers["features.conv2.weight"] == pytest.approx(0.75**2, abs=1e-3)
    assert layers["classifier.fc1.weight"] == pytest.approx(0.5**2, abs=1e-3)
    assert layers["classifier.fc3.weight"] == pytest.approx(0.75**2, abs=1e-2)  # output: half of prune.rate


def test_model_that_does_not_fit_the_data_is_a_config_error(make_cfg: Callable[..., DictConfig]) -> None:
    with pytest.raises(ConfigError) as caught:
        build_job(make_cfg("model=conv4", "data=mnist1d"))
    message = str(caught.value)
    assert message.startswith("lth: invalid config: model=") and "\n" not in message
    assert "ConvNet" in message and "MNIST1DDataModule" in message and "(40,)" in message


def test_cli_names_the_chosen_model_and_data_and_exits_2(lth_cli, tmp_path: Path) -> None:
    proc = lth_cli("model=vgg16", "data=digits", "logger=none", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("lth: invalid config")]
    assert len(errors) == 1, proc.stderr
    assert "model=vgg16 does not fit data=digits" in errors[0] and "(1, 8, 8)" in errors[0]
    assert not (tmp_path / "run" / "results.jsonl").exists()
