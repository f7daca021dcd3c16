"""The claims, in the order they run and print. Each sweep is a preset of ``conf/experiment/claim_*.yaml``
(its ``hydra.sweeper.params`` are the arms), plus the seeds, plus the ``--quick`` overrides."""

from __future__ import annotations

from lth.claims.spec import Claim

CLAIMS: tuple[Claim, ...] = (
    Claim(
        name="frankle",
        paper="Frankle & Carbin 2019",
        statement=(
            "At roughly 10-20% of the weights a winning ticket matches the dense network, beats random "
            "reinitialisation and random pruning, and reaches its early-stop point sooner than the "
            "reinitialised network."
        ),
        preset="claim_frankle",
        seeds=4,
        quick_seeds=2,
        quick=("prune.rate=0.45", "prune.levels=3"),
        evaluate="tickets.frankle",
    ),
    Claim(
        name="learning_rate",
        paper="Liu et al. 2019; reproducibility report (seed 002)",
        statement="The winning ticket's advantage over random reinitialisation shrinks at a large learning rate.",
        preset="claim_learning_rate",
        seeds=4,
        quick_seeds=2,
        evaluate="tickets.learning_rate",  # --quick: 2 seeds (at 600 steps reinit had not converged at lr 0.1)
    ),
    Claim(
        name="zhou",
        paper="Zhou et al. 2019 (seed 004)",
        statement=(
            "The supermask of a trained ticket applied to theta_0, untrained, scores far above chance; at "
            "restart, keeping the weights' signs matters more than keeping their magnitudes."
        ),
        preset="claim_zhou",
        seeds=4,
        quick_seeds=2,
        quick=(
            "prune.rate=0.6",
            "prune.levels=2",
            "train.steps=600",
            "init=winning_ticket,signed_constant,reshuffle,random_prune",
        ),
        evaluate="tickets.zhou",
    ),
    Claim(
        name="scratch",
        paper="Liu et al. 2019, Rethinking (seed 003)",
        statement=(
            "A structurally pruned network trained from scratch with the Scratch-B budget matches the "
            "fine-tuned pruned network."
        ),
        preset="claim_scratch",
        seeds=8,
        quick_seeds=8,  # --quick runs the full sweep: with fewer seeds, or 600 steps, the mean was too noisy
        evaluate="structure.scratch",
    ),
    Claim(
        name="teacher_student",
        paper="Teacher-student study (seed 000); Tian et al. 2019",
        statement=(
            "One-shot magnitude pruning of an over-parameterised student beats random pruning of the same "
            "size, and its surviving units specialise to the teacher's units."
        ),
        preset="claim_teacher_student",
        seeds=3,
        quick_seeds=2,
        quick=("train.steps=600", "train.eval_every=200", "optim.lr=0.1"),
        evaluate="structure.teacher_student",
    ),
    Claim(
        name="redundancy",
        paper="Redundancy study (seed 001); Neyshabur et al. 2018",
        statement=(
            "Hidden layers move less from their initialisation as the width grows; magnitude-pruned tickets "
            "do not spread their survivors over units like a random mask of the same count, and a random "
            "mask does."
        ),
        preset="claim_redundancy",
        seeds=3,
        quick_seeds=2,
        quick=("train.steps=600", "model.width_multiplier=0.5,2"),
        evaluate="structure.redundancy",
    ),
)

BY_NAME = {claim.name: claim for claim in CLAIMS}
