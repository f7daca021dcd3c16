"""The names the model config keys allow, as plain tuples: no torch, so checking a config is fast."""

from __future__ import annotations

INITIALIZERS = ("default", "glorot_normal", "kaiming_normal")  # model.init (initializers.INITIALIZERS)
TEACHER_WEIGHTS = ("gaussian", "discrete")  # data.teacher_weights (teacher.make_teacher)
