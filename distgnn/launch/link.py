"""Link prediction in the runtime: full-graph and sampled epochs on edges (see :mod:`.epochs`).

Chosen by :func:`~.epochs.epochs_for` when the task is ``link-prediction``. The partition holds
the training edges as its message-passing graph (every worker stores the edges whose target it
owns, with their original edge ids ``eid``) and, in ``link_edges.parquet``, the validation/test
candidates whose target it owns (see :mod:`distgnn.partition.format`). The model is a
:class:`~distgnn.models.LinkModel`: the configured encoder (any model of ``--model``, or a
builder of one) and a decoder (``--decoder dot|mlp``).

Full-graph epochs, one optimiser step each:

1. every worker embeds its part, ``h = model(x, graph)`` ``[N_w, D]`` (halo exchange per hop);
2. its positives are its stored training edges; ``k`` negatives each from
   :class:`~distgnn.sampling.NegativeSampler` keyed by ``(seed, epoch, eid, j)``: the same on any
   number of workers (``--exclude-positives``: redrawn when they hit a training edge, asked of
   the edge's owner, :class:`EdgeMembership`);
3. the rows of both endpoints come from their owners, ``graph.fetch_rows(h, ids)`` (one
   exchange; its backward returns the endpoint gradients to the owners);
4. ``loss = BCE sum / (global positives + negatives)``; ONE gradient all-reduce.

A full-graph step holds the endpoint rows of all of a worker's positives and negatives at once
(``2 E_w (1 + k) D`` floats, with their gradients): on large graphs train sampled.

Sampled epochs: the driver shuffles the ids of all training edges (``(seed, epoch)``), hands
every worker the edges it stores, in that order, and the step count ``S`` they all run
(:func:`split_edges`: ``ceil(batch_size / W)`` positives per worker and step, like
:func:`~.sampled.split_seeds`). Step ``k`` of a worker: its positives, their keyed negatives,
``seeds = unique(endpoints)`` (sorted), their sampled neighbourhood
(:func:`~distgnn.sampling.sample_subgraph` over the distributed keyed sampler, step seed
``(seed, epoch, k)``; the sampled edges' features, for an encoder that uses them, from the workers
storing them), the model on it, scores from the seed rows; the summed loss and ONE
all-reduce of the gradients with the row count (a mean over the global batch). A single process
(one worker) takes the same batches: the whole shuffled list in chunks of ``batch_size``.

Evaluation (both modes): full-graph embeddings (eval mode); every worker scores its
``link_edges`` rows (remote endpoints through ``fetch_rows``); ``(score, label, query, split)``
of all workers are gathered and the task's metrics computed on all of them, per split, on every
rank (``val_auc``, ``test_ap``, ``test_hits@50``, ``test_mrr``, ...): exact, not averaged.
"""
from __future__ import annotations

import time

import torch
import torch.distributed as dist
from torch import Tensor

from .epochs import all_reduce, finite_loss
from .sampled import Batch, SampledSteps
from .seeds import mix_seed
from .stats import EpochStats

__all__ = ["LINK_TASK", "is_link_task", "load_link", "LinkFullEpochs", "LinkSampledEpochs", "LinkFullDriver",
           "LinkSampledDriver", "EdgeMembership", "split_edges", "evaluate_links", "candidate_metrics", "merge_link_edges",
           "DEFAULT_EMBEDDING"]

LINK_TASK = "link-prediction"
DEFAULT_EMBEDDING = 64  # embedding width when embedding_dim is not given
EVAL_SPLITS = ((1, "val"), (2, "test"))
LINK_COLUMNS = ("src", "dst", "split", "label", "query")


def is_link_task(task) -> bool:
    """Whether ``task`` (a name or a task object) is link prediction."""
    return (task if isinstance(task, str) else getattr(task, "name", None)) == LINK_TASK


def merge_link_edges(parts) -> dict[str, Tensor]:
    """The ``link_edges`` of consecutive parts, concatenated (empty columns when a part has none)."""
    tables = [getattr(p, "link_edges", None) for p in parts]
    dtypes = {"split": torch.int8, "label": torch.int8}
    out = {}
    for key in LINK_COLUMNS:
        cols = [t[key] for t in tables if t is not None]
        out[key] = torch.cat(cols) if cols else torch.zeros(0, dtype=dtypes.get(key, torch.long))
    return out


# -- loading ------------------------------------------------------------------------------------------
def build_link_model(config, in_channels: int, edge_dim: int):
    """The :class:`~distgnn.models.LinkModel` of ``config``: the encoder ``config.model`` with
    output width ``D = embedding_dim`` (default :data:`DEFAULT_EMBEDDING`) and the decoder
    ``config.decoder``, built as :func:`distgnn.train.link.link_model` builds it in one process.
    A builder that already returns a model with ``score`` is used as it is."""
    from ..models import model_builder
    from ..models.link import LinkModel, make_decoder

    c = config
    dim = c.embedding_dim if c.embedding_dim is not None else DEFAULT_EMBEDDING
    encoder = model_builder(c.model, hidden=c.hidden, num_layers=c.num_layers, dropout=c.dropout,
                            layer_args=c.layer_args, edge_dim=edge_dim)(in_channels, dim)
    if hasattr(encoder, "score"):
        return encoder
    return LinkModel(encoder, make_decoder(c.decoder, dim))


def load_link(worker, shard, link_edges: dict[str, Tensor], read_s: float, t0: float) -> dict:
    """Worker side of :meth:`~.worker.Worker.load` for link prediction: graph, features, the
    training edges, the evaluation candidates, the model and the epochs. Collective."""
    from .replica import Replica, accepts_edge_features, size_lazy_layers
    from .shard import build_graph

    c, dev = worker.config, worker.device
    worker.graph = build_graph(shard, device=dev)
    worker.node_start = shard.node_start
    worker.x = shard.x.to(dev)
    worker.num_nodes_global = shard.num_nodes_global
    src, dst = shard.edge_index  # (E_w,) each, global ids, eid ascending
    worker.train_src, worker.train_dst, worker.train_eid = src, dst, shard.eid
    worker.link_edges = link_edges
    counts = torch.tensor([src.numel(), int((link_edges["label"] == 1).sum())], dtype=torch.long, device=dev)
    dist.all_reduce(counts)
    worker.num_train = int(counts[0])
    if worker.num_train == 0:
        raise ValueError("the partition has no training edge (link prediction trains on the edges of its graph)")
    if int(counts[1]) == 0:
        raise ValueError("the partition has no validation or test edge: partition it with --edge-split "
                         "(python -m distgnn.partition ... --edge-split 0.85,0.05,0.10)")
    e = shard.edge_attr
    if e is not None:
        e = (e.unsqueeze(-1) if e.dim() == 1 else e).to(dev)  # (E_w, S)
    torch.manual_seed(c.seed)  # the same initial parameters on every rank
    model = build_link_model(c, int(worker.x.shape[1]), 0 if e is None else int(e.shape[1])).to(dev)
    takes_e = e is not None and accepts_edge_features(model) and getattr(model, "takes_edges", True)
    worker.inputs = {"e": e} if takes_e else {}  # edge features only for an encoder that uses them
    size_lazy_layers(model, worker.x, worker.graph, worker.inputs)  # the same on every rank
    worker.replica = Replica(model, c.learning_rate, c.weight_decay, dev)
    worker.epoch = 0
    impl = LinkSampledEpochs if c.mode == "sampled" else LinkFullEpochs
    worker.epochs = impl(worker, shard)
    return {**worker.epochs.load_info(),
            "rank": worker.rank, "nodes": shard.num_nodes, "edges": worker.graph.num_edges,
            "halo": worker.graph.num_halo, "train": int(src.numel()), "candidates": int(link_edges["src"].numel()),
            "classes": 0, "features": int(worker.x.shape[1]), "parameters": worker.replica.num_parameters,
            "read_s": read_s, "load_s": time.perf_counter() - t0}


# -- negatives ----------------------------------------------------------------------------------------
class EdgeMembership:
    """``fn(u [M], v [M]) -> bool [M]``: whether ``u -> v`` is a training edge of the WHOLE graph,
    asked of the owner of ``v`` (who stores every edge into ``v``). Collective, for
    :class:`~distgnn.sampling.NegativeSampler`'s ``exclude``.

    Ranks may need different numbers of queries (a sampler stops redrawing when none of ITS draws
    is excluded), so every query round carries a flag "still asking": a rank that is done calls
    :meth:`drain`, which answers the others' rounds with empty queries until no rank asks. Every
    ``sample`` with this ``exclude`` must be followed by ``drain()`` on every rank.

    Args:
        src, dst: ``[E_w]`` global ids of the edges this rank stores (targets owned here).
        starts: ``[W + 1]`` first global id of every rank; num_nodes: ``N``; group: the process group.
    """

    def __init__(self, src: Tensor, dst: Tensor, starts, num_nodes: int, group=None):
        self.n = int(num_nodes)
        self.table = torch.unique(src.long() * self.n + dst.long())  # (E',) sorted keys
        self.starts = torch.as_tensor(starts, dtype=torch.long)
        self.group = group
        self.world = dist.get_world_size(group)
        self.rank = dist.get_rank(group)

    def _round(self, u: Tensor, v: Tensor, asking: bool) -> Tensor | None:
        w = self.world
        key = u.long() * self.n + v.long()  # (M,)
        owner = torch.searchsorted(self.starts, v.long(), right=True) - 1
        order = torch.argsort(owner, stable=True)
        ask = torch.cat([torch.bincount(owner, minlength=w), torch.tensor([int(asking)])])  # (W + 1,)
        table = [torch.zeros_like(ask) for _ in range(w)]
        dist.all_gather(table, ask, group=self.group)
        table = torch.stack(table)  # (W, W + 1)
        if int(table[:, w].sum()) == 0:
            return None
        send, recv = ask[:w].tolist(), table[:, self.rank].tolist()
        asked = key.new_empty(sum(recv))
        dist.all_to_all_single(asked, key[order].contiguous(), output_split_sizes=recv, input_split_sizes=send,
                               group=self.group)
        if self.table.numel() and asked.numel():
            pos = torch.searchsorted(self.table, asked).clamp_(max=self.table.numel() - 1)
            answer = (self.table[pos] == asked).to(torch.uint8)
        else:
            answer = torch.zeros(asked.shape, dtype=torch.uint8)
        got = torch.empty(key.numel(), dtype=torch.uint8)
        dist.all_to_all_single(got, answer, output_split_sizes=send, input_split_sizes=recv, group=self.group)
        out = torch.empty(key.numel(), dtype=torch.bool)
        out[order] = got.bool()
        return out

    def __call__(self, u: Tensor, v: Tensor) -> Tensor:
        return self._round(u, v, True)

    def drain(self) -> None:
        """Take part in the other ranks' query rounds until no rank asks any more."""
        empty = torch.zeros(0, dtype=torch.long)
        while self._round(empty, empty, False) is not None:
            pass


def make_sampler(worker, group=None):
    """``(NegativeSampler, membership or None)`` of the run's settings (collective-safe)."""
    from ..sampling.negative import NegativeSampler

    c = worker.config
    member = None
    if c.exclude_positives:
        member = EdgeMembership(worker.train_src, worker.train_dst, worker.graph.exchange.starts,
                                worker.num_nodes_global, group)
    sampler = NegativeSampler(worker.num_nodes_global, c.negatives, c.neg_sampling, seed=c.seed, exclude=member)
    return sampler, member


def negatives(sampler, member, src: Tensor, dst: Tensor, eid: Tensor, epoch: int) -> tuple[Tensor, Tensor]:
    """The keyed negatives of the positives ``src -> dst`` (``eid``) at ``epoch``. Collective when
    positives are excluded (every rank calls it, with its own, possibly empty, positives)."""
    out = sampler.sample(src, dst, eid, epoch)
    if member is not None:
        member.drain()
    return out


# -- evaluation ---------------------------------------------------------------------------------------
def _gather_rows(t: Tensor, group=None) -> Tensor:
    """Every rank's ``t [n_r, *]`` stacked in rank order (``all_gather`` with padding). Collective."""
    world = dist.get_world_size(group)
    n = torch.tensor([t.shape[0]], dtype=torch.long, device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n, group=group)
    sizes = [int(s) for s in sizes]
    width = max(max(sizes), 1)
    padded = t.new_zeros((width,) + tuple(t.shape[1:]))
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded.contiguous(), group=group)
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


def score_candidates(model, h: Tensor, graph, src: Tensor, dst: Tensor) -> Tensor:
    """Logits ``[M]`` of the pairs ``src -> dst`` (global ids) from the embeddings ``h``: the
    endpoint rows through ``graph.fetch_rows`` (one exchange). Collective on a partition."""
    m = src.numel()
    rows = graph.fetch_rows(h, torch.cat([src, dst]).to(h.device))  # (2M, D)
    return model.score(rows[:m], rows[m:])  # (M,)


def link_metrics(task, score: Tensor, label: Tensor, query: Tensor, split: Tensor) -> dict:
    """``{"val_auc": .., "test_ap": ..}``: the task's metrics of every evaluation split."""
    out = {}
    for code, name in EVAL_SPLITS:
        rows = split == code
        for key, value in task.metrics(score[rows], label[rows], query[rows]).items():
            out[f"{name}_{key}"] = float(value)
    return out


def evaluate_links(worker) -> dict:
    """The task's metrics over ALL workers' candidates (identical on every rank). Collective."""
    model = worker.replica.model
    model.eval()
    with torch.no_grad():
        h = model(worker.x, worker.graph, **worker.inputs)  # (N_w, D)
    return candidate_metrics(worker.task, model, h, worker.graph, worker.link_edges, worker.device)


def candidate_metrics(task, model, h: Tensor, graph, link_edges: dict[str, Tensor], device) -> dict:
    """The task's metrics of ALL workers' evaluation candidates scored from the embeddings ``h``
    ``[N_w, D]`` (this worker's rows): identical on every rank. Collective (also used by
    :mod:`distgnn.predict`, whose embeddings come layer by layer)."""
    le = link_edges
    with torch.no_grad():
        score = score_candidates(model, h, graph, le["src"], le["dst"]).to(torch.float64).cpu()
    cols = torch.stack([score, le["label"].to(torch.float64), le["query"].to(torch.float64),
                        le["split"].to(torch.float64)], 1)  # (M_w, 4); query ids < 2^53
    every = _gather_rows(cols.to(device)).cpu()  # (M, 4); on the device for NCCL
    return link_metrics(task, every[:, 0], every[:, 1].long(), every[:, 2].long(), every[:, 3].long())


# -- full-graph epochs --------------------------------------------------------------------------------
class LinkFullEpochs:
    """The worker side of full-graph link prediction (see the module docstring)."""

    def __init__(self, worker, shard):
        self.worker = worker
        # the membership queries of --exclude-positives move CPU tensors: a gloo group beside NCCL
        group = dist.new_group(backend="gloo") if dist.get_backend() == "nccl" else None
        self.sampler, self.member = make_sampler(worker, group)
        k = worker.config.negatives
        self.count = worker.num_train * (1 + k)  # global loss rows per step

    def load_info(self) -> dict:
        return {}

    def begin(self, epoch: int, plan=None) -> None:
        w = self.worker
        w.graph.exchange.reset_counters()
        torch.manual_seed(mix_seed(w.config.seed, epoch, w.rank))
        self.epoch = epoch
        self._t0 = time.perf_counter()
        self._left = 1
        self._loss = None
        self._step_s = self._sync_s = self._fetch_s = 0.0

    def run_steps(self, count: int) -> int:
        if self._left == 0 or count < 1:
            return self._left
        w = self.worker
        t0 = time.perf_counter()
        r = w.replica
        r.zero_grad()
        src, dst, eid = w.train_src, w.train_dst, w.train_eid
        neg_src, neg_dst = negatives(self.sampler, self.member, src, dst, eid, self.epoch)
        h = r.model(w.x, w.graph, **w.inputs)  # (N_w, D)
        u, v = torch.cat([src, neg_src]), torch.cat([dst, neg_dst])  # (B (1 + k),)
        label = torch.cat([torch.ones(src.numel()), torch.zeros(neg_src.numel())]).to(h.device)
        t_fetch = time.perf_counter()
        logits = score_candidates(r.model, h, w.graph, u, v)  # (B (1 + k),)
        self._fetch_s = time.perf_counter() - t_fetch
        loss = w.task.loss(logits, label) / self.count
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
                           fetch_s=self._fetch_s, halo_bytes=ex.bytes_sent, seeds=int(w.train_src.numel()))
        total = all_reduce(self._loss.clone())
        stats.loss = float(total[0])
        finite_loss(stats.loss)
        t0 = time.perf_counter()
        if evaluate:
            stats.metrics = evaluate_links(w)
        stats.eval_s = time.perf_counter() - t0
        stats.epoch_s = time.perf_counter() - self._t0
        w.epoch = epoch
        return stats


class LinkFullDriver:
    """The driver side of full-graph link prediction: one call per epoch."""

    def __init__(self, config, progress: bool = False):
        self.config = config

    def describe(self) -> str:
        return f"full-graph link prediction ({self.config.decoder} decoder, {self.config.negatives} negative(s) per edge)"

    def prepare(self, loaded: list[dict], starts: list[int]) -> None:
        return None

    def run(self, epoch: int, evaluate: bool, call) -> EpochStats:
        from .full import merge

        t0 = time.perf_counter()
        per_rank = call("run_epoch", [(epoch, None, evaluate)] * self.config.workers)
        out = merge(per_rank, time.perf_counter() - t0)
        out.fetch_s = max(r.fetch_s for r in per_rank)
        out.seeds = sum(r.seeds for r in per_rank)
        return out


# -- sampled epochs -----------------------------------------------------------------------------------
def split_edges(order: Tensor, owner: Tensor, world: int, batch_size: int) -> tuple[list[Tensor], int]:
    """Every worker's training edge ids (in the given order) and the step count ``S`` they all run.

    ``order [E]``: shuffled edge ids; ``owner [E]``: the worker storing each of them (aligned with
    ``order``). ``batch_size`` positives per step over all workers: ``ceil(batch_size / W)`` each.
    """
    per_worker = [order[owner == r] for r in range(world)]
    local = max(1, -(-batch_size // world))
    steps = max(-(-int(s.numel()) // local) for s in per_worker)
    return per_worker, max(steps, 1)


class LinkSampledEpochs(SampledSteps):
    """The worker side of sampled link prediction (see the module docstring): the batches are
    training edge ids; a batch's seeds are the endpoints of its positives and their negatives."""

    thread_name = "distgnn-link-sampler"

    def __init__(self, worker, shard):
        super().__init__(worker, shard)  # sampling, negatives and features: a gloo group of their own
        self.sampler, self.member = make_sampler(worker, self.group)

    def load_info(self) -> dict:
        """What the driver needs to shuffle: this worker's training edge ids."""
        return {"train_eids": self.worker.train_eid.numpy()}

    def _produce(self, step: int) -> Batch:
        """Positives, negatives, seeds, the sampled subgraph and its features of batch ``step``
        (collective on the sampling group)."""
        w = self.worker
        t0 = time.perf_counter()
        pos = torch.searchsorted(w.train_eid, self.batches[step])  # stored edges are in eid order
        src, dst, eid = w.train_src[pos], w.train_dst[pos], w.train_eid[pos]
        neg_src, neg_dst = negatives(self.sampler, self.member, src, dst, eid, self.epoch)
        u, v = torch.cat([src, neg_src]), torch.cat([dst, neg_dst])  # (B (1 + k),)
        seeds, inverse = torch.unique(torch.cat([u, v]), return_inverse=True)  # sorted
        sub = self._sample(seeds, step)
        t1 = time.perf_counter()
        x, e = self._fetch(sub)
        return Batch(sub, x, e, t1 - t0, time.perf_counter() - t1, (inverse, int(src.numel())))

    def begin(self, epoch: int, plan) -> None:
        """Start an epoch with ``plan = (eids, steps)``: this worker's shuffled training edge ids
        and the step count of every worker."""
        eids, steps = plan
        self._start(epoch, eids, steps, rows=0, positives=0)

    def _loss(self, b: Batch) -> int:
        """The summed BCE of the batch's positives and negatives, backpropagated; returns their count."""
        w = self.worker
        inverse, n_pos = b.extra
        rows = inverse.numel() // 2  # positives and negatives
        if rows:
            h = self._model_on(b)
            inv = inverse.to(w.device)
            logits = w.replica.model.score(h[inv[:rows]], h[inv[rows:]])  # (rows,): seed rows come first
            label = torch.zeros(rows, device=w.device)
            label[:n_pos] = 1.0
            loss = w.task.loss(logits, label)
            loss.backward()
            self.stats["loss_sum"] += float(loss.detach())
            self.stats["rows"] += rows
            self.stats["positives"] += n_pos
        return rows

    def end(self, epoch: int, evaluate: bool = True) -> EpochStats:
        """Finish the epoch: global loss and traffic, and (full-graph) metrics. Collective."""
        s, w = self.stats, self.worker
        self.stop()
        t0 = time.perf_counter()
        total = all_reduce(torch.tensor([s["loss_sum"], s["rows"]], dtype=torch.float64, device=w.device))
        out = self._epoch_stats(epoch, float(total[0]), float(total[1]), s["positives"])
        if evaluate:
            out.metrics = evaluate_links(w)
        out.eval_s = time.perf_counter() - t0
        return out


class LinkSampledDriver:
    """The driver side of sampled link prediction: shuffle all training edge ids (seeded by
    ``(seed, epoch)``), hand every worker its own (:func:`split_edges`), run the steps in chunks."""

    def __init__(self, config, progress: bool = False):
        self.config = config
        self.progress = progress

    def describe(self) -> str:
        c = self.config
        return (f"sampled link prediction (fan-out {','.join(map(str, c.fanouts))}, batch {c.batch_size} edges, "
                f"{c.decoder} decoder, {c.negatives} negative(s) per edge)")

    def prepare(self, loaded: list[dict], starts: list[int]) -> None:
        import numpy as np

        eids = [w.pop("train_eids") for w in loaded]
        owner = np.concatenate([np.full(len(e), r, dtype=np.int64) for r, e in enumerate(eids)])
        eid = np.concatenate(eids)
        order = np.argsort(eid, kind="stable")
        self.train_eids, self.owner = torch.from_numpy(eid[order]), torch.from_numpy(owner[order])

    def plan(self, epoch: int) -> tuple[list[Tensor], int]:
        """Every worker's shuffled training edge ids of ``epoch`` and the step count."""
        c = self.config
        g = torch.Generator().manual_seed(mix_seed(c.seed, epoch))
        perm = torch.randperm(self.train_eids.numel(), generator=g)
        return split_edges(self.train_eids[perm], self.owner[perm], c.workers, c.batch_size)

    def run(self, epoch: int, evaluate: bool, call) -> EpochStats:
        from tqdm import tqdm

        from .sampled import merge

        c = self.config
        t0 = time.perf_counter()
        per_worker, steps = self.plan(epoch)
        call("begin", [(epoch, (s.numpy(), steps)) for s in per_worker])
        chunk = max(1, -(-steps // 20))
        with tqdm(total=steps, desc=f"epoch {epoch}", unit="step", leave=False,
                  disable=None if self.progress else True) as bar:
            left = steps
            while left > 0:
                left = call("run_steps", [(chunk,)] * c.workers)[0]
                bar.update(steps - left - bar.n)
        per_rank = call("end", [(epoch, evaluate)] * c.workers)
        return merge(per_rank, time.perf_counter() - t0)
