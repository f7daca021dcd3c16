"""In-memory datasets: tensors loaded once, batches drawn by indexing.

The batch of global step ``t`` is a pure function of ``(seed, t)``: epoch ``e = t // batches_per_epoch``
is a fresh ``randperm`` seeded by ``(seed, e)``, and a training augmentation draws from a generator
seeded by ``(seed, t)``. A resumed run therefore continues with exactly the batches it would have
seen, and under DDP rank ``r`` of ``w`` takes every ``w``-th row of each global batch.

Lightning's training "dataloader" is a ``StepStream``: each of its items is the same iterator over the
per-step batches, and the module's ``training_step`` takes one batch per optimizer step from it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytorch_lightning as pl
import torch
from torch import Tensor

from lth.errors import invalid
from lth.seeds import derived_seed

if TYPE_CHECKING:
    from lth.data.teacher_student import TeacherStudentReplicates

Split = tuple[Tensor, Tensor]
Augmentation = Callable[[Tensor, torch.Generator], Tensor]


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    """The order of the ``n`` training examples in ``epoch`` of a job with ``seed``."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(derived_seed(seed, "batches", epoch)))


def split_order(n: int, seed: int) -> Tensor:
    """The permutation of the ``n`` loaded training examples a job with ``seed`` splits: the first
    ``val_size`` are its validation split, the rest its training split."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(derived_seed(seed, "val")))


class ShuffledBatches:
    """An endless stream of shuffled mini-batches of ``(x, y)``; ``position()`` gives (start step, rank, world).

    ``augment(x, generator)``, if given, transforms each global batch of inputs.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        seed: int,
        position: Callable[[], tuple[int, int, int]],
        augment: Augmentation | None = None,
    ) -> None:
        self.x, self.y, self.batch_size, self.seed, self.position = x, y, batch_size, seed, position
        self.augment = augment
        self.batches_per_epoch = len(x) // batch_size

    def permutation(self, epoch: int) -> Tensor:
        return epoch_permutation(len(self.x), self.seed, epoch)

    def on_device(self, rank: int = 0, world: int = 1) -> DrawnOnDevice:
        """These batches (``augment`` None) drawn on the data's device, for a captured step."""
        columns = torch.arange(rank, self.batch_size, world)
        return DrawnOnDevice(self.x, self.y, self.permutation, len(self.x), self.batch_size, columns)

    def __iter__(self) -> Iterator[Split]:
        step, rank, world = self.position()
        epoch, index = divmod(step, self.batches_per_epoch)
        while True:
            perm = self.permutation(epoch).to(self.x.device)
            for i in range(index, self.batches_per_epoch):
                rows = perm[i * self.batch_size : (i + 1) * self.batch_size]
                if self.augment is None:
                    rows = rows[rank::world]
                    yield self.x.index_select(0, rows), self.y.index_select(0, rows)  # 2x faster than x[rows]
                else:
                    step = epoch * self.batches_per_epoch + i
                    generator = torch.Generator().manual_seed(derived_seed(self.seed, "augment", step))
                    x = self.augment(self.x.index_select(0, rows), generator)
                    yield x[rank::world], self.y.index_select(0, rows)[rank::world]
            epoch, index = epoch + 1, 0


class DrawnOnDevice:
    """The batches of ``ShuffledBatches`` (without augmentation) drawn by tensors that stay in place on
    the data's device, as a captured training step needs (``trainer.cuda_graphs``): ``prepare(step)``, on
    the host before each step, loads a new epoch's order and the position in it; ``draw()``, inside the
    step, gathers the batch at the position held on the device and advances it. No value is read back to
    the host. ``orders(epoch)`` gives an epoch's rows of the examples, ``(n,)`` or ``(K, n)`` (replicates).
    ``labels_per_replicate``: ``y`` is ``(K, n_examples)``, replicate ``k``'s labels of every example
    (noisy labels differ between replicates), gathered by (replicate, row)."""

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        orders: Callable[[int], Tensor],
        n: int,
        batch_size: int,
        columns: Tensor,
        labels_per_replicate: bool = False,
    ) -> None:
        self.x, self.y, self.orders, self.batch_size = x, y, orders, batch_size
        self.labels_per_replicate = labels_per_replicate
        self.batches_per_epoch = n // batch_size
        self.order = orders(0).to(x.device)  # the loaded epoch's rows
        self.epoch, self.next_step = 0, 0
        self.position = torch.zeros((), dtype=torch.long, device=x.device)  # the batch within the epoch
        self.columns = columns.to(x.device)  # the columns of a global batch this process takes

    def prepare(self, step: int) -> None:
        """Make the next ``draw()`` give the batch of global step ``step``."""
        epoch, index = divmod(step, self.batches_per_epoch)
        if epoch != self.epoch:
            self.order.copy_(self.orders(epoch))
            self.epoch = epoch
        if step != self.next_step or index == 0:
            self.position.fill_(index)
        self.next_step = step + 1

    def draw(self) -> Split:
        """The prepared step's batch, ``(B, ...)`` (or ``(K, B, ...)``); the position moves on by one."""
        rows = self.order.index_select(-1, self.columns + self.position * self.batch_size)
        self.position.add_(1)
        x = self.x.index_select(0, rows.flatten()).view(*rows.shape, *self.x.shape[1:])
        if self.labels_per_replicate:
            return x, self.y.gather(1, rows)
        y = self.y.index_select(0, rows.flatten()).view(*rows.shape, *self.y.shape[1:])
        return x, y


class ReplicateData:
    """The data of K replicates (replicate ``k`` a job with seed ``seeds[k]``) over one copy of the
    training examples, ``pool``: each replicate has its own validation split (``orders[k][:val_size]``,
    rows of the pool) and batch order, exactly as that job's ``ShuffledBatches``; one gather per step
    gives the ``(K, B, ...)`` batch. ``labels`` (``(K, n_pool)``, class labels), if given, are replicate
    ``k``'s labels of the pool's rows in place of ``pool``'s (``label_noise``: each job noises its own
    training rows)."""

    def __init__(
        self,
        pool: Split,
        test: Split,
        orders: list[Tensor],
        val_size: int,
        batch_size: int,
        seeds: list[int],
        augment: Augmentation | None = None,
        labels: Tensor | None = None,
    ) -> None:
        (self.x, self.y), self.test, self.seeds, self.augment = pool, test, seeds, augment
        self.labels = None if labels is None else labels.to(self.x.device)
        self.val_rows = torch.stack([order[:val_size] for order in orders]).to(self.x.device)
        self.train_rows = torch.stack([order[val_size:] for order in orders]).to(self.x.device)
        self.batch_size = batch_size
        self.batches_per_epoch = self.train_rows.shape[1] // batch_size
        self.device = self.x.device

    def set_level(self, level: int) -> None:
        """Called when the replicates start ``level``: these data stay the same."""

    def split(self, k: int, name: str) -> Split:
        """Replicate ``k``'s split ``name`` (gathered on each call: only the pool is held)."""
        if name == "test":
            return self.test
        rows = (self.val_rows if name == "val" else self.train_rows)[k]
        y = self.y if self.labels is None else self.labels[k]
        return self.x.index_select(0, rows), y.index_select(0, rows)

    def epoch_rows(self, epoch: int) -> Tensor:
        """Every replicate's training rows of the pool in the order of ``epoch``, ``(K, n)``."""
        n = self.train_rows.shape[1]
        perms = torch.stack([epoch_permutation(n, seed, epoch) for seed in self.seeds])
        return self.train_rows.gather(1, perms.to(self.x.device))

    def on_device(self) -> DrawnOnDevice:
        """``batches`` (``augment`` None) drawn on the pool's device, for a captured step."""
        n, columns = self.train_rows.shape[1], torch.arange(self.batch_size)
        if self.labels is None:
            return DrawnOnDevice(self.x, self.y, self.epoch_rows, n, self.batch_size, columns)
        return DrawnOnDevice(self.x, self.labels, self.epoch_rows, n, self.batch_size, columns, True)

    def batches(self, step: int) -> Iterator[Split]:
        """The stacked training batches of every replicate, one per optimizer step from ``step`` on."""
        epoch, index = divmod(step, self.batches_per_epoch)
        size = self.batch_size
        while True:
            rows = self.epoch_rows(epoch)
            for i in range(index, self.batches_per_epoch):
                batch = rows[:, i * size : (i + 1) * size]
                x = self.x.index_select(0, batch.flatten()).view(*batch.shape, *self.x.shape[1:])
                if self.labels is None:
                    y = self.y.index_select(0, batch.flatten()).view(*batch.shape, *self.y.shape[1:])
                else:
                    y = self.labels.gather(1, batch)
                if self.augment is not None:
                    step = epoch * self.batches_per_epoch + i
                    x = torch.stack([self._augment(x[k], seed, step) for k, seed in enumerate(self.seeds)])
                yield x, y
            epoch, index = epoch + 1, 0

    def _augment(self, x: Tensor, seed: int, step: int) -> Tensor:
        assert self.augment is not None
        return self.augment(x, torch.Generator().manual_seed(derived_seed(seed, "augment", step)))


class StepStream:
    """Lightning's view of the per-step batches: every item is one iterator over them, created when
    Lightning starts iterating (after a checkpoint is restored, so it starts at the restored step)."""

    def __init__(self, batches: Callable[[], Iterator[Split]]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[Iterator[Split]]:
        return itertools.repeat(self.batches())


def noisy_labels(y: Tensor, fraction: float, classes: int, seed: int) -> Tensor:
    """``y`` with ``round(fraction * len(y))`` labels (a seeded choice) replaced by uniformly random classes."""
    if not fraction:
        return y
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randperm(len(y), generator=generator)[: round(fraction * len(y))]
    noisy = y.clone()
    noisy[rows] = torch.randint(classes, (len(rows),), generator=generator, dtype=y.dtype)
    return noisy


class InMemoryDataModule(pl.LightningDataModule):
    """Base class: subclasses implement ``load()`` returning the full train and the test split.

    ``val_size`` examples are held out of the training split (a seeded permutation) for validation.
    ``augmentation`` (None here) transforms training batches only. ``label_noise`` (set before
    ``setup``) replaces that fraction of the training labels, chosen by a seeded draw, with uniformly
    random classes (which may equal the true one); validation and test labels stay true.
    """

    num_classes: int  # the model's output width (the target dimension for regression)
    task = "classification"  # classification | regression: selects loss and metrics in lth.run.module
    augmentation: Augmentation | None = None
    label_noise = 0.0

    def __init__(self, root: str, val_size: int, batch_size: int, seed: int) -> None:
        super().__init__()
        self.root, self.val_size, self.batch_size, self.seed = root, val_size, batch_size, seed
        self.splits: dict[str, Split] = {}
        self.true_train_labels: Tensor | None = None  # before label_noise (the same tensor without)
        self.first_step = 0  # the stream's step at the trainer's step 0 (a ticket continues its source's)
        self.served: list[int] | None = None  # the seeds of the replicates served (see serve)
        self.served_noise: list[float] | None = None  # their label_noise, where given (see serve)
        self._replicas: ReplicateData | TeacherStudentReplicates | None = None

    def load(self) -> dict[str, Split]:
        """Return ``{"train": (x, y), "test": (x, y)}``."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        loaded = self.load()
        x, y = loaded["train"]
        if not 0 < self.val_size < len(x):
            raise invalid("data.val_size", self.val_size, f"an integer in [1, {len(x) - 1}] for this dataset")
        if self.batch_size > len(x) - self.val_size:
            allowed = f"at most the {len(x) - self.val_size} training examples left after data.val_size"
            raise invalid("train.batch_size", self.batch_size, allowed)
        order = split_order(len(x), self.seed)
        val, train = order[: self.val_size], order[self.val_size :]
        noisy = noisy_labels(
            y[train], self.label_noise, self.num_classes, derived_seed(self.seed, "label_noise")
        )
        self.splits = {"train": (x[train], noisy), "val": (x[val], y[val]), "test": loaded["test"]}
        self.true_train_labels = y[train] if self.label_noise else noisy

    @property
    def input_shape(self) -> tuple[int, ...]:
        self.setup()
        return tuple(self.splits["train"][0].shape[1:])

    def split(self, name: str) -> Split:
        self.setup()
        return self.splits[name]

    def set_level(self, level: int) -> None:
        """Called by the PruningCallback when ``level`` starts (and on resume); data that changes between
        levels overrides this."""

    def _position(self) -> tuple[int, int, int]:
        trainer = self.trainer
        step = self.first_step + (trainer.global_step if trainer else 0)
        return (step, trainer.global_rank, trainer.world_size) if trainer else (step, 0, 1)

    def hold_on(self, device: torch.device) -> None:
        """Keep every split on ``device`` (moved once), so batches are indexed where they are used."""
        self.setup()
        self.splits = {name: (x.to(device), y.to(device)) for name, (x, y) in self.splits.items()}

    def train_batches(self) -> Iterator[Split]:
        """This rank's training batches, one per optimizer step, from the trainer's global step on."""
        if self.trainer is not None:
            self.hold_on(self.trainer.strategy.root_device)
        x, y = self.split("train")
        return iter(ShuffledBatches(x, y, self.batch_size, self.seed, self._position, self.augmentation))

    @property
    def capture_obstacle(self) -> str | None:
        """Why a captured training step cannot draw this data's batches (None: it can)."""
        return "the training augmentation draws on the host each step" if self.augmentation else None

    def batches_on_device(self) -> DrawnOnDevice:
        """This rank's ``train_batches``, drawn on the trainer's device by a captured step."""
        trainer = self.trainer
        assert trainer is not None and self.augmentation is None
        self.hold_on(trainer.strategy.root_device)
        x, y = self.split("train")
        batches = ShuffledBatches(x, y, self.batch_size, self.seed, self._position)
        return batches.on_device(trainer.global_rank, trainer.world_size)

    def replicate_data(self, seeds: list[int], device: torch.device) -> ReplicateData:
        """The data of replicates with ``seeds`` on ``device``; this module's own train and val splits
        become views of the shared pool (one copy of the training examples in all). With ``label_noise``
        each replicate has its own labels of the pool: the true ones, its own training rows noised as the
        job with its seed noises them."""
        self.hold_on(device)
        (x_val, y_val), (x_train, y_train) = self.splits["val"], self.splits["train"]
        x, y, size = torch.cat([x_val, x_train]), torch.cat([y_val, y_train]), len(x_val)
        self.splits |= {"val": (x[:size], y[:size]), "train": (x[size:], y[size:])}
        own = split_order(len(x), self.seed)  # pool row j holds loaded example own[j]
        pool_row = torch.empty_like(own)
        pool_row[own] = torch.arange(len(own))
        orders = [pool_row[split_order(len(x), seed)] for seed in seeds]
        labels = None
        noise = self.served_noise or [self.label_noise] * len(seeds)
        if any(noise) or self.label_noise:  # the pool's labels are this module's own (noised) ones
            assert self.true_train_labels is not None
            true = torch.cat([y_val.cpu(), self.true_train_labels.cpu()])  # of the pool's rows
            labels = true.repeat(len(seeds), 1)
            for k, (seed, order) in enumerate(zip(seeds, orders, strict=True)):
                train = order[size:]  # in the order the job with ``seed`` noises its training labels
                noise_seed = derived_seed(seed, "label_noise")
                labels[k, train] = noisy_labels(true[train], noise[k], self.num_classes, noise_seed)
        return ReplicateData(
            (x, y), self.splits["test"], orders, size, self.batch_size, seeds, self.augmentation, labels
        )

    # --- a stack's data: this module's own job (K=1), or the replicates it serves -------------------
    def serve(self, seeds: list[int], label_noise: list[float] | None = None) -> None:
        """Serve a stack of replicates, replicate ``k`` the job with seed ``seeds[k]`` (and, if given,
        ``label_noise[k]`` in place of this module's ``label_noise``): the ``stack_*`` methods (and
        Lightning's dataloader) then give their stacked data instead of this job's."""
        self.served, self._replicas = list(seeds), None
        self.served_noise = None if label_noise is None else [float(f) for f in label_noise]

    @property
    def replicas(self) -> ReplicateData | TeacherStudentReplicates:
        """The served replicates' data, on the trainer's device (CPU before training)."""
        assert self.served is not None
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if self._replicas is None or self._replicas.device != device:
            self._replicas = self.replicate_data(self.served, device)
        return self._replicas

    def stack_split(self, k: int, name: str) -> Split:
        """Split ``name`` of the stack's lottery ``k``."""
        return self.replicas.split(k, name) if self.served is not None else self.split(name)

    def stack_batches(self) -> Iterator[Split]:
        """The stack's training batches, one per optimizer step from the trainer's global step on:
        ``(B, ...)`` for this job, ``(K, B, ...)`` for served replicates."""
        if self.served is None:
            return self.train_batches()
        return self.replicas.batches(self._position()[0])

    def stack_batches_on_device(self) -> DrawnOnDevice:
        """``stack_batches`` drawn on the trainer's device by a captured step."""
        return self.replicas.on_device() if self.served is not None else self.batches_on_device()

    def start_level(self, level: int) -> None:
        """The stack starts (or resumes) ``level``: data that changes between levels follows."""
        if self.served is not None:
            self.replicas.set_level(level)
        else:
            self.set_level(level)

    def train_dataloader(self) -> StepStream:
        return StepStream(self.stack_batches)
