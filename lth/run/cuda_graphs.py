"""``trainer.cuda_graphs``: a lottery's training step captured once as a CUDA graph and replayed.

A small lottery on a GPU is bound by kernel launches and Python, not by the GPU; replaying a captured
step launches the whole step at once. A captured step reads everything from tensors that stay in
place (the device-resident data, the epoch's order, the batch position and the learning rate, each a
tensor on the device) and reads no value back to the host. ``StepGraph`` runs its first ``WARMUP``
steps eagerly on a side stream (real steps: they create the optimizer state), captures the next one and
replays it from then on; ``reset`` drops the graph when a level starts (new masks, restarted weights,
a fresh optimizer state), so each level is captured once. Without capture (on CPU, or a test of the
graph path there) the same step runs eagerly.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

WARMUP = 3  # eager steps before a capture (PyTorch's CUDA graph notes warm up with 3)


def plan_capture(setting: str, device: torch.device, obstacles: list[str]) -> tuple[bool, str | None]:
    """Whether a job's steps are captured, and the line to print when they are not but could have been.

    ``setting`` is ``trainer.cuda_graphs`` (auto, true, false); ``obstacles`` are what of the job a captured
    step cannot run (each says why). Off CUDA, a CPU job under ``auto`` is not a fallback: no line."""
    if setting == "false":
        return False, None
    if device.type != "cuda":
        return False, ("no CUDA device" if setting == "true" else None)
    if obstacles:
        return False, "; ".join(obstacles)
    return True, None


def fallback_line(setting: str, why: str) -> str:
    return f"lth: trainer.cuda_graphs={setting}: training steps run eagerly ({why})"


def make_capturable(optimizer: torch.optim.Optimizer) -> None:
    """Ready ``optimizer`` for a captured step: its learning rate a device tensor (the schedule fills it
    in place between steps) and its fused implementation (step counts on the device, the tensor learning
    rate read there). Idempotent; run again after a checkpoint replaced the param groups."""
    for group in optimizer.param_groups:
        device = group["params"][0].device
        if not isinstance(group["lr"], Tensor):
            group["lr"] = torch.tensor(float(group["lr"]), device=device)
        group.update(fused=True, foreach=False, capturable=True)
    for state in optimizer.state.values():
        if isinstance(state.get("step"), Tensor):  # a CPU count from an eager run's checkpoint
            param_device = next(v.device for k, v in state.items() if k != "step" and isinstance(v, Tensor))
            state["step"] = state["step"].to(param_device, torch.float32)


class DeviceLosses:
    """Per-step training losses kept on the device: written inside the step, taken after a run of steps."""

    def __init__(self, most: int, shape: tuple[int, ...], device: torch.device) -> None:
        self.values = torch.zeros(most, *shape, device=device)
        self.slot = torch.zeros(1, dtype=torch.long, device=device)

    def record(self, loss: Tensor) -> None:
        self.values.index_copy_(0, self.slot, loss.detach().unsqueeze(0))
        self.slot.add_(1)

    def take(self, steps: int) -> Tensor:
        """The losses of the last ``steps`` steps (at most ``most``), ``(steps, *shape)``; starts afresh."""
        losses = self.values[:steps].clone()
        self.slot.zero_()
        return losses


class StepGraph:
    """``step`` (no arguments, static inputs), captured as a CUDA graph after ``WARMUP`` eager steps and
    replayed from then on; with ``capture`` false, run eagerly every time."""

    def __init__(self, step: Callable[[], None], capture: bool) -> None:
        self.step, self.capture = step, capture
        self.graph: torch.cuda.CUDAGraph | None = None
        self.warm = 0

    def reset(self) -> None:
        """Drop the graph: what the step reads changed (the next steps warm up and capture again)."""
        self.graph, self.warm = None, 0

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        elif not self.capture:
            self.step()
        elif self.warm < WARMUP:
            self._warm_up()
        else:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.step()
            graph.replay()  # capture only records: this step runs now
            self.graph = graph

    def _warm_up(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "This instance was constructed with capturable=True")
            self.step()
        torch.cuda.current_stream().wait_stream(side)
        self.warm += 1


def initialize_cuda_early(accelerator: str) -> None:
    """Start CUDA's initialisation (seconds on a GPU node) in the background when the trainer's
    ``accelerator`` may use it, so that it overlaps the data loading and model building before its first use."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        threading.Thread(target=torch.cuda.init, name="lth-cuda-init", daemon=True).start()
