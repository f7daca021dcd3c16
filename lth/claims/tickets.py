"""The claims about unstructured tickets: Frankle & Carbin, the learning rate, Zhou et al.

Accuracies are test accuracy at the early-stop point (minimum validation loss), as Frankle & Carbin
report them, averaged over the seeds of an arm; "the ticket" is each job's last level.

Calibration: every number below is a measured check of ``python -m lth.claims [--quick] --seed S`` on this
code (2026-12-06), the full scale with 4 seeds per arm (seed sets S = 0, 100, 200), ``--quick`` with 2
(S = 0, 100, 200, 300). Thresholds sit well outside what the runs gave, so a pass is not luck of one run;
where the quick scale's 2 seeds scatter more, its threshold is looser and says so.

- frankle (at 18.5% of the weights full, 18.6% quick; accuracies at early stop):
  ticket-dense: full -0.0035, +0.0142, +0.0143; quick -0.0140, -0.0155, +0.0180, +0.0025
  (threshold -0.03 full, -0.04 quick: a match within 3, or 4, points).
  ticket-reinit: full 0.117, 0.138, 0.128; quick 0.097, 0.096, 0.128, 0.116 (threshold 0.05).
  ticket-random_prune: full 0.127, 0.141, 0.132; quick 0.120, 0.106, 0.126, 0.130 (threshold 0.05).
  early-stop step ticket/reinit: full 0.76, 0.79, 0.71; quick 0.73, 0.85, 0.83, 0.74 (threshold 0.95).
- learning_rate (18.6% of the weights; --quick is the full sweep with 2 seeds): gap at lr 0.01: full
  0.233, 0.237, 0.247; quick (S = 0, 100, 200) 0.245, 0.255, 0.244, and the full runs' other seed pairs
  {2,3}, {102,103} 0.221, 0.220 (threshold 0.1). Gap at lr 0.1 over gap at lr 0.01: full 0.146, 0.153,
  0.217; quick 0.096, 0.142, 0.209, pairs 0.201, 0.166 (threshold 0.5). A first quick scale (2 events
  of 60%, 600 steps) gave ratios 0.45, 0.49, 0.47, 0.61: at 600 steps reinit had not converged at lr 0.1
  either, so it was dropped.
- zhou: best level's supermask accuracy (chance 0.1): full 0.293, 0.316, 0.280; quick 0.278, 0.301,
  0.269, 0.331 (threshold 0.2). Its lead over a random mask's: full 0.200, 0.219, 0.179; quick 0.182,
  0.197, 0.161, 0.216 (threshold 0.1). Worst sign-keeping restart minus best sign-losing one: full 0.101,
  0.111, 0.114; quick (signed_constant - reshuffle) 0.148, 0.116, 0.115, 0.129 (threshold 0.05).
"""

from __future__ import annotations

from pathlib import Path

from lth.claims import measure as m
from lth.claims import plots
from lth.claims.spec import Check, Outcome

ACC = "test_acc_at_early_stop"
CHANCE = 0.1  # MNIST-1D: 10 balanced classes

# frankle: ticket - dense at least (a match within 3 points; 4 with --quick's 2 seeds), ticket - each
# control at least, and the ticket's early-stop step over the reinitialised network's at most
FRANKLE_MATCH = {False: -0.03, True: -0.04}
FRANKLE_MARGIN = 0.05
FRANKLE_EARLY = 0.95


def frankle(root: Path, quick: bool) -> Outcome:
    jobs = m.load(root)
    ticket, reinit, rand = (m.select(jobs, init=i) for i in ("winning_ticket", "reinit", "random_prune"))
    dense, found = m.mean(ticket, ACC, 0), m.mean(ticket, ACC)
    early = m.mean(ticket, "early_stop_step") / m.mean(reinit, "early_stop_step")
    checks = [
        Check("ticket-dense", found - dense, FRANKLE_MATCH[quick]),
        Check("ticket-reinit", found - m.mean(reinit, ACC), FRANKLE_MARGIN),
        Check("ticket-random_prune", found - m.mean(rand, ACC), FRANKLE_MARGIN),
        Check("early-stop step ticket/reinit", early, FRANKLE_EARLY, "<="),
    ]
    weights = m.mean(ticket, "weights_remaining")
    details = (
        f"at {weights:.1%} of the weights (n={len(ticket)} seeds): dense {dense:.3f}, ticket {found:.3f}, "
        f"reinit {m.mean(reinit, ACC):.3f}, random_prune {m.mean(rand, ACC):.3f}; early-stop step ticket "
        f"{m.mean(ticket, 'early_stop_step'):.0f}, reinit {m.mean(reinit, 'early_stop_step'):.0f}"
    )
    fig, (acc, stop) = plots.figure(2, "Frankle & Carbin: IMP on MNIST-1D, MLP 100-100, Adam 1.2e-3")
    arms = {"winning_ticket": ticket, "reinit": reinit, "random_prune": rand}
    plots.lines(acc, {k: m.curve(v, ACC) for k, v in arms.items()}, "test accuracy at early stop (%)")
    plots.hline(acc, dense * 100, "dense (level 0)")
    plots.lines(stop, {k: m.curve(v, "early_stop_step") for k, v in arms.items()}, "early-stop step", 1.0)
    return Outcome(checks, details, fig)


# learning_rate: the ticket's gap over reinit at lr 0.01 at least, and the gap at lr 0.1 over it at most
LR_GAP = 0.1
LR_SHRINK = 0.5


def learning_rate(root: Path, quick: bool) -> Outcome:
    jobs = m.load(root)
    gaps = {}
    for lr in ("0.01", "0.1"):
        ticket = m.select(jobs, init="winning_ticket", optim__lr=lr)
        reinit = m.select(jobs, init="reinit", optim__lr=lr)
        gaps[lr] = (m.mean(ticket, ACC), m.mean(reinit, ACC))
    small, large = (gaps[lr][0] - gaps[lr][1] for lr in ("0.01", "0.1"))
    checks = [
        Check("gap(ticket-reinit) at lr 0.01", small, LR_GAP),
        Check(
            "gap at lr 0.1 / gap at lr 0.01", large / small if small > 0 else float("nan"), LR_SHRINK, "<="
        ),
    ]
    weights = m.mean(jobs, "weights_remaining")
    details = f"at {weights:.1%} of the weights: " + "; ".join(
        f"lr {lr}: ticket {t:.3f}, reinit {r:.3f}, gap {t - r:+.3f}" for lr, (t, r) in gaps.items()
    )
    fig, axes = plots.figure(2, "Liu et al.: the ticket's gap over reinit, SGD momentum 0.9, MNIST-1D")
    for ax, lr in zip(axes, ("0.01", "0.1"), strict=True):
        arms = {i: m.select(jobs, init=i, optim__lr=lr) for i in ("winning_ticket", "reinit")}
        plots.lines(
            ax, {k: m.curve(v, ACC) for k, v in arms.items()}, f"test accuracy at early stop (%), lr {lr}"
        )
    lo = min(a.get_ylim()[0] for a in axes)
    hi = max(a.get_ylim()[1] for a in axes)
    for ax in axes:
        ax.set_ylim(lo, hi)
    return Outcome(checks, details, fig)


SIGNED = ("signed_constant", "signed_reinit", "signed_reshuffle")
UNSIGNED = ("reshuffle", "reinit")
# zhou: the best level's supermask accuracy at least, its lead over a random mask's, and the worst
# sign-keeping restart's lead over the best sign-losing one at the last level
ZHOU_SUPERMASK = 0.2
ZHOU_OVER_RANDOM = 0.1
ZHOU_SIGNS = 0.05


def zhou(root: Path, quick: bool) -> Outcome:
    jobs = m.load(root)
    ticket, rand = m.select(jobs, init="winning_ticket"), m.select(jobs, init="random_prune")
    pruned = m.levels(ticket)[1:]
    supermask = {lv: m.mean(ticket, "supermask_test_acc", lv) for lv in pruned}
    best = max(supermask, key=supermask.__getitem__)
    random_mask = m.mean(rand, "supermask_test_acc", best)
    present = {i for j in jobs for k, i in j.overrides.items() if k == "init"}
    signed = {i: m.mean(m.select(jobs, init=i), ACC) for i in SIGNED if i in present}
    unsigned = {i: m.mean(m.select(jobs, init=i), ACC) for i in UNSIGNED if i in present}
    worst, top = min(signed, key=signed.__getitem__), max(unsigned, key=unsigned.__getitem__)
    checks = [
        Check(f"supermask acc (level {best})", supermask[best], ZHOU_SUPERMASK),
        Check("supermask-random mask's", supermask[best] - random_mask, ZHOU_OVER_RANDOM),
        Check(f"{worst}-{top}", signed[worst] - unsigned[top], ZHOU_SIGNS),
    ]
    details = (
        f"supermask (large_final_same_sign on theta_0, untrained) {supermask[best]:.3f} at "
        f"{m.mean(ticket, 'weights_remaining', best):.1%} of the weights, a random mask {random_mask:.3f}, "
        f"chance {CHANCE}; after retraining at {m.mean(ticket, 'weights_remaining'):.1%}: winning_ticket "
        f"{m.mean(ticket, ACC):.3f}, " + ", ".join(f"{k} {v:.3f}" for k, v in {**signed, **unsigned}.items())
    )
    fig, (restart, mask) = plots.figure(2, "Zhou et al.: large_final_same_sign masks, MNIST-1D, Adam 1.2e-3")
    arms = ["winning_ticket", *signed, *unsigned]
    plots.lines(
        restart, {i: m.curve(m.select(jobs, init=i), ACC) for i in arms}, "test accuracy at early stop (%)"
    )
    plots.lines(
        mask,
        {
            "ticket's supermask": m.curve(ticket, "supermask_test_acc"),
            "random mask": m.curve(rand, "supermask_test_acc"),
        },
        "supermask test accuracy, untrained (%)",
    )
    plots.hline(mask, CHANCE * 100, "chance")
    return Outcome(checks, details, fig)
