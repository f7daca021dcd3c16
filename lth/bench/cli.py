"""``python -m lth.bench``: lth's training path against a hand-written PyTorch loop, in one process.

Both train LeNet-300-100 on random MNIST-shaped data held in memory (60,000 + 10,000 images written
as idx files and read through ``data=mnist``), batch 60, the same optimizer and the same masks:
- lth: ``build_job`` + ``execute`` (Lightning Trainer, PruningCallback, MaskedNetwork), 2 levels;
  steps/s is taken over level 1, where 20% of the hidden weights (10% of the output layer) are pruned;
- raw: ``randperm`` per epoch, index a batch, forward, backward, step, ``weight *= mask``.
It prints steps/s of each (by wall clock, and by the main thread's CPU time, which other processes
on a shared machine disturb much less), their ratios, the share of an lth step spent drawing its
batch, and the wall time of one IMP level; ``--rounds`` repeats lth + raw and reports medians.
``--compare-threads 1 2`` instead times the default job (``make train``: MNIST-1D, MLP) at each
``trainer.threads`` (rounds interleaved, medians; extra overrides apply, e.g. ``model=lenet300_100``).

``--replicates`` instead prints, per ``--threads`` value, the lottery-steps/s of K stacked replicates
(``train.replicates=K``, K from ``--sizes``) against K sequential single jobs, for the MNIST-1D MLP and
LeNet-300-100 (Adam).

``--sweep`` instead times the mission's sweep (``-m prune.rate=0.2,0.5 optim.lr=0.01,0.1 seed=0,1``,
the default job, one thread) as two whole processes, unstacked and ``hydra/sweeper=stacked``, alternating
``--rounds`` times (the median ratio is the one held against the target).

``--cuda`` instead prints, where a CUDA device is present, steps/s of one lottery and lottery-steps/s of
K stacked replicates, eager against captured (``trainer.cuda_graphs``), for the same two models, and the
default job's level on the GPU against one CPU thread.
"""

from __future__ import annotations

import argparse

from lth.bench.cuda import cuda_main
from lth.bench.raw_loop import raw_loop_main
from lth.bench.replicates import replicates_main
from lth.bench.sweep import sweep_main
from lth.bench.threads import compare_threads
from lth.run.cli import quiet_third_party_noise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lth.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps per level (default 1000)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="lth + raw rounds; medians are reported (default 3)"
    )
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1], help="torch threads (default 1; --replicates: each)"
    )
    parser.add_argument(
        "--compare-threads",
        type=int,
        nargs="+",
        metavar="N",
        help="time the default job at each of these trainer.threads instead, e.g. 1 2",
    )
    parser.add_argument("--optim", choices=["adam", "sgd"], default="adam")
    parser.add_argument(
        "overrides", nargs="*", help="extra lth config overrides, e.g. trainer.enable_progress_bar=false"
    )
    parser.add_argument(
        "--replicates",
        action="store_true",
        help="instead: lottery-steps/s of K stacked replicates vs K sequential jobs (MLP, LeNet-300-100)",
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1, 8, 64], help="K of --replicates and --cuda"
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="instead: the wall time of the mission's 8-job sweep, unstacked against hydra/sweeper=stacked",
    )
    parser.add_argument(
        "--cuda",
        action="store_true",
        help="instead: eager vs captured steps on the GPU (where one is present)",
    )
    args = parser.parse_args(argv)
    quiet_third_party_noise()
    if args.cuda:
        cuda_main(args.sizes)
        return
    if args.compare_threads:
        compare_threads(args.compare_threads, args.steps, args.rounds, args.overrides)
        return
    if args.replicates:
        replicates_main(args.threads, args.sizes)
        return
    if args.sweep:
        sweep_main(args.overrides, args.rounds)
        return
    raw_loop_main(args.threads[0], args.steps, args.rounds, args.optim, args.overrides)
