"""Sampled mini-batch training on one worker (contract 3, sampled mode).

Per epoch the driver shuffles all training nodes (seeded by ``(seed, epoch)``) and hands every
worker the ones it owns, in shuffled order, with the number of steps ``S`` of the epoch: the most
any worker needs at ``batch_size / workers`` seeds per step. Every worker runs exactly ``S``
steps -- a worker with fewer seeds runs smaller, finally empty, batches (no seed is dropped), so
the collectives of a step (sampling per hop, one feature fetch, one gradient all-reduce) always
meet on every worker.

A step: :func:`~distgnn.sampling.sample_subgraph` over a
:class:`~distgnn.sampling.DistributedSampleFn` (frontier nodes owned elsewhere are sampled by
their owners; the random numbers are keyed by ``(step seed, hop, node)``, the same on every
worker), :class:`~distgnn.sampling.FeatureFetcher` for the rows (with the optional cache), the
model on the subgraph (an ordinary :class:`~distgnn.graph.Graph`, seeds first), the summed loss
of the seeds, and ONE all-reduce of the flat gradients with the seed count appended: gradients
are divided by the global count, i.e. the gradient of the mean loss over the step's global batch.

Sampling and fetching run on the CPU over a gloo group of their own (also when training runs on
a GPU with NCCL): with ``pipeline``, a background thread samples and fetches batch ``k + 1`` while
batch ``k`` trains, and its collectives never interleave with the main thread's all-reduce.
"""
from __future__ import annotations

import queue
import threading
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..graph import Graph

__all__ = ["SampledTrainer", "split_seeds"]


def split_seeds(seeds: torch.Tensor, starts: list[int], batch_size: int) -> tuple[list[torch.Tensor], int]:
    """Every worker's seeds (in the given order) and the step count ``S`` they all run.

    ``batch_size`` is the global batch: each worker takes ``ceil(batch_size / W)`` per step.
    """
    world = len(starts) - 1
    owner = torch.searchsorted(torch.tensor(starts, dtype=torch.long), seeds, right=True) - 1
    per_worker = [seeds[owner == w] for w in range(world)]
    local_batch = max(1, -(-batch_size // world))
    steps = max(-(-int(s.numel()) // local_batch) for s in per_worker)
    return per_worker, max(steps, 1)


class SampledTrainer:
    """The sampled-mode state of one worker: topology, sampler, fetcher, the epoch's batches."""

    def __init__(self, worker, shard):
        from ..sampling import DistributedSampleFn, FeatureFetcher, IdMap, Topology, in_degree_hotness

        c = worker.config
        self.worker = worker
        self.config = c
        # sampling and feature fetching run on the CPU (topology and feature rows stay in host
        # memory; a batch moves to the device to train), over a gloo group of their own, so the
        # background thread's collectives never interleave with the gradient all-reduce
        self.group = dist.new_group(backend="gloo")
        topo = Topology.from_edge_index(shard.edge_index, shard.node_start, shard.num_nodes, shard.eid)
        self.starts = list(shard.starts)
        self.sample_fn = DistributedSampleFn(topo, self.starts, group=self.group)
        self.num_nodes = shard.num_nodes_global
        self.id_map = IdMap(self.num_nodes)
        self.local_batch = max(1, -(-c.batch_size // worker.world_size))
        hot = None
        if c.cache_mb > 0:
            if c.cache_policy == "degree":
                hot = in_degree_hotness(topo, self.starts, group=self.group)
            else:
                hot = self._prepass(torch.nonzero(shard.train_mask).view(-1) + shard.node_start)
        self.fetcher = FeatureFetcher(shard.x, self.starts, cache_mb=c.cache_mb, hotness=hot, group=self.group)
        self._thread = None
        self._queue = None

    def _prepass(self, train_ids: torch.Tensor) -> torch.Tensor:
        """``[N]`` how often each node appears in this worker's sampled subgraphs over one pass of
        its training seeds (the same step count on every worker). Collective."""
        from ..sampling import access_counts, sample_subgraph
        from .worker import mix_seed

        batches = list(torch.split(train_ids, self.local_batch))
        steps = torch.tensor([len(batches)], dtype=torch.long)
        dist.all_reduce(steps, op=dist.ReduceOp.MAX, group=self.group)
        empty = torch.zeros(0, dtype=torch.long)
        ids = []
        for k in range(int(steps)):
            seeds = batches[k] if k < len(batches) else empty
            sub = sample_subgraph(self.sample_fn, seeds, self.config.fanouts, replace=self.config.replace,
                                  seed=mix_seed(self.config.seed, -1, k), id_map=self.id_map)
            ids.append(sub.node_ids)
        return access_counts(ids, self.num_nodes)

    # -- batches ------------------------------------------------------------------------------------
    def _produce(self, step: int):
        """Sample and fetch batch ``step`` of the epoch (collective on the sampling group)."""
        from ..sampling import sample_subgraph
        from .worker import mix_seed

        t0 = time.perf_counter()
        seeds = self.batches[step]
        sub = sample_subgraph(self.sample_fn, seeds, self.config.fanouts, replace=self.config.replace,
                              seed=mix_seed(self.config.seed, self.epoch, step), id_map=self.id_map)
        t1 = time.perf_counter()
        x = self.fetcher.fetch(sub.node_ids)
        t2 = time.perf_counter()
        return sub, x, t1 - t0, t2 - t1

    def _run_producer(self) -> None:
        try:
            for step in range(self.steps):
                self._queue.put(self._produce(step))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._queue.put(exc)

    def begin_epoch(self, epoch: int, seeds: torch.Tensor, steps: int) -> None:
        self.stop()
        self.epoch, self.steps = epoch, steps
        chunks = list(torch.split(seeds.to(torch.long), self.local_batch)) if seeds.numel() else []
        empty = torch.zeros(0, dtype=torch.long)
        self.batches = chunks + [empty] * (steps - len(chunks))
        self.step = 0
        self.fetcher.reset_stats()
        self.stats = dict(loss_sum=0.0, seeds=0, sample_s=0.0, fetch_s=0.0, wait_s=0.0, compute_s=0.0, sync_s=0.0,
                          sampled_edges=0, sampled_nodes=0)
        if self.config.pipeline:
            self._queue = queue.Queue(maxsize=1)
            self._thread = threading.Thread(target=self._run_producer, name="distgnn-sampler", daemon=True)
            self._thread.start()

    def _next(self):
        if self._thread is None:
            return self._produce(self.step)
        t0 = time.perf_counter()
        item = self._queue.get(timeout=self.config.timeout_s)
        self.stats["wait_s"] += time.perf_counter() - t0
        if isinstance(item, BaseException):
            raise item
        return item

    # -- steps --------------------------------------------------------------------------------------
    def run_steps(self, count: int) -> int:
        """Run up to ``count`` steps of the epoch; returns how many are left."""
        w = self.worker
        for _ in range(min(count, self.steps - self.step)):
            sub, x, sample_s, fetch_s = self._next()
            st = self.stats
            st["sample_s"] += sample_s
            st["fetch_s"] += fetch_s
            st["sampled_edges"] += int(sub.edge_index.shape[1])
            st["sampled_nodes"] += int(sub.node_ids.numel())
            t0 = time.perf_counter()
            w.model.train()
            w.optimizer.zero_grad(set_to_none=True)
            n_seeds = sub.num_seeds
            loss = None
            if n_seeds:
                seeds = sub.node_ids[:n_seeds]
                logits = w.model(x.to(w.device), Graph(sub.edge_index.to(w.device), int(sub.node_ids.numel())))
                y = w.y[(seeds - w.node_start).to(w.device)]
                loss = F.cross_entropy(logits[:n_seeds], y, reduction="sum")
                loss.backward()
                st["loss_sum"] += float(loss.detach())
                st["seeds"] += n_seeds
            t1 = time.perf_counter()
            w._sync_gradients(count=n_seeds)
            w.optimizer.step()
            w._synchronize()
            t2 = time.perf_counter()
            st["compute_s"] += t1 - t0
            st["sync_s"] += t2 - t1
            self.step += 1
        return self.steps - self.step

    def end_stats(self) -> dict:
        f = self.fetcher
        return {**self.stats, "steps": self.steps, "hits": f.hits, "misses": f.misses,
                "bytes_fetched": f.bytes_fetched, "bytes_saved": f.bytes_saved}

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread, self._queue = None, None
