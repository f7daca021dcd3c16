"""lth's Hydra plugins: Hydra instantiates a sweeper only from the ``hydra_plugins`` namespace package, so
``hydra/sweeper=stacked`` (conf/hydra/sweeper/stacked.yaml) names this subclass of
``lth.run.sweeper.StackedSweeper``, where the sweeper lives."""

from lth.run import sweeper as _sweeper


class StackedSweeper(_sweeper.StackedSweeper):
    """``hydra/sweeper=stacked``: ``lth.run.sweeper.StackedSweeper``."""
