"""Results stay bit-identical: two small lotteries against a stored reference (records, masks, weights).

The reference (``tests/reference/<name>.json``) holds one fingerprint per machine signature (torch
version, CPU kernel capability, CPU model: float results depend on all three, and on the thread count,
so the test runs at one thread). The entries were recorded before a refactor (the lottery-core redesign
on the first machine, the one-engine change on the AMD EPYC / AVX2 one) and the test proved it changed
nothing. On a machine with no entry it skips, naming the signature; ``LTH_WRITE_REFERENCE=1 pytest
tests/test_reference.py`` on a known-good commit adds (or, after a deliberate change of results,
rewrites) this machine's entry, and the diff of the JSON shows what changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from datafiles import write_mnist
from omegaconf import DictConfig

from lth.run.job import build_job, execute

REFERENCE = Path(__file__).parent / "reference"
JOBS = {
    "default": ["trainer.enable_progress_bar=false"],
    "frankle_lenet": ["experiment=frankle_lenet", "data.val_size=100", "trainer.enable_progress_bar=false"],
}


def digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 (16 hex digits) of a tensor dict: names and raw bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def machine() -> str:
    """The signature a reference is recorded under: torch, its CPU kernels, the CPU model."""
    cpuinfo = Path("/proc/cpuinfo")
    model = re.search(r"model name\s*: (.*)", cpuinfo.read_text()) if cpuinfo.exists() else None
    cpu = model.group(1).strip() if model else platform.processor() or "unknown cpu"
    return f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, {cpu}"


def fingerprint(run: Path) -> dict:
    """Everything a job wrote that must not change: its records (less wall time and the analyses, which
    came after the reference), masks, weights, DONE.

    A level's ``state.pt`` (the full model state) is digested as ``weights.pt``, the file it replaced:
    its prunable tensors (those of ``masks.pt``), so the stored reference still applies."""
    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    for record in records:
        record.pop("wall_s")
        record.pop("analysis", None)
    files = {}
    for path in sorted(run.glob("levels/*/*.pt")):
        tensors = torch.load(path, weights_only=True)
        if path.name == "state.pt":
            prunable = torch.load(path.with_name("masks.pt"), weights_only=True)
            path, tensors = path.with_name("weights.pt"), {name: tensors[name] for name in prunable}
        files[str(path.relative_to(run))] = digest(tensors)
    return {
        "records": records,
        "files": files,
        "done": (run / "DONE").read_text(),
    }


@pytest.fixture
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list(JOBS))
def test_results_are_bit_identical_to_the_stored_reference(
    name: str, make_cfg: Callable[..., DictConfig], tmp_path: Path, one_thread: None
) -> None:
    overrides = list(JOBS[name])
    if name == "frankle_lenet":
        write_mnist(tmp_path / "mnist", train=600, test=200)
        overrides.append(f"data.root={tmp_path / 'mnist'}")
    cfg = make_cfg(*overrides)
    execute(build_job(cfg))
    found = fingerprint(Path(cfg.paths.output_dir))
    path, signature = REFERENCE / f"{name}.json", machine()
    references = json.loads(path.read_text())
    if os.environ.get("LTH_WRITE_REFERENCE"):
        references[signature] = found
        path.write_text(json.dumps(references, indent=1, sort_keys=True) + "\n")
    if signature not in references:
        pytest.skip(f"no reference recorded on this machine ({signature})")
    assert found == references[signature]
