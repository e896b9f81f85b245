"""Full-graph epochs: one optimiser step per epoch on the whole partitioned graph.

Every layer runs on all of a worker's rows, halo rows arriving through the halo exchange; the
loss is the worker's share of the global mean over the training rows, so summing the ranks'
gradients (one all-reduce) gives the whole-graph gradient. See :mod:`.epochs` for the protocol.
"""
from __future__ import annotations

import time

import torch

from .epochs import all_reduce, evaluate_sums, finish_metrics, finite_loss
from .seeds import mix_seed
from .stats import EpochStats

__all__ = ["FullEpochs", "FullDriver"]


class FullEpochs:
    """The worker side: ``worker`` holds the graph, features, labels, masks, task and replica."""

    def __init__(self, worker, shard):
        self.worker = worker

    def load_info(self) -> dict:
        return {}

    def begin(self, epoch: int, plan=None) -> None:
        w = self.worker
        w.graph.exchange.reset_counters()
        torch.manual_seed(mix_seed(w.config.seed, epoch, w.rank))
        self._t0 = time.perf_counter()
        self._left = 1
        self._loss = None
        self._step_s = self._sync_s = 0.0

    def run_steps(self, count: int) -> int:
        if self._left == 0 or count < 1:
            return self._left
        w = self.worker
        t0 = time.perf_counter()
        r = w.replica
        r.zero_grad()
        out = r.model(w.x, w.graph, **w.inputs)  # (N_w, C)
        mask = w.masks["train"]
        loss = w.task.loss(out[mask], w.y[mask]) / w.num_train
        loss.backward()
        t_sync = time.perf_counter()
        r.sync_gradients()
        self._sync_s = time.perf_counter() - t_sync
        r.step()
        self._step_s = time.perf_counter() - t0
        self._loss = loss.detach().reshape(1).to(torch.float64)
        self._left = 0
        return 0

    def end(self, epoch: int, evaluate: bool = True) -> EpochStats:
        w = self.worker
        ex = w.graph.exchange
        stats = EpochStats(epoch=epoch, step_s=self._step_s, sync_s=self._sync_s, exchange_s=ex.seconds,
                           halo_bytes=ex.bytes_sent)
        total = self._loss
        if evaluate:
            total = torch.cat([total, evaluate_sums(w)])
        all_reduce(total)
        stats.loss = float(total[0])
        finite_loss(stats.loss)
        if evaluate:
            stats.metrics = finish_metrics(w.task, total[1:])
        stats.epoch_s = time.perf_counter() - self._t0
        w.epoch = epoch
        return stats


class FullDriver:
    """The driver side: one call per epoch (``begin``, the step and ``end`` on the worker)."""

    def __init__(self, config, progress: bool = False):
        self.config = config

    def describe(self) -> str:
        return "full-graph"

    def prepare(self, loaded: list[dict], starts: list[int]) -> None:
        return None

    def run(self, epoch: int, evaluate: bool, call) -> EpochStats:
        t0 = time.perf_counter()
        per_rank = call("run_epoch", [(epoch, None, evaluate)] * self.config.workers)
        return merge(per_rank, time.perf_counter() - t0)


def merge(per_rank: list[EpochStats], wall_s: float) -> EpochStats:
    """Global figures of one epoch: loss and metrics (identical on all ranks), the time breakdown
    of the slowest rank (its exchange time is the least inflated by waiting for a peer), and the
    halo bytes of all ranks."""
    slow = max(per_rank, key=lambda r: r.step_s)
    s = per_rank[0]
    return EpochStats(
        epoch=s.epoch, loss=s.loss, metrics=dict(s.metrics), wall_s=wall_s,
        epoch_s=max(r.epoch_s for r in per_rank), step_s=slow.step_s, sync_s=slow.sync_s,
        exchange_s=slow.exchange_s, halo_bytes=sum(r.halo_bytes for r in per_rank),
    )
