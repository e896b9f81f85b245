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

Edge features travel with the sampled subgraph when the partition has them and the model's
``forward`` takes ``e``: :class:`~distgnn.sampling.EdgeFeatureFetcher` reads the rows of the sampled
edges (by global edge id) from the workers storing them, in the same exchange round as the
feature rows, and the model gets ``e=`` ``[E_sub, S]`` in the subgraph's edge order.

Sampling and fetching run on the CPU over a gloo group of their own (also when training runs on
a GPU with NCCL): with ``pipeline``, a background thread samples and fetches batch ``k + 1`` while
batch ``k`` trains, and its collectives never interleave with the main thread's all-reduce.
"""
from __future__ import annotations

import queue
import socket
import threading
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..graph import Graph
from .epochs import all_reduce, evaluate_sums, finish_metrics, finite_loss
from .seeds import mix_seed
from .stats import EpochStats

__all__ = ["SampledSteps", "SampledEpochs", "SampledDriver", "Batch", "split_seeds"]


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


@dataclass
class Batch:
    """One sampled step: the subgraph (seeds first), its feature rows ``x`` (and edge rows ``e``),
    what the task needs besides (``extra``) and the time sampling and fetching took."""

    sub: object
    x: torch.Tensor
    e: torch.Tensor | None
    sample_s: float
    fetch_s: float
    extra: tuple = ()


class SampledSteps:
    """What the sampled epochs of every task share, on the worker: the topology and the keyed
    distributed sampler, the feature (and edge feature) fetchers with their cache, the epoch's
    batches of ids in equal step counts, the background thread that samples and fetches batch
    ``k + 1`` while batch ``k`` trains, the step loop (one gradient all-reduce with the loss rows
    appended) and the epoch's traffic figures.

    A task's subclass defines ``_produce(step) -> Batch`` (collective on :attr:`group`),
    ``_loss(batch) -> rows`` (forward and backward of one batch; returns its loss rows, 0 for an
    empty batch), ``load_info()`` and ``end()``; ``_hotness`` scores nodes for the cache
    (default: in-degree).
    """

    thread_name = "distgnn-sampler"

    def __init__(self, worker, shard):
        from ..sampling import DistributedSampleFn, EdgeFeatureFetcher, FeatureFetcher, IdMap, Topology

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
        hot = self._hotness(topo, shard) if c.cache_mb > 0 else None
        self.fetcher = FeatureFetcher(shard.x, self.starts, cache_mb=c.cache_mb, hotness=hot, group=self.group)
        self.edge_fetcher = None
        if "e" in worker.inputs:  # the partition has edge features and the model takes them
            e = shard.edge_attr.unsqueeze(-1) if shard.edge_attr.dim() == 1 else shard.edge_attr  # (E_w, S)
            self.edge_fetcher = EdgeFeatureFetcher(e, shard.eid, self.starts, group=self.group)
        self._thread = None
        self._queue = None

    def _hotness(self, topo, shard) -> torch.Tensor:
        from ..sampling import in_degree_hotness

        return in_degree_hotness(topo, self.starts, group=self.group)

    # -- batches ------------------------------------------------------------------------------------
    def _sample(self, seeds: torch.Tensor, step: int):
        """The sampled neighbourhood of ``seeds`` for step ``step`` (collective on the sampling group)."""
        from ..sampling import sample_subgraph

        return sample_subgraph(self.sample_fn, seeds, self.config.fanouts, replace=self.config.replace,
                               seed=mix_seed(self.config.seed, self.epoch, step), id_map=self.id_map)

    def _fetch(self, sub) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The feature rows of ``sub``'s nodes and, when the model takes them, of its edges."""
        x = self.fetcher.fetch(sub.node_ids)
        e = None
        if self.edge_fetcher is not None:  # rows of the sampled edges, read where they are stored
            e = self.edge_fetcher.fetch(sub.eid, sub.node_ids.index_select(0, sub.edge_index[1]))  # (E_sub, S)
        return x, e

    def _run_producer(self) -> None:
        try:
            for step in range(self.steps):
                self._queue.put(self._produce(step))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._queue.put(exc)

    def _start(self, epoch: int, ids, steps: int, **counters) -> None:
        """Start epoch ``epoch`` on this worker's shuffled ``ids`` (seeds or edge ids), cut into
        ``steps`` batches (the last ones empty where this worker has fewer), with the task's
        ``counters`` (starting at 0) beside the common figures."""
        ids = torch.as_tensor(ids, dtype=torch.long)
        torch.manual_seed(mix_seed(self.config.seed, epoch, self.worker.rank))
        self.worker.graph.exchange.reset_counters()
        self.stop()
        self.epoch, self.steps = epoch, steps
        chunks = list(torch.split(ids, self.local_batch)) if ids.numel() else []
        self.batches = chunks + [torch.zeros(0, dtype=torch.long)] * (steps - len(chunks))
        self.step = 0
        self.fetcher.reset_stats()
        if self.edge_fetcher is not None:
            self.edge_fetcher.reset_stats()
        self.stats = dict(loss_sum=0.0, sample_s=0.0, fetch_s=0.0, wait_s=0.0, compute_s=0.0, sync_s=0.0,
                          sampled_edges=0, sampled_nodes=0, **counters)
        if self.config.pipeline:
            self._queue = queue.Queue(maxsize=1)
            self._thread = threading.Thread(target=self._run_producer, name=self.thread_name, daemon=True)
            self._thread.start()

    def _next(self) -> Batch:
        if self._thread is None:
            return self._produce(self.step)
        t0 = time.perf_counter()
        item = self._queue.get(timeout=self.config.timeout_s)
        self.stats["wait_s"] += time.perf_counter() - t0
        if isinstance(item, BaseException):
            raise item
        return item

    def _model_on(self, b: Batch) -> torch.Tensor:
        """The model on the batch's subgraph: ``[n_sub, *]`` rows, seeds first."""
        w = self.worker
        inputs = {} if b.e is None else {"e": b.e.to(w.device)}
        graph = Graph(b.sub.edge_index.to(w.device), int(b.sub.node_ids.numel()))
        return w.replica.model(b.x.to(w.device), graph, **inputs)

    # -- steps --------------------------------------------------------------------------------------
    def run_steps(self, count: int) -> int:
        """Run up to ``count`` steps of the epoch; returns how many are left."""
        r = self.worker.replica
        for _ in range(min(count, self.steps - self.step)):
            b = self._next()
            st = self.stats
            st["sample_s"] += b.sample_s
            st["fetch_s"] += b.fetch_s
            st["sampled_edges"] += int(b.sub.edge_index.shape[1])
            st["sampled_nodes"] += int(b.sub.node_ids.numel())
            t0 = time.perf_counter()
            r.zero_grad()
            rows = self._loss(b)
            t1 = time.perf_counter()
            r.sync_gradients(count=rows)
            r.step()
            st["compute_s"] += t1 - t0
            st["sync_s"] += time.perf_counter() - t1
            self.step += 1
        return self.steps - self.step

    def _epoch_stats(self, epoch: int, loss_sum: float, rows: float, seeds: int) -> EpochStats:
        """This rank's figures of the epoch, with the global loss ``loss_sum / rows`` (all-reduced
        by the caller); a loss that is no longer finite stops the run."""
        s, f, w = self.stats, self.fetcher, self.worker
        out = EpochStats(
            epoch=epoch, loss=loss_sum / rows if rows else float("nan"),
            steps=self.steps, seeds=seeds, sample_s=s["sample_s"], fetch_s=s["fetch_s"], wait_s=s["wait_s"],
            compute_s=s["compute_s"], sync_s=s["sync_s"], sampled_edges=s["sampled_edges"],
            sampled_nodes=s["sampled_nodes"], hits=f.hits, misses=f.misses,
            bytes_fetched=f.bytes_fetched + (self.edge_fetcher.bytes_fetched if self.edge_fetcher is not None else 0),
            bytes_saved=f.bytes_saved, halo_bytes=w.graph.exchange.bytes_sent,
        )
        if rows:
            finite_loss(out.loss)
        w.epoch = epoch
        return out

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread, self._queue = None, None


class SampledEpochs(SampledSteps):
    """The worker side of sampled node-task epochs (see :mod:`.epochs`): seeds are training nodes."""

    def __init__(self, worker, shard):
        self._train_ids = torch.nonzero(shard.train_mask).view(-1) + shard.node_start
        super().__init__(worker, shard)

    def _hotness(self, topo, shard) -> torch.Tensor:
        if self.config.cache_policy == "degree":
            return super()._hotness(topo, shard)
        return self._prepass(self._train_ids)

    def load_info(self) -> dict:
        """What the driver needs to shuffle: this worker's training nodes (global ids)."""
        return {"train_ids": self._train_ids.numpy()}

    def _prepass(self, train_ids: torch.Tensor) -> torch.Tensor:
        """``[N]`` how often each node appears in this worker's sampled subgraphs over one pass of
        its training seeds (the same step count on every worker). Collective."""
        from ..sampling import access_counts, sample_subgraph

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

    def _produce(self, step: int) -> Batch:
        """Sample and fetch batch ``step`` of the epoch (collective on the sampling group)."""
        t0 = time.perf_counter()
        sub = self._sample(self.batches[step], step)
        t1 = time.perf_counter()
        x, e = self._fetch(sub)
        return Batch(sub, x, e, t1 - t0, time.perf_counter() - t1)

    def begin(self, epoch: int, plan) -> None:
        """Start an epoch with ``plan = (seeds, steps)``: this worker's shuffled seeds (global ids)
        and the step count of every worker."""
        seeds, steps = plan
        self._start(epoch, seeds, steps, seeds=0)

    def _loss(self, b: Batch) -> int:
        """The summed loss of the batch's seeds, backpropagated; returns the seed count."""
        w = self.worker
        n_seeds = b.sub.num_seeds
        if n_seeds:
            seeds = b.sub.node_ids[:n_seeds]
            out = self._model_on(b)
            loss = w.task.loss(out[:n_seeds], w.y[(seeds - w.node_start).to(w.device)])
            loss.backward()
            self.stats["loss_sum"] += float(loss.detach())
            self.stats["seeds"] += n_seeds
        return n_seeds

    def end(self, epoch: int, evaluate: bool = True) -> EpochStats:
        """Finish the epoch: global loss and traffic, and (full-graph) metrics. Collective."""
        s, w = self.stats, self.worker
        self.stop()
        t0 = time.perf_counter()
        total = torch.tensor([s["loss_sum"], s["seeds"]], dtype=torch.float64, device=w.device)
        if evaluate:
            total = torch.cat([total, evaluate_sums(w)])
        all_reduce(total)
        out = self._epoch_stats(epoch, float(total[0]), float(total[1]), s["seeds"])
        if evaluate:
            out.metrics = finish_metrics(w.task, total[2:])
        out.eval_s = time.perf_counter() - t0
        return out


class SampledDriver:
    """The driver side: shuffle the training nodes (seeded by ``(seed, epoch)``), hand every
    worker its own, run the steps in chunks (a progress bar), merge the figures."""

    def __init__(self, config, progress: bool = False):
        self.config = config
        self.progress = progress

    def describe(self) -> str:
        return f"sampled (fan-out {','.join(map(str, self.config.fanouts))}, batch {self.config.batch_size})"

    def prepare(self, loaded: list[dict], starts: list[int]) -> None:
        import numpy as np

        self.train_ids = torch.from_numpy(np.sort(np.concatenate([w.pop("train_ids") for w in loaded])))
        self.starts = starts
        here = socket.gethostname()  # workers on this machine: their RSS goes into the progress lines
        self.local_pids = [w["pid"] for w in loaded if w.get("pid") and w.get("host") == here]

    def _worker_rss(self) -> int | None:
        """The largest resident set among the workers on this machine (``None``: none readable)."""
        from ..progress import rss_bytes

        sizes = [r for r in map(rss_bytes, getattr(self, "local_pids", ())) if r is not None]
        return max(sizes) if sizes else None

    def run(self, epoch: int, evaluate: bool, call) -> EpochStats:
        from ..progress import ProgressLine

        c = self.config
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(mix_seed(c.seed, epoch))
        order = self.train_ids[torch.randperm(self.train_ids.numel(), generator=g)]
        per_worker, steps = split_seeds(order, self.starts, c.batch_size)
        call("begin", [(epoch, (s.numpy(), steps)) for s in per_worker])
        chunk = max(1, -(-steps // 20))
        # a bar on a terminal, else a line every 30 s (steps/s, ETA, the workers' memory) for a job's log
        with ProgressLine(f"epoch {epoch}", total=steps, unit="step", disable=not self.progress,
                          memory=self._worker_rss, memory_label="worker RSS max") as bar:
            left = steps
            while left > 0:
                left = call("run_steps", [(chunk,)] * c.workers)[0]
                bar.update(steps - left - bar.n)
        per_rank = call("end", [(epoch, evaluate)] * c.workers)
        return merge(per_rank, time.perf_counter() - t0)


def merge(per_rank: list[EpochStats], wall_s: float) -> EpochStats:
    """Global figures of a sampled epoch: times of the slowest rank, traffic summed over ranks."""
    s = per_rank[0]
    out = EpochStats(epoch=s.epoch, loss=s.loss, metrics=dict(s.metrics), steps=s.steps, wall_s=wall_s)
    for key in ("compute_s", "sync_s", "sample_s", "fetch_s", "wait_s", "eval_s"):
        setattr(out, key, max(getattr(r, key) for r in per_rank))
    for key in ("hits", "misses", "bytes_fetched", "bytes_saved", "sampled_edges", "sampled_nodes", "seeds",
                "halo_bytes"):
        setattr(out, key, sum(getattr(r, key) for r in per_rank))
    out.exchange_s = out.fetch_s
    out.step_s = out.compute_s + out.sync_s
    out.epoch_s = max(r.eval_s + r.compute_s + r.sync_s + r.wait_s for r in per_rank)
    return out
