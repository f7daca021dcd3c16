"""Every mask criterion against masks computed by hand, in layer and global scope."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from omegaconf import DictConfig

from lth.lottery.pruning import CRITERIA, prune_masks, score
from lth.run.job import build_job, execute
from lth.seeds import derived_seed

# Six weights; ranks (ascending) of |w_init| = [5, 4, 0, 3, 2, 1], of |w_final| = [4, 0, 5, 3, 2, 1].
# Signs agree at positions 0, 3, 4 and differ at 1, 2, 5.
W_INIT = torch.tensor([0.8, -0.7, 0.1, -0.5, 0.3, -0.2])
W_FINAL = torch.tensor([0.6, 0.05, -0.9, -0.45, 0.35, 0.12])

# rate 0.5 removes round(0.5 * 6) = 3 weights; the kept positions, worked out by hand:
KEPT = {
    "large_final": {0, 2, 3},  # |w_f| = .6 .05 .9 .45 .35 .12
    "magnitude": {0, 2, 3},
    "small_final": {1, 4, 5},
    "large_init": {0, 1, 3},  # |w_i| = .8 .7 .1 .5 .3 .2
    "small_init": {2, 4, 5},
    "magnitude_increase": {2, 3, 4},  # |w_f| - |w_i| = -.2 -.65 .8 -.05 .05 -.08
    "movement": {1, 2, 5},  # |w_f - w_i| = .2 .75 1.0 .05 .05 .32
    "large_final_same_sign": {0, 3, 4},  # .6 0 0 .45 .35 0
    "large_final_diff_sign": {1, 2, 5},  # 0 .05 .9 0 0 .12
    # min(rank_init, rank_final) = [4, 0, 0, 3, 2, 1]: the threshold "rank >= 2 on both" keeps 3
    "large_init_large_final": {0, 3, 4},
    # descending ranks [0, 1, 5, 2, 3, 4] and [1, 5, 0, 2, 3, 4], min = [0, 1, 0, 2, 3, 4]
    "small_init_small_final": {3, 4, 5},
}


def as_mask(positions: set[int], n: int = 6) -> list[bool]:
    return [i in positions for i in range(n)]


def test_every_registered_criterion_has_a_hand_computed_case() -> None:
    assert set(CRITERIA) == {*KEPT, "random"}


@pytest.mark.parametrize("criterion", sorted(KEPT))
def test_layer_scope_matches_the_hand_computed_mask(criterion: str) -> None:
    scores = score(criterion, {"w": W_INIT}, {"w": W_FINAL})
    mask = {"w": torch.ones(6, dtype=torch.bool)}
    new = prune_masks(scores, mask, {"w": 0.5}, "layer", 0.5, seed=3)["w"]
    assert new.tolist() == as_mask(KEPT[criterion])


@pytest.mark.parametrize("criterion", sorted(KEPT))
def test_global_scope_ranks_the_pooled_tensors_as_one(criterion: str) -> None:
    # the six weights split over two tensors (1x2 and 2x2): global scope must give the same six
    # decisions, percentile ranks included, since it ranks the pooled population
    w_init = {"a": W_INIT[:2].view(1, 2), "b": W_INIT[2:].view(2, 2)}
    w_final = {"a": W_FINAL[:2].view(1, 2), "b": W_FINAL[2:].view(2, 2)}
    masks = {name: torch.ones_like(w, dtype=torch.bool) for name, w in w_init.items()}
    rates = {"a": 0.5, "b": 0.5}
    new = prune_masks(score(criterion, w_init, w_final), masks, rates, "global", 0.5, seed=3)
    assert torch.cat([new["a"].flatten(), new["b"].flatten()]).tolist() == as_mask(KEPT[criterion])


def test_layer_scope_of_the_split_tensors_differs_from_global() -> None:
    # large_init_large_final per tensor: "a" = positions 0, 1 keeps round-half-even 1 of 2 -> 0
    # (ranks (1, 1) vs (0, 0)); "b" = positions 2..5 keeps 2: ranks of |w_i| .1 .5 .3 .2 -> 0 3 2 1,
    # of |w_f| .9 .45 .35 .12 -> 3 2 1 0, min 0 2 1 0 -> keeps positions 3 and 4
    w_init = {"a": W_INIT[:2], "b": W_INIT[2:]}
    w_final = {"a": W_FINAL[:2], "b": W_FINAL[2:]}
    masks = {name: torch.ones_like(w, dtype=torch.bool) for name, w in w_init.items()}
    scores = score("large_init_large_final", w_init, w_final)
    new = prune_masks(scores, masks, {"a": 0.5, "b": 0.5}, "layer", 0.5, seed=3)
    assert new["a"].tolist() == [True, False] and new["b"].tolist() == [False, True, True, False]


def test_percentile_and_rule_hits_the_count_and_splits_a_tied_threshold_by_seed() -> None:
    # ranks of |w_i|: 0 1 2 3, of |w_f|: 3 2 1 0, min: 0 1 1 0
    w_init, w_final = torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([0.4, 0.3, 0.2, 0.1])
    scores = score("large_init_large_final", {"w": w_init}, {"w": w_final})
    mask = {"w": torch.ones(4, dtype=torch.bool)}

    def kept(rate: float, seed: int) -> list[bool]:
        return prune_masks(scores, mask, {"w": rate}, "layer", rate, seed)["w"].tolist()

    assert all(kept(0.5, seed) == [False, True, True, False] for seed in range(5))  # q = 1 keeps 2
    one = {tuple(kept(0.75, seed)) for seed in range(20)}  # target 1: the two at q = 1 tie
    assert one == {(False, True, False, False), (False, False, True, False)}


def test_percentile_and_rule_ignores_already_pruned_weights() -> None:
    # position 0 is pruned; the ranks are taken among the five alive weights only
    mask = {"w": torch.tensor([False, True, True, True, True, True])}
    scores = score("large_init_large_final", {"w": W_INIT}, {"w": W_FINAL})
    new = prune_masks(scores, mask, {"w": 0.4}, "layer", 0.4)["w"]  # removes 2 of 5
    # alive ranks of |w_i| .7 .1 .5 .3 .2 -> 4 0 3 2 1, of |w_f| .05 .9 .45 .35 .12 -> 0 4 3 2 1,
    # min 0 0 3 2 1 -> keeps positions 3, 4, 5
    assert new.tolist() == as_mask({3, 4, 5})


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_random_criterion_is_seeded_uniform_and_counts_exactly(scope: str) -> None:
    weights = {"a": torch.randn(20, 30), "b": torch.randn(10, 30)}
    masks = {name: torch.ones_like(w, dtype=torch.bool) for name, w in weights.items()}
    rates = {"a": 0.5, "b": 0.5}
    scores = score("random", weights, weights)

    def draw(seed: int) -> dict[str, torch.Tensor]:
        return prune_masks(scores, masks, rates, scope, 0.5, seed)

    first = draw(0)
    assert int(first["a"].sum() + first["b"].sum()) == 450
    assert all(torch.equal(first[n], draw(0)[n]) for n in masks)
    assert not torch.equal(first["a"], draw(1)["a"])
    # not positional: the first and the last rows keep about half each
    assert 0.3 < first["a"][:5].float().mean() < 0.7 and 0.3 < first["a"][-5:].float().mean() < 0.7


def test_the_lottery_scores_w_init_as_theta_0_even_when_rewinding(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg(
        "prune.criterion=large_init_large_final", "prune.scope=global", "init=rewind", "init.rewind_step=5"
    )
    job = build_job(cfg)
    execute(job)
    theta_0 = job.lottery.state.theta_0
    plan = job.lottery.plan
    for level in (0, 1):
        masks = job.run_dir.load_masks(level)
        w_final = {name: tensor for name, tensor in job.run_dir.load_state(level).items() if name in masks}
        scores = score("large_init_large_final", theta_0, w_final)
        ties = derived_seed(cfg.seed, "ties", level)
        expected = prune_masks(scores, masks, plan.rates, "global", 0.2, ties)
        pruned = job.run_dir.load_masks(level + 1)
        assert all(torch.equal(pruned[n], expected[n]) for n in pruned), level
