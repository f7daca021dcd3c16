"""Checks of ``data=teacher_student`` and ``model=student``: a regression task on a teacher network's
outputs."""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig

from lth.analysis.names import NEEDS_MODEL
from lth.models.names import TEACHER_WEIGHTS
from lth.run.checks.rules import POSITIVE, Check, fail, int_in, is_int, is_number, one_of


def teacher_student_checks(cfg: DictConfig) -> list[Check]:
    """Checks of ``data=teacher_student`` (and ``model=student``, refused without it)."""
    if "teacher_seed" not in cfg.data:
        if "teacher_hidden" in cfg.model:
            fail("model", "student", "model=student only with data=teacher_student")
        return []
    batch = cfg.train.get("batch_size")
    checks = [
        # SNIP and GraSP score with a classification loss; SynFlow is data-free
        ("prune.at_init", ((lambda v: v in (None, "synflow")), "null or synflow with data=teacher_student")),
        ("data.input_dim", int_in(1)),
        ("data.output_dim", int_in(1)),
        (
            "data.hidden",
            (
                (lambda v: isinstance(v, ListConfig) and all(is_int(w) and w > 0 for w in v)),
                "a list of positive integers",
            ),
        ),
        ("data.teacher_weights", one_of(TEACHER_WEIGHTS)),
        ("data.label_noise", ((lambda v: v == 0), "0 with data=teacher_student (regression targets)")),
        ("data.teacher_seed", int_in(0)),
        ("data.sigma", POSITIVE),
        (
            "data.samples",
            (
                (lambda v: v == "infinite" or (is_int(v) and v >= batch)),
                f"infinite or an integer >= train.batch_size ({batch})",
            ),
        ),
        ("data.test_size", int_in(1)),
        ("data.match_threshold", ((lambda v: is_number(v) and -1 <= v < 1), "a number in [-1, 1)")),
    ]
    if cfg.data.get("retrain_teacher_seed") is not None:
        checks.append(("data.retrain_teacher_seed", int_in(0)))
    regression = (
        lambda v: not set(v or []) & set(NEEDS_MODEL),
        "analyses without " + ", ".join(NEEDS_MODEL) + " (they measure accuracy) with data=teacher_student",
    )
    return [*checks, ("analysis", regression)]
