"""``lth.report``'s plots and table formatting: legend, title, styles, ticks, bands, rounding, job order."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from lth.report import (
    Context,
    accuracy_figure,
    aggregate,
    context,
    curves_figure,
    describe_model,
    early_stop_figure,
    find_jobs,
    read_config,
    read_curves,
    report,
    varying_keys,
)

STEPS = 400
RATE = 0.2  # weights remaining after level k: 0.8^k


def config_yaml(seed: int, lr: float) -> str:
    return (
        "data:\n  _target_: lth.data.mnist1d.MNIST1DDataModule\n"
        "model:\n  _target_: lth.models.MLP\n  hidden: [300, 100]\n"
        f"optim:\n  name: sgd\n  lr: {lr}\nseed: {seed}\ntrain:\n  steps: {STEPS}\n"
    )


def record(level: int, test_acc: float, early_stop_step: int) -> dict:
    return {
        "level": level,
        "weights_remaining": (1 - RATE) ** level,
        "test_acc": test_acc,
        "test_acc_at_early_stop": test_acc,
        "early_stop_step": early_stop_step,
        "test_loss": 1.2345678 - test_acc,
        "steps": STEPS,
        "status": "ok",
    }


def write_job(job: Path, overrides: list[str], config: str, records: list[dict]) -> Path:
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job / "config.yaml").write_text(config)
    (job / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (job / "DONE").write_text(json.dumps({"status": "complete", "levels": len(records)}) + "\n")
    return job


def write_sweep(sweep: Path, levels: int = 4) -> Path:
    """init x optim.lr x 3 seeds: 12 jobs, numbered 0-11 as Hydra does. Accuracy near 100% with a spread
    that pushes mean + std past 100, early-stop steps of 0 and STEPS (the band would leave [0, STEPS]);
    the last seed of reinit, lr=0.1 has one level less (n=3 then 2)."""
    num = 0
    for init in ("winning_ticket", "reinit"):
        for lr in (0.01, 0.1):
            for seed in range(3):
                acc = (0.96, 0.99, 1.0)[seed] if init == "winning_ticket" else 0.6 - 0.05 * lr * seed
                n_levels = levels - (init == "reinit" and lr == 0.1 and seed == 2)
                records = [record(lv, acc, (0, STEPS, STEPS)[seed]) for lv in range(n_levels)]
                overrides = [f"init={init}", f"optim.lr={lr}", f"seed={seed}"]
                write_job(sweep / f"{num}_{','.join(overrides)}", overrides, config_yaml(seed, lr), records)
                num += 1
    return sweep


def curve_entries(level: int) -> list[dict]:
    return [
        {
            "level": level,
            "step": step,
            "train_loss": 1.0 / (1 + step),
            "val_loss": 1.0 / (1 + step) + 0.1 * level,
            "val_acc": 0.5 + step / 1000,
            "test_loss": 1.0 / (1 + step),
            "test_acc": 0.5 + step / 1000 - 0.01 * level,
        }
        for step in range(0, STEPS + 1, 100)
    ]


def figures(sweep: Path) -> tuple[Figure, Figure]:
    jobs = find_jobs(sweep)
    ctx = context(jobs, [read_config(job.path) for job in jobs])
    keys = varying_keys(jobs)
    rows = aggregate(jobs, keys)
    return accuracy_figure(keys, rows, ctx), early_stop_figure(keys, rows, ctx)


def assert_legend_outside(fig: Figure) -> list[str]:
    """The figure's one legend overlaps none of its axes (as drawn); return its entries."""
    fig.canvas.draw()
    (legend,) = fig.legends
    box = legend.get_window_extent()
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent()), ax.get_title()
    assert box.x0 > max(ax.get_window_extent().x1 for ax in fig.axes)
    return [t.get_text() for t in legend.get_texts()]


def test_summary_plots_legend_outside_title_and_n_per_group(tmp_path: Path) -> None:
    for fig in figures(write_sweep(tmp_path / "sweep")):
        labels = assert_legend_outside(fig)
        assert fig.get_suptitle() == "MNIST1D · MLP 300-100 · SGD · n=3 seeds"
        assert labels == [
            "init=reinit, optim.lr=0.01 (n=3)",
            "init=reinit, optim.lr=0.1 (n=2-3)",
            "init=winning_ticket, optim.lr=0.01 (n=3)",
            "init=winning_ticket, optim.lr=0.1 (n=3)",
        ]
        # colour follows init, line style and marker follow the learning rate
        lines = {label: fig.axes[0].lines[i] for i, label in enumerate(labels)}
        colour = {label: lines[label].get_color() for label in labels}
        style = {label: (lines[label].get_linestyle(), lines[label].get_marker()) for label in labels}
        assert colour[labels[0]] == colour[labels[1]] != colour[labels[2]] == colour[labels[3]]
        assert style[labels[0]] == style[labels[2]] != style[labels[1]] == style[labels[3]]


def test_one_factor_is_told_by_colour_alone_and_a_single_seed_says_n_1(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for num, init in enumerate(("winning_ticket", "reinit", "rewind")):
        records = [record(lv, 0.9, 100) for lv in range(3)]
        write_job(sweep / f"{num}_init={init}", [f"init={init}"], config_yaml(0, 0.1), records)
    accuracy, _ = figures(sweep)
    assert assert_legend_outside(accuracy) == [
        f"init={i} (n=1)" for i in ("reinit", "rewind", "winning_ticket")
    ]
    assert accuracy.get_suptitle().endswith("n=1 seed")
    lines = accuracy.axes[0].lines
    assert len({line.get_color() for line in lines}) == 3
    assert {(line.get_linestyle(), line.get_marker()) for line in lines} == {("-", "o")}
    # one seed: no std, so no band
    bands = accuracy.axes[0].collections
    assert len(bands) == 3
    assert not any(np.isfinite(p.vertices).any() for band in bands for p in band.get_paths())


def band_limits(fig: Figure) -> tuple[float, float]:
    """The lowest and highest y any band reaches."""
    ys = np.concatenate([p.vertices[:, 1] for c in fig.axes[0].collections for p in c.get_paths()])
    return float(np.nanmin(ys)), float(np.nanmax(ys))


def test_bands_are_clipped_to_the_possible_range(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path / "sweep")
    rows = aggregate(find_jobs(sweep), ["init", "optim.lr"])
    # unclipped, mean ± std would leave both ranges
    wt = [r for r in rows if r.group[0] == "winning_ticket"]
    assert max(100 * (r.stats["test_acc"][0] + r.stats["test_acc"][1]) for r in wt) > 100
    assert min(r.stats["early_stop_step"][0] - r.stats["early_stop_step"][1] for r in rows) < 0
    assert max(r.stats["early_stop_step"][0] + r.stats["early_stop_step"][1] for r in rows) > STEPS
    accuracy, early_stop = figures(sweep)
    low, high = band_limits(accuracy)
    assert low >= 0 and high == pytest.approx(100)
    assert band_limits(early_stop) == pytest.approx((0, STEPS))


def tick_labels(fig: Figure) -> list[str]:
    fig.canvas.draw()
    return [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]


def test_x_ticks_at_every_level_thinned_only_where_labels_would_overlap(tmp_path: Path) -> None:
    _, few = figures(write_sweep(tmp_path / "few", levels=4))
    assert tick_labels(few) == ["100", "80", "64", "51.2"]
    _, many = figures(write_sweep(tmp_path / "many", levels=25))
    labels = tick_labels(many)
    assert labels[0] == "100" and 8 < len(labels) < 25
    boxes = sorted(
        (t.get_window_extent() for t in many.axes[0].get_xticklabels() if t.get_text()), key=lambda b: b.x0
    )
    assert all(left.x1 < right.x0 for left, right in itertools.pairwise(boxes))


def test_csv_numbers_rounded_jobs_in_natural_order_with_the_config_seed(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path / "sweep")
    noisy = record(0, 0.34599998593330383, 3)  # float32 accuracy as the jobs write it
    job = sweep / "0_init=winning_ticket,optim.lr=0.01,seed=0"
    (job / "results.jsonl").write_text(json.dumps(noisy) + "\n")
    (job / "DONE").write_text(json.dumps({"status": "complete", "levels": 1}) + "\n")
    report(sweep)
    with (sweep / "report" / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    with (sweep / "report" / "jobs.csv").open() as f:
        jobs = list(csv.DictReader(f))
    assert [int(j["job"].split("_")[0]) for j in jobs] == list(range(12))
    assert {r["weights_remaining"] for r in rows} == {"1.0", "0.8", "0.64", "0.512"}
    # level 0 of winning_ticket, lr=0.01: accuracies 0.346, 0.99, 1.0; losses 1.2345678 - those; steps 3, 400, 400
    (first,) = [r for r in rows if (r["init"], r["optim.lr"], r["level"]) == ("winning_ticket", "0.01", "0")]
    assert (first["test_acc_mean"], first["test_acc_std"]) == ("0.7787", "0.3747")
    assert (first["test_loss_mean"], first["test_loss_std"]) == ("0.4559", "0.3747")
    assert (first["early_stop_step_mean"], first["early_stop_step_std"]) == ("268", "229")
    # a run that did not sweep the seed: jobs.csv gives its config's seed; float noise rounded away
    unswept = write_job(
        tmp_path / "unswept",
        ["init=reinit"],
        config_yaml(7, 0.1),
        [noisy | {"weights_remaining": 0.80666667}],
    )
    report(unswept)
    with (unswept / "report" / "jobs.csv").open() as f:
        assert next(csv.DictReader(f))["seed"] == "7"
    assert (unswept / "report" / "summary.csv").read_text().splitlines()[1] == (
        "0,0.8067,1,0.346,nan,0.8886,nan,3,nan,0.346,nan"
    )


def test_read_curves_keeps_the_last_of_a_repeated_step_and_skips_a_cut_line(tmp_path: Path) -> None:
    entries = curve_entries(0) + curve_entries(1)
    resumed = [dict(entries[-1], test_acc=0.123)]
    lines = [json.dumps(e) for e in entries + resumed] + ['{"level": 1, "st']
    (tmp_path / "curves.jsonl").write_text("\n".join(lines) + "\n")
    curves = read_curves(tmp_path)
    assert [(e["level"], e["step"]) for e in curves] == [
        (lv, s) for lv in (0, 1) for s in range(0, STEPS + 1, 100)
    ]
    assert curves[-1]["test_acc"] == 0.123
    assert read_curves(tmp_path / "nowhere") == []


def test_curves_figure_one_line_per_level_legend_outside(tmp_path: Path) -> None:
    curves = [e for lv in range(3) for e in curve_entries(lv)]
    records = [record(lv, 0.9, 100) for lv in range(2)]  # level 2 unfinished: no weights remaining known
    fig = curves_figure(curves, records, "MNIST1D · MLP 300-100 · SGD · seed=0")
    assert assert_legend_outside(fig) == ["0: 100%", "1: 80%", "2"]
    accuracy, loss = fig.axes
    assert accuracy.get_ylabel() == "Test Accuracy (%)" and loss.get_ylabel() == "Validation Loss"
    assert len(accuracy.lines) == len(loss.lines) == 3
    assert list(accuracy.lines[1].get_ydata()) == pytest.approx(
        [100 * e["test_acc"] for e in curve_entries(1)]
    )
    assert list(loss.lines[2].get_xdata()) == list(range(0, STEPS + 1, 100))
    # regression (accuracies null): test loss instead
    regression = [e | {"test_acc": None, "val_acc": None} for e in curves]
    assert curves_figure(regression, records, "").axes[0].get_ylabel() == "Test Loss"


def test_report_writes_curves_of_the_jobs_that_have_them(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path / "sweep", levels=2)
    job = sweep / "3_init=winning_ticket,optim.lr=0.1,seed=0"
    (job / "curves.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for lv in range(2) for e in curve_entries(lv))
    )
    report(sweep)
    assert [p.relative_to(sweep / "report") for p in (sweep / "report").rglob("curves*.png")] == [
        Path("curves") / job.name / "curves.png"
    ]
    report(job, tmp_path / "single")
    assert (tmp_path / "single" / "curves.png").stat().st_size > 10_000


def test_context_names_data_model_optimizer_and_step_bound(tmp_path: Path) -> None:
    assert describe_model(
        {"_target_": "lth.models.ConvNet", "plan": [64, 64, "M"], "hidden": [256, 256]}
    ) == ("ConvNet 2 conv, fc 256-256")
    assert describe_model({"_target_": "lth.models.ResNet", "depth": 20, "width": 16}) == "ResNet-20"
    assert describe_model(
        {"_target_": "lth.models.student", "teacher_hidden": [60], "width_multiplier": 2}
    ) == ("student 120")
    jobs = find_jobs(write_sweep(tmp_path / "sweep", levels=2))
    cifar = {
        "data": {"_target_": "lth.data.vision.CIFAR10DataModule"},
        "optim": {"name": "adam"},
        "train": {},
    }
    configs = [read_config(job.path) for job in jobs[:-1]] + [cifar]
    assert context(jobs, configs) == Context("MNIST1D / CIFAR10", "MLP 300-100 / ?", "SGD / Adam", STEPS)
    assert context([], [{}]) == Context("", "", "", None)
    assert read_config(tmp_path) == {}  # no config.yaml
    (tmp_path / "config.yaml").write_text("data: [unclosed\n")
    assert read_config(tmp_path) == {}
