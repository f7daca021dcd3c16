"""Teacher-student regression (Tian et al., "Luck Matters"): labels are a fixed random ReLU teacher's outputs.

Inputs are ``x ~ N(0, sigma^2 I)``. With ``samples: infinite`` the inputs of global step ``t`` are drawn
from a generator seeded by ``(seed, t)``, so no batch repeats and a resumed run sees the batches it would
have seen; with an integer ``samples`` a fixed training set is shuffled by ``ShuffledBatches``. Validation
and test inputs are fixed. ``retrain_teacher_seed`` gives levels >= 1 another teacher (the 2x2 reinit study):
the callback announces each level through ``set_level``; evaluation labels are recomputed then, and each
training batch is labelled by the current teacher when the training step draws it. The teacher network
is built by the job and handed over as ``teacher`` (seed -> frozen network): data knows no models.
``replicate_data`` gives the data of stacked replicates (``train.replicates``), each the job of its seed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from lth.data.memory import InMemoryDataModule, Split, epoch_permutation
from lth.seeds import derived_seed

Teacher = Callable[[int], nn.Module]
"""Builds the frozen teacher network of a seed (the job passes ``lth.models.make_teacher`` configured)."""


def gaussian_inputs(n: int, dim: int, sigma: float, seed: int, purpose: str, step: int = 0) -> Tensor:
    """``n`` inputs ``x ~ N(0, sigma^2 I)``, drawn from a generator seeded by ``(seed, purpose, step)``."""
    generator = torch.Generator().manual_seed(derived_seed(seed, purpose, step))
    return sigma * torch.randn(n, dim, generator=generator)


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
        return gaussian_inputs(self.batch_size, self.dim, self.sigma, self.seed, "inputs", step)

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
        self.setup()
        if self.switch_teacher(level):
            self.splits = {name: (x, self.label(x)) for name, (x, _) in self.splits.items()}

    def switch_teacher(self, level: int) -> bool:
        """Make the teacher that of ``level``; True if it changed (the labels must follow)."""
        seed = self.teacher_seeds[min(level, 1)]
        if seed == self.teacher_seed:
            return False
        self.teacher_seed, self.teacher = seed, self.make_teacher(seed)
        return True

    def inputs(self, seed: int) -> dict[str, Tensor]:
        """The fixed inputs of the job with ``seed``: ``val``, ``test`` and (integer ``samples``) ``train``."""
        sizes = {"val": self.val_size, "test": self.test_size}
        if self.samples != "infinite":
            sizes["train"] = int(self.samples)
        return {
            name: gaussian_inputs(n, self.input_dim, self.sigma, seed, f"{name}_inputs")
            for name, n in sizes.items()
        }

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = {name: (x, self.label(x)) for name, x in self.inputs(self.seed).items()}

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

    def replicate_data(self, seeds: list[int], device: torch.device) -> TeacherStudentReplicates:
        """The data of replicates with ``seeds`` on ``device``, labelled by this module's teacher."""
        return TeacherStudentReplicates(self, seeds, device)


class TeacherStudentReplicates:
    """The data of K replicates, replicate ``k`` the teacher-student job with seed ``seeds[k]``: its own
    fixed inputs and training inputs, as that job draws them, stacked ``(K, n, dim)`` on ``device``; one
    teacher forward labels every replicate's batch of a step. ``set_level`` switches the teacher as a
    job's level start does."""

    def __init__(self, datamodule: TeacherStudentDataModule, seeds: list[int], device: torch.device) -> None:
        self.datamodule, self.seeds, self.device = datamodule, seeds, device
        inputs = [datamodule.inputs(seed) for seed in seeds]
        self.inputs = {name: torch.stack([i[name] for i in inputs]).to(device) for name in inputs[0]}
        self.labels = {name: self.label(x) for name, x in self.inputs.items()}

    def label(self, x: Tensor) -> Tensor:
        """The current teacher's outputs on stacked inputs ``(K, n, dim)``, in one forward."""
        return self.datamodule.label(x.flatten(0, 1)).view(*x.shape[:2], -1)

    def set_level(self, level: int) -> None:
        if self.datamodule.switch_teacher(level):
            self.labels = {name: self.label(x) for name, x in self.inputs.items()}

    def split(self, k: int, name: str) -> Split:
        """Replicate ``k``'s split ``name``."""
        return self.inputs[name][k], self.labels[name][k]

    def batches(self, step: int) -> Iterator[Split]:
        """The stacked training batches ``(K, B, ...)``, one per optimizer step from ``step`` on, labelled
        when drawn."""
        return ((x, self.label(x)) for x in self._train_inputs(step))

    def _train_inputs(self, step: int) -> Iterator[Tensor]:
        data = self.datamodule
        size = data.batch_size
        if data.samples == "infinite":  # as FreshBatches
            for t in itertools.count(step):
                x = [gaussian_inputs(size, data.input_dim, data.sigma, s, "inputs", t) for s in self.seeds]
                yield torch.stack(x).to(self.device)
        else:  # as ShuffledBatches
            x, n = self.inputs["train"], int(data.samples)
            replicate = torch.arange(len(self.seeds), device=self.device)[:, None]
            for t in itertools.count(step):
                epoch, i = divmod(t, n // size)
                if i == 0 or t == step:
                    orders = torch.stack([epoch_permutation(n, seed, epoch) for seed in self.seeds])
                    orders = orders.to(self.device)
                yield x[replicate, orders[:, i * size : (i + 1) * size]]
