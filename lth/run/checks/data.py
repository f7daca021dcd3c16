"""Checks of ``data``: the validation split, label noise and where a dataset is downloaded from."""

from __future__ import annotations

import re

from omegaconf import DictConfig, ListConfig

from lth.data.download import is_file_name
from lth.run.checks.rules import TRUE_OR_FALSE, Check, Rule, int_in, is_number

MIRRORS: Rule = (
    lambda v: (
        isinstance(v, ListConfig)
        and len(v) > 0
        and all(str(u).startswith(("http://", "https://")) for u in v)
    ),
    "a non-empty list of http(s) base URLs, tried in order",
)
MD5S: Rule = (
    lambda v: (
        isinstance(v, DictConfig)
        and len(v) > 0
        and all(is_file_name(str(k)) and re.fullmatch(r"[0-9a-f]{32}", str(h)) for k, h in v.items())
    ),
    "a non-empty mapping of file names to lowercase hex MD5s, e.g. {t10k-labels-idx1-ubyte.gz:ec29112d...}",
)


def data_checks(cfg: DictConfig) -> list[Check]:
    return [("data.val_size", int_in(1))]


def label_noise_checks(cfg: DictConfig) -> list[Check]:
    return [("data.label_noise", ((lambda v: is_number(v) and 0 <= v <= 1), "a number in [0, 1]"))]


def download_checks(cfg: DictConfig) -> list[Check]:
    checks = [("data.download", TRUE_OR_FALSE)] if "download" in cfg.data else []
    if "mirrors" in cfg.data:
        checks += [("data.mirrors", MIRRORS), ("data.md5", MD5S)]
    return checks
