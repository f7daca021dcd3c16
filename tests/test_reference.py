"""Results stay bit-identical: two small lotteries against a stored reference (records, masks, weights).

The reference (``tests/reference/<name>.json``) was recorded with torch 2.13.0 on the CPU at one thread
(float results depend on the thread count) before the lottery-core redesign, and this test proved the
redesign changed nothing. A deliberate change of results rewrites it: ``LTH_WRITE_REFERENCE=1 pytest
tests/test_reference.py``, and the diff of the JSON shows what changed.
"""

from __future__ import annotations

import hashlib
import json
import os
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


def fingerprint(run: Path) -> dict:
    """Everything a job wrote that must not change: its records (less wall time), masks, weights, DONE.

    A level's ``state.pt`` (the full model state) is digested as ``weights.pt``, the file it replaced:
    its prunable tensors (those of ``masks.pt``), so the stored reference still applies."""
    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    for record in records:
        record.pop("wall_s")
    files = {}
    for path in sorted(run.glob("levels/*/*.pt")):
        tensors = torch.load(path, weights_only=True)
        if path.name == "state.pt":
            prunable = torch.load(path.with_name("masks.pt"), weights_only=True)
            path, tensors = path.with_name("weights.pt"), {name: tensors[name] for name in prunable}
        files[str(path.relative_to(run))] = digest(tensors)
    return {
        "torch": torch.__version__,
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
    path = REFERENCE / f"{name}.json"
    if os.environ.get("LTH_WRITE_REFERENCE"):
        path.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    expected = json.loads(path.read_text())
    if expected["torch"] != torch.__version__:
        pytest.skip(f"reference recorded with torch {expected['torch']}, running {torch.__version__}")
    assert found == expected
