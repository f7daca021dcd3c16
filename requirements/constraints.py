"""Print the lock (``requirements/ci.txt``) as pip constraints for an environment whose torch is kept:
without torch and without the packages the installed torch requires (an older torch pins e.g. sympy
exactly, and the lock's pin would make pip replace that torch). Run by ``make install``."""

from __future__ import annotations

import importlib.metadata
import re
import sys


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(lock: str) -> None:
    requires = [r for r in importlib.metadata.requires("torch") or [] if "extra ==" not in r]
    keep_free = {"torch"} | {canonical(re.match(r"[A-Za-z0-9._-]+", r).group(0)) for r in requires}
    with open(lock) as f:
        for line in f:
            pin = line.split("==")[0].strip()
            if pin and not pin.startswith("#") and canonical(pin) not in keep_free:
                print(line.strip())


if __name__ == "__main__":
    main(sys.argv[1])
