"""Paper presets (``experiment=``): they compose to the published setups, and liu_lr is a real sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datafiles import write_cifar, write_mnist
from hydra import compose, initialize_config_dir

from lth.run.config import CONF_DIR, check_config, precheck, sweep_jobs
from lth.run.job import build_job, execute

# preset -> (data target, model config, optimizer, lr, steps per level, conv_rate)
PRESETS = {
    "frankle_lenet": ("MNISTDataModule", "lenet300_100", "adam", 1.2e-3, 50000, None),
    "frankle_conv2": ("CIFAR10DataModule", "conv2", "adam", 2e-4, 20000, 0.1),
    "frankle_conv4": ("CIFAR10DataModule", "conv4", "adam", 3e-4, 25000, 0.1),
    "frankle_conv6": ("CIFAR10DataModule", "conv6", "adam", 3e-4, 30000, 0.15),
    "liu_lr": ("MNISTDataModule", "lenet300_100", "sgd", 0.1, 10000, None),
    "ticket_transfer": ("FashionMNISTDataModule", "lenet300_100", "adam", 1.2e-3, 10000, None),
}


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_composes_to_the_published_setup(preset: str) -> None:
    data, model, optim, lr, steps, conv_rate = PRESETS[preset]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={preset}"])
        plain = compose("config", overrides=[f"model={model}"])
    check_config(cfg)
    assert cfg.data._target_.endswith(data) and cfg.model == plain.model
    assert (cfg.optim.name, cfg.optim.lr, cfg.train.steps, cfg.train.batch_size) == (optim, lr, steps, 60)
    assert (cfg.prune.rate, cfg.prune.get("conv_rate")) == (0.2, conv_rate)
    assert cfg.prune.output_rate in (0.1, None)  # null = half of the fc rate = 0.1
    assert precheck([f"experiment={preset}"]) is None


def test_liu_lr_expands_to_winning_ticket_and_reinit_at_two_learning_rates() -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        jobs = sweep_jobs(["experiment=liu_lr"])
        seeded = sweep_jobs(["experiment=liu_lr", "seed=0,1"])
        fixed = sweep_jobs(["experiment=liu_lr", "optim.lr=0.05"])

    def pairs(jobs: list[list[str]]) -> list[tuple[str, ...]]:
        return sorted(tuple(sorted(o for o in job if not o.startswith("experiment="))) for job in jobs)

    assert pairs(jobs) == sorted(
        ("init=" + i, "optim.lr=" + lr) for i in ("winning_ticket", "reinit") for lr in ("0.1", "0.01")
    )
    assert len(seeded) == 8 and len(fixed) == 2  # the command line extends or overrides the preset's sweep
    assert all("optim.lr=0.05" in job for job in fixed)
    assert precheck(["-m", "experiment=liu_lr"]) is None
    message = precheck(["-m", "experiment=liu_lr", "init=winning_ticket,reinitt"])
    assert message is not None and "init=reinitt" in message


def test_liu_lr_multirun_runs_its_four_jobs(lth_cli, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = lth_cli(
        "-m",
        "experiment=liu_lr",
        "data=digits",
        "train.steps=10",
        "train.eval_every=5",
        "prune.levels=1",
        "logger=none",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = set()
    for job in sweep.iterdir():
        if job.is_dir() and (job / "DONE").exists():
            config = (job / "config.yaml").read_text()
            lr = "0.1" if "lr: 0.1\n" in config else "0.01" if "lr: 0.01\n" in config else "?"
            init = "reinit" if "name: reinit" in config else "winning_ticket"
            seen.add((init, lr))
            assert json.loads((job / "DONE").read_text())["status"] == "complete"
    assert seen == {(i, lr) for i in ("winning_ticket", "reinit") for lr in ("0.1", "0.01")}


def test_frankle_lenet_trains_on_mnist_files_in_torchvision_layout(tmp_path: Path) -> None:
    write_mnist(tmp_path / "data" / "MNIST" / "raw", train=200, test=50)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "experiment=frankle_lenet",
                f"data.root={tmp_path / 'data'}",
                "data.val_size=40",
                "train.steps=6",
                "train.eval_every=3",
                "prune.levels=2",
                "logger=none",
                f"paths.output_dir={tmp_path / 'run'}",
            ],
        )
    records = execute(build_job(cfg))
    assert [r["level"] for r in records] == [0, 1, 2]
    assert records[2]["layers"]["fc1.weight"] == pytest.approx(0.8**2, abs=1e-3)
    assert records[2]["layers"]["fc3.weight"] == pytest.approx(0.9**2, abs=1e-3)


def test_liu_scratch_trains_the_filter_pruned_vgg_for_the_same_steps_or_the_same_compute(
    tmp_path: Path,
) -> None:
    write_cifar(tmp_path / "data", classes=10, per_batch=20, test=20)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        jobs = {
            o: job
            for job in sweep_jobs(["experiment=liu_scratch"])
            for o in job
            if o.startswith("train.budget")
        }
        assert sorted(jobs) == ["train.budget=flops", "train.budget=steps"]
        small = [
            f"data.root={tmp_path / 'data'}",
            "data.val_size=20",
            "train.batch_size=16",
            "train.steps=4",
            "train.eval_every=4",
            "logger=none",
            f"paths.output_dir={tmp_path / 'run'}",
        ]
        cfg = compose("config", overrides=[*jobs["train.budget=flops"], *small])
    assert (cfg.model.plan[-1], cfg.optim.weight_decay, cfg.optim.schedule) == (512, 1e-4, "step")
    assert (cfg.init.name, cfg.prune.structure, cfg.prune.conv_rate, cfg.prune.levels) == (
        "reinit",
        "filter",
        0.5,
        1,
    )
    dense, pruned = execute(build_job(cfg))
    # VGG-16-A: Li et al. count 3.13e8 FLOPs for VGG-16 and 2.06e8 (34.2% fewer) for VGG-16-A
    assert (dense["forward_macs"], pruned["forward_macs"]) == (313_201_664, 206_146_048)
    assert (dense["steps"], pruned["steps"]) == (4, round(4 * 313_201_664 / 206_146_048))
    layers = pruned["layers"]
    assert layers["features.conv1.weight"] == layers["features.conv8.weight"] == 0.5  # half the filters
    assert layers["features.conv2.weight"] == 0.5  # every filter, reading half of conv 1's channels
    assert [layers[f"features.conv{i}.weight"] for i in range(3, 8)] == [1.0] * 5
    assert [layers[f"features.conv{i}.weight"] for i in range(9, 14)] == [0.25] * 5
    assert layers["classifier.fc1.weight"] == 0.5


def test_ticket_transfer_and_ticket_retrain_lr_train_a_found_ticket_as_their_commands_say(
    tmp_path: Path,
) -> None:
    """The two ticket_transfer commands (docs/how-to/tickets.md: a Fashion-MNIST ticket trained on MNIST), then the
    ticket_retrain_lr sweep of that ticket: SGD and Adam at lr 0.01 and 0.1, each on the same batches."""
    write_mnist(tmp_path / "fashion", train=200, test=50, seed=1)
    write_mnist(tmp_path / "mnist", train=200, test=50, seed=2)
    tiny = ["data.val_size=40", "train.steps=6", "train.eval_every=3", "logger=none"]
    found = tmp_path / "tickets" / "fashion_lenet"
    assert precheck(["-m", "experiment=ticket_retrain_lr"]) == (
        "lth: invalid config: init.ticket.from=None; allowed: the directory of a finished lth job"
    )
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        first = ["experiment=ticket_transfer", f"data.root={tmp_path / 'fashion'}", "prune.levels=2", *tiny]
        execute(build_job(compose("config", overrides=[*first, f"paths.output_dir={found}"])))
        second = [
            "experiment=ticket_transfer",
            "data=mnist",
            f"data.root={tmp_path / 'mnist'}",
            "init=ticket",
        ]
        second += [
            f"init.ticket.from={found}",
            "prune.levels=0",
            *tiny,
            f"paths.output_dir={tmp_path / 'mnist_run'}",
        ]
        (transferred,) = execute(build_job(compose("config", overrides=second)))
        jobs = sweep_jobs(["experiment=ticket_retrain_lr", f"init.ticket.from={found}"])
        retrained = {}
        for n, job in enumerate(jobs):
            more = [f"data.root={tmp_path / 'mnist'}", *tiny, f"paths.output_dir={tmp_path / str(n)}"]
            cfg = compose("config", overrides=[*job, *more])
            (retrained[cfg.optim.name, cfg.optim.lr],) = execute(build_job(cfg))
    assert (transferred["level"], transferred["ticket_source"]["level"]) == (2, 2)
    fc = (265_200 * 0.8**2 + 1_000 * 0.9**2) / 266_200  # two events: hidden 20%, output 10%
    assert transferred["weights_remaining"] == pytest.approx(fc, abs=1e-3)
    assert sorted(retrained) == [("adam", 0.01), ("adam", 0.1), ("sgd", 0.01), ("sgd", 0.1)]
    assert {r["ticket_source"]["directory"] for r in retrained.values()} == {str(found)}
    assert all(
        r["level"] == 2 and r["weights_remaining"] == transferred["weights_remaining"]
        for r in retrained.values()
    )
    assert len({r["test_loss"] for r in retrained.values()}) == 4  # four trainings
