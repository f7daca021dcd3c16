"""Teacher-student regression (Tian et al., "Luck Matters"): labels are a fixed random ReLU teacher's outputs.

Inputs are ``x ~ N(0, sigma^2 I)``. With ``samples: infinite`` the inputs of global step ``t`` are drawn
from a generator seeded by ``(seed, t)``, so no batch repeats and a resumed run sees the batches it would
have seen; with an integer ``samples`` a fixed training set is shuffled by ``ShuffledBatches``. Validation
and test inputs are fixed. ``retrain_teacher_seed`` gives levels >= 1 another teacher (the 2x2 reinit study):
the callback announces each level through ``set_level``; evaluation labels are recomputed then, and each
training batch is labelled by the current teacher when the training step draws it. The teacher network
is built by the job and handed over as ``teacher`` (seed -> frozen network): data knows no models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from lth.data.memory import InMemoryDataModule, Split
from lth.seeds import derived_seed

Teacher = Callable[[int], nn.Module]
"""Builds the frozen teacher network of a seed (the job passes ``lth.models.make_teacher`` configured)."""


class FreshBatches:
    """Endless batches of fresh Gaussian inputs labelled by ``label``; ``position()`` gives (step, rank, world)."""

    def __init__(
        self,
        dim: int,
        sigma: float,
        batch_size: int,
        seed: int,
        label: Callable[[Tensor], Tensor],
        position: Callable[[], tuple[int, int, int]],
    ) -> None:
        self.dim, self.sigma, self.batch_size, self.seed = dim, sigma, batch_size, seed
        self.label, self.position = label, position

    def inputs(self, step: int) -> Tensor:
        """The global batch of inputs of ``step`` (all ranks)."""
        generator = torch.Generator().manual_seed(derived_seed(self.seed, "inputs", step))
        return self.sigma * torch.randn(self.batch_size, self.dim, generator=generator)

    def __iter__(self) -> Iterator[Split]:
        step, rank, world = self.position()
        while True:
            x = self.inputs(step)[rank::world]
            yield x, self.label(x)
            step += 1


class TeacherStudentDataModule(InMemoryDataModule):
    """Regression on a random teacher's outputs; ``num_classes`` is the output dimension."""

    task = "regression"

    def __init__(
        self,
        *,
        teacher: Teacher,
        input_dim: int,
        output_dim: int,
        teacher_seed: int,
        retrain_teacher_seed: int | None,
        sigma: float,
        samples: int | str,
        val_size: int,
        test_size: int,
        match_threshold: float,
        batch_size: int,
        seed: int,
        root: str = "",
    ) -> None:
        super().__init__(root, val_size, batch_size, seed)
        self.make_teacher, self.input_dim, self.num_classes = teacher, input_dim, output_dim
        self.sigma, self.samples = sigma, samples
        self.test_size = test_size
        self.match_threshold = match_threshold  # used by lth.analysis.specialisation, at every level
        retrain_seed = teacher_seed if retrain_teacher_seed is None else retrain_teacher_seed
        self.teacher_seeds = (teacher_seed, retrain_seed)  # of level 0, of levels >= 1
        self.teacher_seed = teacher_seed  # of the current teacher
        self.teacher = self.make_teacher(teacher_seed)

    @property
    def capture_obstacle(self) -> str | None:
        return "data=teacher_student labels (or draws) its batches as they are drawn"

    @torch.no_grad()
    def label(self, x: Tensor) -> Tensor:
        return self.teacher.to(x.device)(x)

    def set_level(self, level: int) -> None:
        """Use ``teacher_seed`` at level 0, ``retrain_teacher_seed`` (if set) after, and relabel every split."""
        seed = self.teacher_seeds[min(level, 1)]
        if seed == self.teacher_seed:
            return
        self.setup()
        self.teacher_seed, self.teacher = seed, self.make_teacher(seed)
        self.splits = {name: (x, self.label(x)) for name, (x, _) in self.splits.items()}

    def _inputs(self, purpose: str, n: int) -> Tensor:
        generator = torch.Generator().manual_seed(derived_seed(self.seed, purpose))
        return self.sigma * torch.randn(n, self.input_dim, generator=generator)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        sizes = {"val": self.val_size, "test": self.test_size}
        if self.samples != "infinite":
            sizes["train"] = int(self.samples)
        inputs = {name: self._inputs(f"{name}_inputs", n) for name, n in sizes.items()}
        self.splits = {name: (x, self.label(x)) for name, x in inputs.items()}

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.input_dim,)

    def train_batches(self) -> Iterator[Split]:
        """Fresh inputs (``samples: infinite``) or the fixed training inputs, labelled when drawn."""
        if self.samples == "infinite":
            return iter(
                FreshBatches(
                    self.input_dim, self.sigma, self.batch_size, self.seed, self.label, self._position
                )
            )
        return ((x, self.label(x)) for x, _ in super().train_batches())
