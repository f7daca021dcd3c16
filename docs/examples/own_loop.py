"""Drive an lth Lottery from your own PyTorch loop: no Lightning, Hydra or W&B.

Three IMP levels (20% of each hidden layer's survivors, 10% of the output layer's) of a small MLP on
synthetic data, survivors reset to theta_0 (the winning ticket). Run it:

    python docs/examples/own_loop.py

tests/test_docs.py runs it and checks what it prints against the masks it returns.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lth.lottery import (
    Budget,
    ForwardCost,
    Lottery,
    MaskedNetwork,
    PruningPlan,
    Restart,
    prunable_weight_names,
)
from lth.lottery.rates import tensor_rates


def make_data(seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """10 Gaussian classes in 20 dimensions: 2,000 training, 500 validation and 500 test examples."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(10, 20, generator=g)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 10, (n,), generator=g)
        return centres[y] + 0.8 * torch.randn(n, 20, generator=g), y

    return {"train": draw(2000), "val": draw(500), "test": draw(500)}


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def main(seed: int = 0, levels: int = 3, steps: int = 150) -> tuple[Lottery, list[dict[str, torch.Tensor]]]:
    data = make_data(seed)
    model = make_model(seed)
    network = MaskedNetwork(model, prunable_weight_names(model))  # one bool mask per Linear weight

    @torch.no_grad()
    def evaluate(x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        network.eval()
        out = network(x)
        network.train()
        return {"loss": F.cross_entropy(out, y).item(), "acc": (out.argmax(1) == y).float().mean().item()}

    lottery = Lottery(
        network,
        levels=levels,  # pruning events after the dense level 0
        budget=Budget(steps),  # optimizer steps per level
        cost=ForwardCost(model, (20,)),  # forward MACs per example, for the record
        eval_every=50,
        # magnitude pruning per layer: 20% of each tensor's survivors, the output layer at half of that
        plan=PruningPlan("magnitude", "layer", 0.2, tensor_rates({"rate": 0.2}, model, network.prunable)),
        restart=Restart("winning_ticket", seed=seed),  # survivors go back to theta_0
        fresh_state=lambda s: make_model(s).state_dict(),  # for restarts that redraw weights (reinit)
        data=lambda split: data[split],
        evaluate=evaluate,
        batch_size=64,
    )

    optimizer = torch.optim.SGD(network.parameters(), lr=0.05, momentum=0.9)
    order = torch.Generator().manual_seed(seed)
    x_train, y_train = data["train"]
    masks, step = [], 0
    lottery.start()  # records theta_0
    while not lottery.finished:
        rows = torch.randint(0, len(x_train), (64,), generator=order)
        loss = F.cross_entropy(network(x_train[rows]), y_train[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        network.mask_gradients()  # pruned weights get no gradient...
        optimizer.step()
        network.apply_masks()  # ...and stay exactly zero
        step += 1
        outcome = lottery.after_step(step, loss.detach()[None])  # evaluates, ends the level when due
        if outcome.record is not None:
            masks.append(network.mask_dict())
            if not lottery.finished:
                lottery.next_level(step)  # prune, then restart the survivors
                optimizer.state.clear()  # a fresh optimizer state every level

    print("level  weights %  test acc %  early-stop step  supermask acc %")
    for r in lottery.state.records:
        print(
            f"{r.level:5d}  {100 * r.weights_remaining:9.1f}  {100 * r.test_acc:10.2f}"
            f"  {r.early_stop_step:15d}  {100 * r.supermask_test_acc:15.2f}"
        )
    return lottery, masks


if __name__ == "__main__":
    main()
