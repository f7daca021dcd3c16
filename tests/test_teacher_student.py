"""Teacher-student regression: the teacher, the data stream, the student, the presets and the science."""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from lth.analysis.specialisation import specialisation
from lth.data.teacher_student import FreshBatches, TeacherStudentDataModule
from lth.lottery.masks import MaskedNetwork, prunable_weight_names
from lth.lottery.stacked import SingleNetwork
from lth.models import make_teacher, student
from lth.run.config import CONF_DIR, precheck, sweep_jobs
from lth.run.job import build_job, execute
from lth.run.module import LotteryModule
from tests.conftest import Crash, CrashAt
from tests.test_replicates import assert_same_lottery

SMALL = [
    "data=teacher_student",
    "model=student",
    "data.hidden=[20]",
    "data.output_dim=5",
    "data.val_size=512",
    "data.test_size=1024",
    "train.batch_size=128",
    "train.eval_every=100",
    "optim.lr=0.05",
    "model.width_multiplier=2",
    "trainer.enable_progress_bar=false",
]


@pytest.fixture
def ts_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """The real config with a small teacher-student problem; output in tmp_path, no experiment logger."""

    def make(*overrides: str) -> DictConfig:
        base = [f"paths.output_dir={tmp_path / 'run'}", "logger=none", *SMALL]
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=[*base, *overrides])

    return make


TEACHER_HIDDEN = [6, 5]


def datamodule(teacher_weights: str = "gaussian", **overrides) -> TeacherStudentDataModule:
    kwargs = dict(
        input_dim=8, output_dim=3, teacher_seed=0,
        retrain_teacher_seed=None, sigma=1.0, samples="infinite", val_size=64, test_size=256,
        match_threshold=0.9, batch_size=32, seed=0,
    )  # fmt: skip
    teacher = functools.partial(make_teacher, 8, TEACHER_HIDDEN, 3, teacher_weights)
    return TeacherStudentDataModule(teacher=teacher, **(kwargs | overrides))


@pytest.mark.parametrize("weights", ["gaussian", "discrete"])
def test_teacher_is_a_deterministic_function_of_its_seed(weights: str) -> None:
    a, b, c = (make_teacher(8, [6, 5], 3, weights, seed) for seed in (7, 7, 8))
    x = torch.randn(100, 8)
    assert torch.equal(a(x), b(x))
    assert not torch.allclose(a(x), c(x))
    assert not any(p.requires_grad for p in a.parameters())
    if weights == "discrete":
        rows = torch.cat([a.fc1.weight, a.fc1.bias[:, None]], dim=1)
        torch.testing.assert_close(rows.norm(dim=1), torch.ones(6))
    dm1, dm2 = datamodule(teacher_weights=weights), datamodule(teacher_weights=weights)
    for split in ("val", "test"):
        assert torch.equal(dm1.split(split)[1], dm2.split(split)[1])


def test_infinite_mode_never_repeats_a_batch_and_resumes_exactly() -> None:
    dm = datamodule()
    stream = FreshBatches(8, 1.0, 32, seed=0, label=dm.label, position=lambda: (0, 0, 1))
    batches = list(itertools.islice(stream, 200))
    firsts = {tuple(x[0].tolist()) for x, _ in batches}
    assert len(firsts) == 200
    for x, y in batches[:3]:
        assert torch.equal(y, dm.teacher(x))
    resumed = FreshBatches(8, 1.0, 32, seed=0, label=dm.label, position=lambda: (150, 0, 1))
    assert torch.equal(next(iter(resumed))[0], batches[150][0])
    rank1 = FreshBatches(8, 1.0, 32, seed=0, label=dm.label, position=lambda: (150, 1, 2))
    assert torch.equal(next(iter(rank1))[0], batches[150][0][1::2])


def test_a_copy_of_the_teacher_has_zero_loss_and_perfect_specialisation() -> None:
    dm = datamodule()
    copy = student(dm.input_shape, dm.num_classes, TEACHER_HIDDEN, width_multiplier=1)
    copy.load_state_dict(dm.teacher.state_dict())
    module = LotteryModule(SingleNetwork(MaskedNetwork(copy, prunable_weight_names(copy))), "regression", {})
    metrics = module.evaluate(*dm.split("test"))
    assert metrics == {"loss": 0.0, "acc": None}
    summary, matrices = specialisation(dm.teacher, copy, dm.split("test")[0], threshold=0.9)
    assert summary.keys() == matrices.keys() == {"layer1", "layer2"}
    for layer, shape in (("layer1", (6, 6)), ("layer2", (5, 5))):
        assert summary[layer]["mean_best_corr"] == pytest.approx(1.0, abs=1e-6)
        assert summary[layer]["teacher_nodes_matched"] == 1.0
        assert matrices[layer].shape == shape
        torch.testing.assert_close(matrices[layer].diagonal(), torch.ones(shape[0]))
    wide = student(dm.input_shape, dm.num_classes, TEACHER_HIDDEN, width_multiplier=2.5)
    assert [wide.fc1.out_features, wide.fc2.out_features] == [15, 12]


def test_the_2x2_preset_expands_to_four_conditions_at_two_learning_rates() -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        jobs = sweep_jobs(["experiment=ts_reinit"])
        cfgs = [compose("config", overrides=job) for job in jobs]
    conditions = {(c.init.name, c.data.retrain_teacher_seed, c.optim.lr) for c in cfgs}
    assert len(jobs) == 8
    assert conditions == set(itertools.product(["winning_ticket", "reinit"], [None, 1], [0.01, 0.1]))
    for c in cfgs:
        assert (c.prune.levels, c.prune.rate, c.data.teacher_seed, c.train.batch_size) == (1, 0.2, 0, 256)
        assert (c.optim.name, c.optim.momentum, c.optim.weight_decay) == ("sgd", 0.9, 0.0)
    assert precheck(["-m", "experiment=ts_reinit"]) is None
    assert "data.samples" in precheck(["-m", "experiment=ts_reinit", "data.samples=0"])
    assert "only with data=teacher_student" in precheck(["model=student"])


def test_regression_run_lowers_mse_and_reports_no_accuracy(ts_cfg: Callable[..., DictConfig]) -> None:
    cfg = ts_cfg("prune.levels=0", "train.steps=100", "data.samples=2000")
    job = build_job(cfg)
    before = job.module.evaluate(*job.datamodule.split("test"))["loss"]
    [record] = execute(job)
    assert record["test_loss"] < 0.5 * before
    assert record["test_acc"] is None and record["val_acc"] is None
    on_disk = json.loads((job.run_dir.results_file).read_text())
    assert on_disk["test_acc"] is None and on_disk["test_loss"] == record["test_loss"]
    assert set(on_disk["specialisation"]["layer1"]) == {
        "mean_best_corr",
        "mean_matches",
        "teacher_nodes_matched",
    }
    saved = torch.load(job.run_dir.level_dir(0) / "specialisation.pt", weights_only=True)
    assert saved["layer1"].shape == (20, 40)


def test_a_new_teacher_for_the_retraining(ts_cfg: Callable[..., DictConfig]) -> None:
    job = build_job(
        ts_cfg("prune=oneshot", "train.steps=20", "train.eval_every=20", "data.retrain_teacher_seed=5")
    )
    x, y0 = (t.clone() for t in job.datamodule.split("test"))
    execute(job)
    x1, y1 = job.datamodule.split("test")
    assert torch.equal(x1, x) and job.datamodule.teacher_seed == 5
    torch.testing.assert_close(y1, make_teacher(20, [20], 5, "gaussian", 5)(x))
    assert not torch.allclose(y1, y0)
    new_teacher = make_teacher(20, [20], 5, "gaussian", 5)
    measured = json.loads(job.run_dir.results_file.read_text().splitlines()[1])["specialisation"]
    expected, _ = specialisation(new_teacher, job.lottery.network.model, x, job.datamodule.match_threshold)
    assert measured["layer1"] == pytest.approx(expected["layer1"])  # level 1 against its own teacher


def test_one_shot_magnitude_pruning_beats_random_pruning_at_80_percent(
    ts_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """Measured (3 seeds, 200 steps per level): magnitude 0.091-0.116, random 0.199-0.257 test MSE."""
    losses = {}
    for init in ("winning_ticket", "random_prune"):
        cfg = ts_cfg(
            "prune=oneshot", "prune.output_rate=0.8", f"init={init}", "train.steps=200",
            f"paths.output_dir={tmp_path / init}",
        )  # fmt: skip
        _, pruned = execute(build_job(cfg))
        assert pruned["weights_remaining"] == pytest.approx(0.2, abs=0.01)
        losses[init] = pruned["test_loss"]
    assert losses["winning_ticket"] < 0.75 * losses["random_prune"]


def test_a_resumed_retraining_keeps_the_new_teacher(
    ts_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    job_args = ["prune=oneshot", "train.steps=20", "train.eval_every=10", "data.retrain_teacher_seed=5"]
    reference = execute(build_job(ts_cfg(*job_args, f"paths.output_dir={tmp_path / 'reference'}")))
    cfg = ts_cfg(*job_args, f"paths.output_dir={tmp_path / 'resumed'}")
    job = build_job(cfg)
    job.trainer.callbacks.append(CrashAt(25))  # level 1, after the level-end checkpoint at step 20
    with pytest.raises(Crash):
        execute(job)
    resumed = execute(build_job(cfg))

    def strip(records: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "wall_s"} for r in records]

    assert strip(resumed) == strip(reference)


REPLICATED = ("prune.levels=2", "train.steps=30", "train.eval_every=10")


def replicates(ts_cfg: Callable[..., DictConfig], out: Path, *overrides: str) -> DictConfig:
    """Two teacher-student replicates, seeds 3 and 4, in ``out``."""
    return ts_cfg("seed=3", "train.replicates=2", f"paths.output_dir={out}", *REPLICATED, *overrides)


def assert_replicates_are_single_jobs(
    ts_cfg: Callable[..., DictConfig], tmp_path: Path, stack: Path, *overrides: str
) -> None:
    for k in range(2):
        single = tmp_path / f"single{k}"
        execute(build_job(ts_cfg(f"seed={3 + k}", f"paths.output_dir={single}", *REPLICATED, *overrides)))
        assert_same_lottery(stack / f"replicate_{k}", single)


@pytest.mark.parametrize(
    "overrides",
    [
        ("data.samples=1000",),
        ("data.samples=infinite", "optim=adam"),
        ("data.samples=1000", "data.retrain_teacher_seed=5"),
    ],
    ids=["fixed", "infinite-adam", "fixed-new-teacher"],
)
def test_replicate_k_is_the_teacher_student_job_with_seed_plus_k(
    ts_cfg: Callable[..., DictConfig], tmp_path: Path, overrides: tuple[str, ...]
) -> None:
    """Its own inputs, batches and specialisation probe; the one teacher (a new one from level 1)."""
    execute(build_job(replicates(ts_cfg, tmp_path / "stack", *overrides)))
    assert_replicates_are_single_jobs(ts_cfg, tmp_path, tmp_path / "stack", *overrides)


def test_replicates_resumed_in_the_level_of_a_new_teacher_keep_it(
    ts_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """A crash at step 45 (level 1, new teacher); the rerun resumes from step 40 and labels by that teacher."""
    overrides = ("data.samples=infinite", "data.retrain_teacher_seed=5", "train.checkpoint_every=10")
    crashing = build_job(replicates(ts_cfg, tmp_path / "stack", *overrides))
    crashing.trainer.callbacks.append(CrashAt(45))
    with pytest.raises(Crash):
        execute(crashing)
    assert (
        torch.load(tmp_path / "stack" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 40
    )
    resumed = build_job(replicates(ts_cfg, tmp_path / "stack", *overrides))
    assert resumed.datamodule.teacher_seed == 0  # until the resumed level starts
    execute(resumed)
    assert resumed.datamodule.teacher_seed == 5
    assert_replicates_are_single_jobs(ts_cfg, tmp_path, tmp_path / "stack", *overrides)
