"""Entry point: ``python -m lth.train [overrides]`` runs one lottery; ``-m`` sweeps (``lth.run.job``).

The config is composed and checked before Lightning, W&B or plotting are imported, so ``--help``,
``--cfg job`` and a config error come back fast.
"""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from lth.errors import ConfigError
from lth.run.config import precheck


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def hydra_main(cfg: DictConfig) -> list[dict[str, Any]]:
    from lth.run.console import quiet_third_party_noise
    from lth.run.job import run

    quiet_third_party_noise()
    try:
        return run(cfg)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def main() -> None:
    """Check every job of the command line first (one-line error, exit 2), then hand over to Hydra."""
    problem = precheck(sys.argv[1:])
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(2)
    hydra_main()


if __name__ == "__main__":
    main()
