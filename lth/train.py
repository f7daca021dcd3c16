"""Entry point: ``python -m lth.train [overrides]`` runs one lottery; ``-m`` sweeps.

The config is composed and checked (``lth.run.cli``) before torch, Lightning, W&B or plotting are imported,
so ``--help``, ``--cfg job`` and a config error come back fast; the job itself is ``lth.run.job``.
"""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from lth.run import cli


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def hydra_main(cfg: DictConfig) -> list[dict[str, Any]]:
    return cli.job(cfg)


def main() -> None:
    sys.argv[1:] = argv = cli.prepare(sys.argv[1:])
    hydra_main()
    cli.summarize(argv)


if __name__ == "__main__":
    main()
