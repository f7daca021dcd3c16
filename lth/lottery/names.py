"""The names the lottery's config keys allow, as plain tuples: no torch, so checking a config is fast.

The registries that implement them (``pruning.CRITERIA``, ``at_init.SALIENCIES``, ``optim.OPTIMIZERS``
and ``SCHEDULES``, ``restarts.WEIGHT_RULES``) are keyed by exactly these names, in this order; each
module asserts it on import.
"""

from __future__ import annotations

CRITERIA = (  # prune.criterion (pruning.CRITERIA)
    "large_final",
    "magnitude",
    "small_final",
    "large_init",
    "small_init",
    "magnitude_increase",
    "movement",
    "random",
    "large_final_same_sign",
    "large_final_diff_sign",
    "large_init_large_final",
    "small_init_small_final",
)
SCOPES = ("layer", "global")  # prune.scope
STRUCTURES = ("unstructured", "neuron", "filter")  # prune.structure
STRUCTURED_CRITERIA = ("magnitude", "large_final")  # prune.criterion with a structure
NORMS = (1, 2)  # prune.norm
SALIENCIES = ("snip", "grasp", "synflow")  # prune.at_init (at_init.SALIENCIES)
BUDGETS = ("steps", "flops")  # train.budget
OPTIMIZERS = ("sgd", "adam")  # optim.name (optim.OPTIMIZERS)
SCHEDULES = ("constant", "cosine", "linear", "step")  # optim.schedule (optim.SCHEDULES)
WEIGHT_RULES = ("reshuffle", "signed_constant", "signed_reinit", "signed_reshuffle")  # restarts.WEIGHT_RULES
STRATEGIES = ("winning_ticket", "rewind", "reinit", "random_prune", "ticket", *WEIGHT_RULES)  # init.name
PRUNED_WEIGHTS = ("zero", "frozen_init")  # init.pruned_weights
OUTPUT_LAYER = ("keep", "reinit")  # init.ticket.output_layer
