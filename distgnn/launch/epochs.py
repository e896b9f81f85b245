"""The epoch protocol: one interface, a full-graph and a sampled implementation, chosen once.

Worker side (:class:`WorkerEpochs`), run on every rank together, as the driver asks:

- ``begin(epoch, plan)``: reseed (dropout: ``(seed, epoch, rank)``, so a resumed run continues
  exactly as the uninterrupted one), reset the traffic counters, take the epoch's plan
  (full-graph: none; sampled: this worker's shuffled seeds and the step count);
- ``run_steps(count)``: up to ``count`` optimiser steps; returns the steps left. Collective;
- ``end(epoch, evaluate)``: the global loss and, with ``evaluate``, the task's metrics on the
  whole partition (full-graph forward, halo exchange per layer), as one all-reduce of additive
  sums (exact); returns this rank's :class:`~.stats.EpochStats`.

Driver side (:class:`DriverEpochs`): ``prepare(loaded, starts)`` once per group with what every
worker's ``load`` returned, ``run(epoch, evaluate, call)`` one epoch through ``call(method,
per_rank_args)``, and ``merge(per_rank, wall_s)`` into the global figures.

:func:`epochs_for` maps ``config.mode`` to the pair; nothing outside the implementations asks
which mode runs.
"""
from __future__ import annotations

import math
from typing import Callable, Protocol

import torch
import torch.distributed as dist

from .stats import EpochStats

__all__ = ["WorkerEpochs", "DriverEpochs", "epochs_for", "evaluate_sums", "finish_metrics", "finite_loss",
           "resolve_task", "SPLITS"]

SPLITS = ("train", "val", "test")


class WorkerEpochs(Protocol):
    def begin(self, epoch: int, plan) -> None: ...
    def run_steps(self, count: int) -> int: ...
    def end(self, epoch: int, evaluate: bool) -> EpochStats: ...


class DriverEpochs(Protocol):
    def describe(self) -> str: ...
    def prepare(self, loaded: list[dict], starts: list[int]) -> None: ...
    def run(self, epoch: int, evaluate: bool, call: Callable) -> EpochStats: ...


def epochs_for(mode: str, task=None):
    """``(worker implementation class, driver implementation class)`` of ``mode`` (and of the
    task: link prediction trains on edges, :mod:`.link`)."""
    from .link import is_link_task

    if is_link_task(task) and mode in ("full", "sampled"):
        from .link import LinkFullDriver, LinkFullEpochs, LinkSampledDriver, LinkSampledEpochs

        return (LinkFullEpochs, LinkFullDriver) if mode == "full" else (LinkSampledEpochs, LinkSampledDriver)
    if mode == "full":
        from .full import FullDriver, FullEpochs

        return FullEpochs, FullDriver
    if mode == "sampled":
        from .sampled import SampledDriver, SampledEpochs

        return SampledEpochs, SampledDriver
    raise ValueError(f"mode must be 'full' or 'sampled', got {mode!r}")


def resolve_task(spec, loss: str | None = None):
    """The task object of ``spec`` (a name or a task): :func:`distgnn.tasks.get_task`."""
    from ..tasks import get_task

    return get_task(spec if spec is not None else "node-classification", loss=loss)


def evaluate_sums(worker) -> torch.Tensor:
    """The task's metric sums of every split, this rank's rows: ``[3 * K]`` float64 (train, val,
    test). The model runs in eval mode on the whole partition through the exact inference path of
    ``python -m distgnn.predict`` (:class:`~distgnn.predict.inference.LayerwiseRun`: layer by
    layer, one whole part per layer, the same operations as a forward; a whole forward for models
    without the layer-wise protocol), so every mode -- sampled too -- reports the exact whole-graph
    metrics, and the final report is what ``distgnn.predict`` computes. Collective (halo exchange)."""
    from ..predict.inference import LayerwiseRun

    out = LayerwiseRun(worker.replica.model, worker.x, worker.graph, dict(worker.inputs)).run()  # (N_w, C)
    sums = [worker.task.metric_sums(out[worker.masks[s]], worker.y[worker.masks[s]]).to(torch.float64)
            for s in SPLITS]
    return torch.cat(sums)


def finish_metrics(task, sums: torch.Tensor) -> dict:
    """``{"train_acc": .., "val_acc": .., ...}`` from the all-reduced sums of :func:`evaluate_sums`."""
    k = sums.numel() // len(SPLITS)
    out = {}
    for i, split in enumerate(SPLITS):
        for name, value in task.metrics(sums[i * k:(i + 1) * k].cpu()).items():
            out[f"{split}_{name}"] = float(value)
    return out


def finite_loss(loss: float) -> None:
    """Stop a run whose loss is NaN or infinite (the same on every rank: it is all-reduced)."""
    if not math.isfinite(loss):
        raise ValueError(f"the training loss is {loss} (it diverged, or the features hold extreme values); "
                         "lower --lr or check the input")


def all_reduce(t: torch.Tensor) -> torch.Tensor:
    dist.all_reduce(t)
    return t
