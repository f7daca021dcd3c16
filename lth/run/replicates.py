"""``train.replicates=K``: K independent lotteries in one process, trained as one stacked model.

Replicate ``k`` is the job with seed ``seed + k`` (its own initialisation, validation split, data order,
masks, pruning and restart draws, evaluations and status): its files, in ``<output_dir>/replicate_k/``,
are those that job writes (``config.yaml`` says ``seed: seed + k``). The replicates train in lockstep
(``lth.lottery.stacked``), by a plain PyTorch loop: one stacked optimizer step per step for all, each
``Lottery`` told of its own losses. Levels end together (``train.budget=steps``, or ``flops`` where
every replicate keeps the same survivor counts; checked as they train); each level restarts
the optimizer state and the LR schedule, as in a single job. A replicate that diverges is finished
(``DONE`` says ``diverged``) and frozen; the others go on. ``<output_dir>/DONE`` is written once every
replicate is done. Checkpoints (``<output_dir>/checkpoints/``, rotated as in a single job) hold the
stacked tensors, the optimizer and every lottery's state: a rerun resumes all replicates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from rich.console import Console
from torch import Tensor, nn

from lth.data.memory import ReplicateData
from lth.data.teacher_student import TeacherStudentReplicates
from lth.lottery import Budget, Lottery, prunable_weight_names
from lth.lottery.lottery import Evaluate, LotteryState
from lth.lottery.optim import build_optimizer, lr_factor, set_lr
from lth.lottery.stacked import StackedNetworks
from lth.run.checkpointing import LAST, install_checkpoint, remove_checkpoints, resumable_checkpoint
from lth.run.config import check_config, check_tensor_names
from lth.run.console import sweep_table
from lth.run.cuda_graphs import (
    DeviceLosses,
    StepGraph,
    fallback_line,
    initialize_cuda_early,
    make_capturable,
    plan_capture,
)
from lth.run.job import build_datamodule, build_lottery, model_factory
from lth.run.job_dir import RunDirectory
from lth.run.loggers import (
    LotteryWandbLogger,
    evaluation_metrics,
    finish_loggers,
    log_level,
    log_metrics,
    log_ticket,
    report_offline_runs,
    start_replicate_loggers,
)
from lth.run.module import EVAL_CHUNK, LOSSES, MAX_STEPS_PER_BATCH
from lth.run.provenance import Provenance, collect, now, run_config
from lth.run.resume import announce
from lth.run.threads import apply_threads, job_threads
from lth.seeds import derived_seed

log = logging.getLogger("lth")


def replicate_config(cfg: DictConfig, k: int) -> DictConfig:
    """The config of the single job that replicate ``k`` is: seed ``seed + k``, its own directory (and
    what interpolates them, e.g. the logger's ``save_dir``), resolved."""
    config = OmegaConf.create(OmegaConf.to_container(cfg))
    config.seed = cfg.seed + k
    config.train.replicates = 1
    config.paths.output_dir = str(Path(cfg.paths.output_dir) / f"replicate_{k}")
    return OmegaConf.create(OmegaConf.to_container(config, resolve=True))


def replicate_loggers(config: DictConfig, k: int) -> list[Logger]:
    """Replicate ``k``'s experiment logger (``config``'s), as the single job it is would have it."""
    if not config.logger:
        return []
    logger = instantiate(config.logger)
    if isinstance(logger, LotteryWandbLogger):
        logger.as_replicate(k)
    return [logger]


def evaluator(network: nn.Module, loss: Callable[..., Tensor], classification: bool) -> Evaluate:
    """Mean loss and accuracy (None for regression) of ``network`` on ``(x, y)``, in eval mode."""

    @torch.no_grad()
    def evaluate(x: Tensor, y: Tensor) -> dict[str, float | None]:
        network.eval()
        loss_sum, correct = torch.zeros((), device=x.device), torch.zeros((), device=x.device)
        for xb, yb in zip(x.split(EVAL_CHUNK), y.split(EVAL_CHUNK), strict=True):
            out = network(xb)
            loss_sum += loss(out, yb, reduction="sum")
            if classification:
                correct += (out.argmax(1) == yb).sum()
        network.train()
        return {
            "loss": loss_sum.item() / y.numel(),
            "acc": correct.item() / len(y) if classification else None,
        }

    return evaluate


def training_device(cfg: DictConfig) -> torch.device:
    """CUDA when the trainer may use it (``accelerator`` auto, gpu or cuda) and one is present, else CPU."""
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    use_cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return torch.device("cuda" if use_cuda else "cpu")


@dataclass
class Replicates:
    """A replicate job, built but not yet run."""

    cfg: DictConfig  # the job's (resolved)
    configs: list[DictConfig]  # replicate k's: the single job it is
    stacked: StackedNetworks
    lotteries: list[Lottery]
    data: ReplicateData | TeacherStudentReplicates
    optimizer: torch.optim.Optimizer
    loss: Callable[..., Tensor]
    run_dir: RunDirectory
    run_dirs: list[RunDirectory]
    loggers: list[list[Logger]]  # replicate k's
    lr_factor: Callable[[int, int], float]
    started: datetime  # when build_replicates began
    captured: bool  # the stacked step replayed from a CUDA graph (trainer.cuda_graphs)
    drawn_steps: bool = False  # the captured path's steps, run eagerly (a test of that path on CPU)

    def lr(self, step: int, state: LotteryState) -> float:
        """The learning rate of the step after ``step`` in the level of ``state`` (as in a single job)."""
        return self.optimizer.defaults["lr"] * self.lr_factor(step - state.level_start, state.level_steps)


def build_replicates(cfg: DictConfig) -> Replicates:
    """Check ``cfg`` and build the K replicates' data, stacked networks, lotteries and optimizer."""
    started = now()
    check_config(cfg)
    initialize_cuda_early(str(cfg.trainer.get("accelerator", "auto")))
    replicates = cfg.train.replicates
    datamodule = build_datamodule(cfg)
    build_model = model_factory(cfg, datamodule)
    configs = [replicate_config(cfg, k) for k in range(replicates)]
    models = [build_model(derived_seed(c.seed, "model")) for c in configs]
    apply_threads(job_threads(cfg.trainer, models[0], replicates))
    check_tensor_names(cfg, prunable_weight_names(models[0]))
    prunable = [name for name in prunable_weight_names(models[0]) if name not in cfg.prune.exclude]
    device = training_device(cfg)
    stacked = StackedNetworks(models, prunable).to(device)
    data = datamodule.replicate_data([c.seed for c in configs], device)
    budget = Budget(cfg.train.steps, cfg.train.budget, cfg.train.budget_cap)
    loss = LOSSES[datamodule.task]
    lotteries = [
        build_lottery(
            c,
            network,
            budget,
            datamodule,
            build_model,
            lambda split, k=k: data.split(k, split),
            evaluator(network, loss, datamodule.task == "classification"),
        )
        for k, (c, network) in enumerate(zip(configs, stacked.networks, strict=True))
    ]
    optim = OmegaConf.to_container(cfg.optim)
    assert isinstance(optim, dict)
    optimizer = build_optimizer(stacked.parameters(), optim)
    run_dirs = [RunDirectory(c.paths.output_dir) for c in configs]
    resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    run_dir = RunDirectory(cfg.paths.output_dir)
    loggers = [replicate_loggers(c, k) for k, c in enumerate(configs)]
    factor = lr_factor(cfg.optim.schedule, cfg.optim.warmup_steps)
    setting = str(cfg.trainer.get("cuda_graphs", "auto")).lower()
    obstacle = datamodule.capture_obstacle
    captured, why = plan_capture(setting, device, [obstacle] if obstacle else [])
    if why:
        log.info(fallback_line(setting, why))
    return Replicates(
        resolved,
        configs,
        stacked,
        lotteries,
        data,
        optimizer,
        loss,
        run_dir,
        run_dirs,
        loggers,
        factor,
        started,
        captured,
    )


def save_checkpoint(job: Replicates, step: int) -> None:
    """Everything a rerun resumes from, as ``checkpoints/last.ckpt`` (the previous one kept)."""
    job.run_dir.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    tmp = job.run_dir.checkpoint_dir / f".{LAST}.tmp"
    torch.save(
        {
            "step": step,
            "stacked": job.stacked.state_dict(),
            "optimizer": job.optimizer.state_dict(),
            "lotteries": [lottery.state_dict() for lottery in job.lotteries],
        },
        tmp,
    )
    install_checkpoint(job.run_dir.checkpoint_dir, tmp)


def restore(job: Replicates) -> int:
    """Load the newest good checkpoint, if any; the step it was taken at (0 without one)."""
    path = resumable_checkpoint(job.run_dir.checkpoint_dir)
    if path is None:
        return 0
    log.info("lth: resuming from %s", path)
    checkpoint = torch.load(path, map_location=job.stacked.alive.device, weights_only=True)
    job.stacked.load_state_dict(checkpoint["stacked"])
    job.optimizer.load_state_dict(checkpoint["optimizer"])
    for lottery, state in zip(job.lotteries, checkpoint["lotteries"], strict=True):
        lottery.load_state_dict(state)
    return int(checkpoint["step"])


def train(job: Replicates, clock: Callable[[int], None] | None = None) -> None:
    """Train every replicate until all are finished, writing each one's files as its levels end;
    ``clock`` (a benchmark's) is called with the step reached after every run of steps."""
    step, every = restore(job), job.cfg.train.checkpoint_every
    for k, (lottery, run_dir) in enumerate(zip(job.lotteries, job.run_dirs, strict=True)):
        run_dir.path.mkdir(parents=True, exist_ok=True)
        first = not lottery.state.records and not lottery.state.evals
        lottery.start()
        save_start_points(job, k)
        if first:
            log_level_start(job, k)
    live = [lottery for lottery in job.lotteries if not lottery.finished]
    if live:  # the data of the level they start in (or resume)
        job.data.set_level(lockstep(live).level)
    steps_of = captured_steps(job) if job.captured or job.drawn_steps else eager_steps(job, step)
    while not all(lottery.finished for lottery in job.lotteries):
        live = [lottery for lottery in job.lotteries if not lottery.finished]
        steps = min(lottery.steps_until_event(step, MAX_STEPS_PER_BATCH) for lottery in live)
        steps = min(steps, every - step % every) if every else steps
        losses = steps_of(step, steps, lockstep(live))
        step += steps
        if clock is not None:
            clock(step)
        ended = after_steps(job, step, losses)
        if ended or (every and step % every == 0):
            save_checkpoint(job, step)


Steps = Callable[[int, int, LotteryState], Tensor]  # (first step, steps, level) -> losses (steps x K)


def eager_steps(job: Replicates, step: int) -> Steps:
    """The stacked steps on the batches of ``job.data``, from ``step`` on."""
    batches = job.data.batches(step)

    def run(first: int, steps: int, level: LotteryState) -> Tensor:
        losses = []
        for t in range(first, first + steps):
            for group in job.optimizer.param_groups:
                set_lr(group, job.lr(t, level))
            x, y = next(batches)
            losses.append(job.stacked.step(x, y, job.loss, job.optimizer))
        return torch.stack(losses)

    return run


def captured_steps(job: Replicates) -> Steps:
    """The stacked step captured as a CUDA graph (recaptured when a level starts or a replicate is
    frozen) and replayed, its batches drawn on the device (``trainer.cuda_graphs``)."""
    make_capturable(job.optimizer)
    drawn, stacked = job.data.on_device(), job.stacked
    device_losses = DeviceLosses(MAX_STEPS_PER_BATCH, (len(stacked),), stacked.alive.device)
    graph = StepGraph(
        lambda: device_losses.record(stacked.step(*drawn.draw(), job.loss, job.optimizer)), job.captured
    )
    held = (job.lotteries[0].state.level, len(stacked.held))

    def run(first: int, steps: int, level: LotteryState) -> Tensor:
        nonlocal held
        if (level.level, len(stacked.held)) != held:  # new masks, weights, optimizer state; a freeze
            graph.reset()
            held = (level.level, len(stacked.held))
        for t in range(first, first + steps):
            for group in job.optimizer.param_groups:
                set_lr(group, job.lr(t, level))
            drawn.prepare(t)
            graph()
        return device_losses.take(steps)

    return run


def lockstep(live: list[Lottery]) -> LotteryState:
    """The state of the level every live replicate is in; a RuntimeError if their levels differ (which
    the config checks rule out: the stack trains them in lockstep)."""
    state = live[0].state
    levels = {(lottery.state.level_start, lottery.state.level_steps) for lottery in live}
    if len(levels) > 1:
        raise RuntimeError(
            f"lth: the live replicates' levels differ (start step, length: {sorted(levels)}); the stack "
            "trains them in lockstep (train.budget=flops needs the same survivor counts in every replicate)"
        )
    return state


def log_level_start(job: Replicates, k: int) -> None:
    """Replicate ``k``'s loggers get the ticket its level starts from (``logger.log_tickets``)."""
    network = job.lotteries[k].network
    log_ticket(job.loggers[k], job.lotteries[k].state.level, network.mask_dict(), network.model_state())


def save_start_points(job: Replicates, k: int) -> None:
    """Replicate ``k``'s theta_0 and rewind point, each once it exists (as a single job's)."""
    lottery = job.lotteries[k]
    if job.cfg.results.save_weights:
        rewind = lottery.state.snapshot if lottery.rewinds else None
        job.run_dirs[k].save_start_points(lottery.state.theta_0, rewind)


def after_steps(job: Replicates, step: int, losses: Tensor) -> bool:
    """Hand each live replicate its ``losses`` (steps x K); write what they produced; start the next
    level (with a fresh optimizer state) where one ended. True if any level ended."""
    ended, started = False, None  # started: the level the live replicates start, if theirs ended
    for k, (lottery, run_dir) in enumerate(zip(job.lotteries, job.run_dirs, strict=True)):
        if lottery.finished:
            continue
        outcome, network, loggers = lottery.after_step(step, losses[:, k]), lottery.network, job.loggers[k]
        if outcome.evaluation is not None:
            run_dir.append_evaluation(lottery.state.level, outcome.evaluation)
            metrics = evaluation_metrics(outcome.evaluation, lottery.state.level, network.remaining_total())
            log_metrics(loggers, metrics, step)
        if outcome.record is None:
            continue
        ended = True
        state = network.model_state() if job.cfg.results.save_weights else None
        run_dir.save_level(outcome.record.level, network.mask_dict(), state, outcome.tensors)
        run_dir.write_records(lottery.state.records)
        save_start_points(job, k)
        log_level(loggers, outcome.record, step)
        if lottery.finished:
            run_dir.mark_done(lottery.state.status, len(lottery.state.records))
            if lottery.state.status == "diverged":
                job.stacked.freeze(k)
        else:
            lottery.next_level(step)
            log_level_start(job, k)
            started = lottery.state.level
    if started is not None:  # levels end together: every live replicate starts its next level now
        job.optimizer.state.clear()
        job.data.set_level(started)
    return ended


def execute_replicates(job: Replicates) -> list[list[dict[str, Any]]]:
    """Train the replicates (resuming from the last good checkpoint), write their files and the job's
    ``DONE``; return each replicate's records."""
    announce()  # the checks passed: the output directory is a run's
    job.run_dir.write_config(OmegaConf.to_yaml(job.cfg))
    for config, run_dir in zip(job.configs, job.run_dirs, strict=True):
        run_dir.write_config(OmegaConf.to_yaml(config))
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    fields = collect(job.stacked.alive.device, 1, overrides)
    provenances = [Provenance(d.meta_file) for d in (job.run_dir, *job.run_dirs)]
    metas = [run_config(provenance.start(fields, job.started)) for provenance in provenances]
    configs = [OmegaConf.to_container(c) | meta for c, meta in zip(job.configs, metas[1:], strict=True)]
    job.loggers = start_replicate_loggers(job.loggers, configs, [str(d.path) for d in job.run_dirs])
    try:
        train(job)
    finally:
        finished = [lottery.finished for lottery in job.lotteries]
        metas = [
            run_config(p.end(done)) for p, done in zip(provenances, [all(finished), *finished], strict=True)
        ]
        offline = []
        for loggers, lottery, meta in zip(job.loggers, job.lotteries, metas[1:], strict=True):
            for logger in loggers:  # what Lightning does after a single job's fit
                logger.finalize("success" if lottery.finished else "failed")
            offline += finish_loggers(loggers, lottery.state.records, lottery.finished, meta)
        report_offline_runs(offline)
    statuses = {lottery.state.status for lottery in job.lotteries}
    job.run_dir.mark_done("complete" if statuses == {"complete"} else "diverged", 0)  # no records here
    remove_checkpoints(job.run_dir.checkpoint_dir)
    Console().print(sweep_table(job.run_dir.path))
    return [[r.to_dict() for r in lottery.state.records] for lottery in job.lotteries]
