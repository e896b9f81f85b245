"""Sampling and feature fetching across processes (``torch.distributed``, one process per part).

Part ``p`` owns the contiguous global ids ``[starts[p], starts[p + 1])`` (``starts [K + 1]``,
``starts[0] = 0``, ``starts[K] = N``; a part may own no node), and holds the in-edges of its
nodes as a :class:`~distgnn.sampling.Topology` and their feature rows.

:class:`DistributedSampleFn` is a :class:`~distgnn.sampling.SampleFn`: each hop, every rank sends
each owner the frontier nodes it owns, owners sample them with their topology (the random
numbers are keyed by global node id, see :mod:`distgnn.sampling.rng`) and reply with the edges.
The result equals :func:`~distgnn.sampling.sample_neighbors` on the whole graph, edge for edge
and in the same order, so :func:`~distgnn.sampling.sample_subgraph` over it equals the
single-process subgraph exactly. :class:`FeatureFetcher` then returns ``x[node_ids]``, fetching
rows owned elsewhere from their owners (minus those held in its cache of hot remote rows).

Per call, one request round and one reply round, each ``dist.all_to_all_single`` with uneven
splits:

====================  =========================================================================
call                  collectives
====================  =========================================================================
sampling, per hop     request counts, request ids; reply edge counts per node, reply edges
                      ``[M, 2]`` (source id, edge id)
``fetch``             request counts, request ids; reply rows ``[R, *]``
edge ``fetch``        request counts, request edge ids; reply rows ``[R, *]``
====================  =========================================================================

:class:`EdgeFeatureFetcher` returns the feature rows of sampled edges (by global edge id) from the
part that stores them: the owner of the edge's target, which holds its in-edges.

Both are collective and run in lockstep: every rank must call them the same number of times (a
rank with nothing to ask still calls, with an empty frontier or an empty ``node_ids``), with rows
of one dtype and trailing shape. On gloo the tensors are CPU tensors; on NCCL, CUDA tensors.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from ..collectives import all_to_all_rows, exchange_ids, owner_of
from .neighbor import Topology, check_fanout, sample_positions

__all__ = ["DistributedSampleFn", "FeatureFetcher", "EdgeFeatureFetcher", "owner_of", "check_starts",
           "in_degree_hotness", "access_counts"]


def check_starts(starts: Tensor | Sequence[int], world_size: int, name: str = "starts") -> Tensor:
    """Validate the id ranges of the parts: ``[world_size + 1]`` non-decreasing ints from 0."""
    starts = torch.as_tensor(starts, dtype=torch.long).cpu()
    if starts.dim() != 1 or starts.numel() != world_size + 1:
        raise ValueError(f"{name} must have world_size + 1 = {world_size + 1} entries, got shape {tuple(starts.shape)}")
    if int(starts[0]) != 0 or bool((starts[1:] < starts[:-1]).any()):
        raise ValueError(f"{name} must start at 0 and never decrease, got {starts.tolist()}")
    return starts


def _group_info(group) -> tuple[int, int]:
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("distributed sampling needs an initialised torch.distributed process group")
    return dist.get_rank(group), dist.get_world_size(group)


class _Routed:
    """``nodes [n]`` grouped by owner: ``order`` (positions in ``nodes``), ``counts [W]``."""

    def __init__(self, nodes: Tensor, starts: Tensor, world_size: int):
        owner = owner_of(nodes, starts)
        self.order = torch.argsort(owner, stable=True)  # (n,)
        self.grouped = nodes.index_select(0, self.order)  # (n,)
        self.counts = torch.bincount(owner, minlength=world_size)  # (W,)


class DistributedSampleFn:
    """One hop of neighbour sampling across the ranks of ``group`` (a :class:`~distgnn.sampling.SampleFn`).

    Args:
        topo: this rank's :class:`~distgnn.sampling.Topology`; its owned range must be
            ``[starts[rank], starts[rank + 1])``.
        starts: ``[world_size + 1]`` first global id of every part (and ``N`` last).
        group: the process group (default: the world).

    ``fn(nodes, fanout, hop=h, replace=r, seed=s)`` returns ``(src, dst, eid)`` exactly as
    :func:`~distgnn.sampling.sample_neighbors` would on the whole graph. Collective: every rank
    calls it once per hop of every batch, even with no nodes. ``num_nodes`` is ``N`` (give it to
    :func:`~distgnn.sampling.sample_subgraph`). ``requests_sent`` / ``edges_received`` count the
    remote traffic (nodes asked of other ranks, edges they returned).
    """

    def __init__(self, topo: Topology, starts: Tensor | Sequence[int], *, group=None):
        self.rank, self.world_size = _group_info(group)
        self.group = group
        self.starts = check_starts(starts, self.world_size)
        lo, hi = int(self.starts[self.rank]), int(self.starts[self.rank + 1])
        if topo.node_start != lo or topo.num_owned != hi - lo:
            raise ValueError(
                f"DistributedSampleFn: rank {self.rank} owns [{lo}, {hi}) by starts, but the topology "
                f"covers [{topo.node_start}, {topo.node_start + topo.num_owned})"
            )
        self.topo = topo
        self._starts_dev = self.starts.to(topo.indptr.device)
        self.requests_sent = 0
        self.edges_received = 0

    @property
    def num_nodes(self) -> int:
        return int(self.starts[-1])

    def __call__(
        self, nodes: Tensor, fanout: int, *, hop: int, replace: bool, seed: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        check_fanout(fanout)
        nodes = nodes.to(torch.long)
        if nodes.numel() and (int(nodes.min()) < 0 or int(nodes.max()) >= self.num_nodes):
            raise ValueError(f"DistributedSampleFn: node ids must lie in [0, {self.num_nodes})")
        routed = _Routed(nodes, self._starts_dev, self.world_size)
        asked, asked_counts = exchange_ids(routed.grouped, routed.counts, self.group)  # (A,), nodes we own

        # answer: the edges of every asked node (node-major) and how many each has
        if not self.topo.owns(asked):
            raise RuntimeError(f"DistributedSampleFn: rank {self.rank} was asked for nodes it does not own")
        pos, _ = sample_positions(self.topo, asked, fanout, replace, seed, hop)
        reply = self.topo.gather(pos)  # (M, 2) source id, edge id
        per_node = _sample_counts(self.topo, asked, fanout, replace)  # (A,)
        per_peer = _sums(per_node, asked_counts)  # edges we send each peer
        send_counts = routed.counts.tolist()
        got = all_to_all_rows(per_node, asked_counts, send_counts, self.group)  # (n,) per node, owner-grouped
        got_edges = all_to_all_rows(reply, per_peer, _sums(got, send_counts), self.group)  # (M, 2)

        self.requests_sent += nodes.numel() - send_counts[self.rank]
        self.edges_received += got_edges.shape[0] - per_peer[self.rank]
        # back to the order of `nodes`: node-major, as sample_neighbors returns it
        order = _regroup(routed.order, got)  # (M,)
        edges = got_edges.index_select(0, order)  # (M, 2)
        counts = torch.empty_like(got).index_copy_(0, routed.order, got)  # (n,) per node of `nodes`
        dst = nodes.repeat_interleave(counts, output_size=edges.shape[0])
        return edges[:, 0].contiguous(), dst, edges[:, 1].contiguous()

    def __repr__(self) -> str:
        return (
            f"DistributedSampleFn(rank={self.rank}/{self.world_size}, owned={self.topo.num_owned}, "
            f"num_nodes={self.num_nodes})"
        )


def _sample_counts(topo: Topology, nodes: Tensor, fanout: int, replace: bool) -> Tensor:
    """``[n]`` how many edges :func:`sample_neighbors` returns for each node."""
    local = nodes - topo.node_start
    deg = topo.indptr.index_select(0, local + 1) - topo.indptr.index_select(0, local)
    if fanout == -1:
        return deg
    if replace:
        return torch.where(deg > 0, fanout, 0)
    return deg.clamp(max=fanout)


def _sums(values: Tensor, sizes: list[int]) -> list[int]:
    """Sums of consecutive blocks of ``values`` of the given sizes."""
    return [int(block.sum()) for block in torch.split(values, sizes)]


def _regroup(order: Tensor, counts: Tensor) -> Tensor:
    """Positions that reorder node-major edges from the grouped node order to the original one.

    Node ``order[g]`` (grouped position ``g``) has ``counts[g]`` consecutive edges; the result lists,
    for each output edge in original node order, its position among the grouped edges.
    """
    total = int(counts.sum())
    grouped_start = torch.cumsum(counts, 0) - counts  # (n,) by grouped position
    by_node = torch.empty_like(counts).index_copy_(0, order, counts)  # (n,) by original position
    out_start = torch.cumsum(by_node, 0) - by_node
    shift = out_start.index_select(0, order) - grouped_start  # (n,) grouped -> output offset
    dest = torch.arange(total, device=counts.device) + shift.repeat_interleave(counts, output_size=total)
    return torch.empty_like(dest).index_copy_(0, dest, torch.arange(total, device=counts.device))


# ------------------------------------------------------------------------------------------------
# Features
class FeatureFetcher:
    """``x[node_ids]`` for global ids, rows owned elsewhere fetched from their owners.

    Args:
        x: ``[n_owned, *]`` rows of this rank's nodes (global id ``starts[rank] + i`` is row ``i``).
        starts: ``[world_size + 1]`` the parts' id ranges.
        cache_mb: room for a cache of remote rows (MiB; 0 = no cache). Filled once, at
            construction, with the remote nodes of highest ``hotness``.
        hotness: ``[N]`` score of every global node (required with ``cache_mb > 0``), e.g.
            :func:`in_degree_hotness` or :func:`access_counts` of a sampling pre-pass. Nodes with a
            score <= 0 are never cached.
        group: the process group (default: the world).

    Construction and :meth:`fetch` are collective (see the module docstring). Counters, since
    construction or :meth:`reset_stats` (remote rows only; owned rows are read in place):
    ``hits`` / ``misses`` (rows found in / missing from the cache), ``bytes_fetched`` (bytes of rows
    received from other ranks), ``bytes_saved`` (bytes of rows the cache spared), ``hit_rate``.
    ``cache_fill_bytes`` is what filling the cache cost.
    """

    def __init__(
        self,
        x: Tensor,
        starts: Tensor | Sequence[int],
        *,
        cache_mb: float = 0.0,
        hotness: Tensor | None = None,
        group=None,
    ):
        self.rank, self.world_size = _group_info(group)
        self.group = group
        self.starts = check_starts(starts, self.world_size)
        lo, hi = int(self.starts[self.rank]), int(self.starts[self.rank + 1])
        if not isinstance(x, Tensor) or x.dim() < 1 or x.shape[0] != hi - lo:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"FeatureFetcher: rank {self.rank} owns {hi - lo} nodes, so x must be [{hi - lo}, *]; got {got}"
            )
        if not cache_mb >= 0:
            raise ValueError(f"FeatureFetcher: cache_mb must be >= 0, got {cache_mb}")
        n = int(self.starts[-1])
        if cache_mb > 0 and (not isinstance(hotness, Tensor) or hotness.shape != (n,)):
            raise ValueError(
                f"FeatureFetcher: a cache needs hotness [N] = [{n}] (in_degree_hotness or access_counts), "
                f"got {None if hotness is None else tuple(hotness.shape)}"
            )
        self.x = x
        self.node_start = lo
        self._starts_dev = self.starts.to(x.device)
        self.row_bytes = x[0:1].numel() * x.element_size() if x.shape[0] else _row_bytes(x)
        self.reset_stats()

        capacity = int(cache_mb * 2**20 // self.row_bytes) if self.row_bytes else 0
        wanted = x.new_zeros(0, dtype=torch.long)
        if capacity > 0:
            score = hotness.to(torch.float64).clone().cpu()
            score[lo:hi] = float("-inf")  # owned rows are never cached
            k = min(capacity, int((score > 0).sum()))
            top = torch.topk(score, k).indices if k else wanted.cpu()
            wanted = torch.sort(top).values.to(x.device)  # sorted: searched with searchsorted
        self.cache_ids = wanted  # (C,) sorted global ids
        fill = self._fetch_remote(wanted)  # collective even when empty
        self.cache_rows = fill  # (C, *)
        self.cache_fill_bytes = self.bytes_fetched
        self.reset_stats()

    @property
    def cache_size(self) -> int:
        return int(self.cache_ids.numel())

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def reset_stats(self) -> None:
        self.hits = self.misses = 0
        self.bytes_fetched = self.bytes_saved = 0

    def fetch(self, node_ids: Tensor) -> Tensor:
        """``[n, *]`` rows of the global ids ``node_ids [n]`` (collective)."""
        if not isinstance(node_ids, Tensor) or node_ids.dim() != 1:
            got = getattr(node_ids, "shape", node_ids)
            raise ValueError(f"FeatureFetcher.fetch: node_ids must be a 1-D tensor, got {got!r}")
        ids = node_ids.to(device=self.x.device, dtype=torch.long)
        n_all = int(self.starts[-1])
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n_all):
            raise ValueError(f"FeatureFetcher.fetch: node ids must lie in [0, {n_all})")
        out = self.x.new_empty((ids.numel(),) + tuple(self.x.shape[1:]))  # (n, *)
        local = ids - self.node_start
        own = (local >= 0) & (local < self.x.shape[0])
        at = own.nonzero().view(-1)
        out[at] = self.x.index_select(0, local.index_select(0, at))
        remote = (~own).nonzero().view(-1)
        rid = ids.index_select(0, remote)
        if self.cache_size:
            pos = torch.searchsorted(self.cache_ids, rid).clamp(max=self.cache_size - 1)
            hit = self.cache_ids.index_select(0, pos) == rid
            out[remote[hit]] = self.cache_rows.index_select(0, pos[hit])
            remote, rid = remote[~hit], rid[~hit]
            n_hit = int(hit.sum())
            self.hits += n_hit
            self.bytes_saved += n_hit * self.row_bytes
        self.misses += int(rid.numel())
        out[remote] = self._fetch_remote(rid)
        return out

    def _fetch_remote(self, ids: Tensor) -> Tensor:
        """Rows of ``ids`` (none owned here) from their owners: one request and one reply round."""
        routed = _Routed(ids, self._starts_dev, self.world_size)
        asked, asked_counts = exchange_ids(routed.grouped, routed.counts, self.group)
        rows = self.x.index_select(0, asked - self.node_start)  # (A, *)
        got = all_to_all_rows(rows, asked_counts, routed.counts.tolist(), self.group)  # (n, *), grouped
        self.bytes_fetched += got.shape[0] * self.row_bytes
        out = torch.empty_like(got)
        out[routed.order] = got
        return out

    def __repr__(self) -> str:
        return (
            f"FeatureFetcher(rank={self.rank}/{self.world_size}, owned={self.x.shape[0]}, "
            f"cache_size={self.cache_size}, hit_rate={self.hit_rate:.3f})"
        )


class EdgeFeatureFetcher:
    """``e[eid]`` for global edge ids, each row read where the edge is stored: the owner of its target.

    Args:
        e: ``[E_owned, *]`` feature rows of the edges stored here (the in-edges of this rank's nodes).
        eid: ``[E_owned]`` their global edge ids (distinct).
        starts: ``[world_size + 1]`` the parts' node id ranges.
        group: the process group (default: the world).

    :meth:`fetch` is collective (every rank calls it, also with no edge). ``bytes_fetched`` counts
    the bytes of rows received from other ranks since :meth:`reset_stats`.
    """

    def __init__(self, e: Tensor, eid: Tensor, starts: Tensor | Sequence[int], *, group=None):
        self.rank, self.world_size = _group_info(group)
        self.group = group
        self.starts = check_starts(starts, self.world_size)
        if not isinstance(e, Tensor) or not isinstance(eid, Tensor) or eid.dim() != 1 or e.shape[:1] != eid.shape:
            raise ValueError(f"EdgeFeatureFetcher: e must be [E, *] and eid [E] for the same E, got "
                             f"{tuple(getattr(e, 'shape', ()))} and {tuple(getattr(eid, 'shape', ()))}")
        eid = eid.to(device=e.device, dtype=torch.long)
        self.e = e
        self._order = torch.argsort(eid)
        self._sorted = eid.index_select(0, self._order)  # (E_owned,) searched with searchsorted
        self._starts_dev = self.starts.to(e.device)
        self.row_bytes = _row_bytes(e)
        self.reset_stats()

    def reset_stats(self) -> None:
        self.bytes_fetched = 0

    def fetch(self, eid: Tensor, dst: Tensor) -> Tensor:
        """``[m, *]`` rows of the edges ``eid [m]`` whose targets are the global nodes ``dst [m]``."""
        eid = eid.to(device=self.e.device, dtype=torch.long)
        owner = owner_of(dst.to(device=self.e.device, dtype=torch.long), self._starts_dev)
        order = torch.argsort(owner, stable=True)
        counts = torch.bincount(owner, minlength=self.world_size)
        asked, asked_counts = exchange_ids(eid.index_select(0, order), counts, self.group)
        pos = torch.searchsorted(self._sorted, asked).clamp(max=max(self._sorted.numel() - 1, 0))
        if asked.numel() and (self._sorted.numel() == 0 or bool((self._sorted.index_select(0, pos) != asked).any())):
            raise ValueError(f"EdgeFeatureFetcher: rank {self.rank} was asked for edges it does not store "
                             "(an edge's target must be owned by the rank that stores the edge)")
        rows = self.e.index_select(0, self._order.index_select(0, pos))  # (A, *)
        got = all_to_all_rows(rows, asked_counts, counts.tolist(), self.group)  # (m, *), grouped by owner
        self.bytes_fetched += (got.shape[0] - int(counts[self.rank])) * self.row_bytes
        out = torch.empty_like(got)
        out[order] = got
        return out

    def __repr__(self) -> str:
        return f"EdgeFeatureFetcher(rank={self.rank}/{self.world_size}, stored={self.e.shape[0]})"


def _row_bytes(x: Tensor) -> int:
    width = 1
    for d in x.shape[1:]:
        width *= d
    return width * x.element_size()


def in_degree_hotness(topo: Topology, starts: Tensor | Sequence[int], *, group=None) -> Tensor:
    """``[N]`` in-degree of every global node, gathered from the owners (collective)."""
    rank, world = _group_info(group)
    starts = check_starts(starts, world)
    sizes = (starts[1:] - starts[:-1]).tolist()
    deg = topo.in_degree()
    width = max(max(sizes), 1)
    padded = deg.new_zeros(width)
    padded[: deg.numel()] = deg
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded, group=group)
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


def access_counts(node_ids: Iterable[Tensor], num_nodes: int) -> Tensor:
    """``[N]`` how often each node appears in ``node_ids`` (e.g. the ``node_ids`` of the subgraphs
    of a sampling pre-pass): a cache hotness measured on the workload itself. Local, no collective."""
    counts = torch.zeros(num_nodes, dtype=torch.long)
    for ids in node_ids:
        counts += torch.bincount(ids.cpu().to(torch.long), minlength=num_nodes)
    return counts
