"""Vectorised fan-out neighbour sampling (single process) and the sampled-subgraph contract.

Three pieces, each usable alone:

* :class:`Topology`: the in-neighbour CSR of the nodes one process owns, in global ids.
* :func:`sample_neighbors`: one hop: ``fanout`` in-neighbours of each given node, drawn with
  counter-based random numbers keyed by ``(seed, hop, node id, draw index)`` (see
  :mod:`distgnn.sampling.rng`), so the sample of a node depends on nothing else.
* :func:`sample_subgraph`: several hops through any ``sample_fn`` (this process's
  :func:`sample_neighbors`, or :class:`~distgnn.sampling.distributed.DistributedSampleFn`),
  relabelled into a :class:`SampledSubgraph`, an ordinary graph every layer runs on.

:class:`NeighborSampler` bundles them for one process holding the whole graph.

Sampling rule for a node of in-degree ``d`` and fan-out ``k``:

=====================  ==========================================================================
``k == -1``            all ``d`` in-edges
without replacement    all in-edges when ``d <= k``; otherwise ``k`` distinct ones, every ``k``-subset
                       equally likely (Floyd's algorithm, vectorised over nodes, one step per draw)
with replacement       ``k`` independent uniform draws among the ``d`` in-edges (none when ``d == 0``)
=====================  ==========================================================================

The in-edges of a node are kept in edge-id order, so the sample depends on the set of edges and
their ids, not on the order the edge list came in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import torch
from torch import Tensor

from .rng import draw_bits, node_keys, scale_bound, uniform_below

__all__ = [
    "Topology",
    "sample_neighbors",
    "SampleFn",
    "SampledSubgraph",
    "sample_subgraph",
    "IdMap",
    "NeighborSampler",
    "check_fanouts",
]


# ------------------------------------------------------------------------------------------------
# Topology
@dataclass(frozen=True)
class Topology:
    """In-neighbour CSR of the owned nodes ``[node_start, node_start + num_owned)``, global ids.

    Fields:
        node_start: first owned global id; num_owned: ``n``.
        indptr ``[n + 1]`` int64: in-edges of owned node ``node_start + i`` are
            ``indptr[i]:indptr[i + 1]``.
        edges ``[nnz, 2]`` int64: row ``e`` is (global source id, global edge id) of in-edge ``e``
            (sorted by edge id within a node). One row per edge, so a sampled edge costs one
            random memory access, not two. The columns are :attr:`indices` and :attr:`eids`.

    The whole graph is ``node_start = 0``, ``num_owned = N``. Build one with
    :meth:`from_edge_index`.
    """

    node_start: int
    num_owned: int
    indptr: Tensor
    edges: Tensor

    @classmethod
    def from_edge_index(
        cls, edge_index: Tensor, node_start: int = 0, num_owned: int | None = None, eid: Tensor | None = None
    ) -> "Topology":
        """CSR of ``edge_index [2, E]`` (global ids; every target in the owned range).

        ``num_owned`` defaults to ``max(target) + 1 - node_start``; ``eid [E]`` (global edge ids)
        to ``arange(E)``.
        """
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
            got = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index).__name__
            raise ValueError(f"Topology: edge_index must be a tensor [2, E], got {got}")
        if edge_index.dtype != torch.long:
            raise ValueError(f"Topology: edge_index must be int64, got {edge_index.dtype}")
        num_edges = int(edge_index.shape[1])
        src, dst = edge_index[0], edge_index[1]
        if node_start < 0:
            raise ValueError(f"Topology: node_start must be >= 0, got {node_start}")
        if num_owned is None:
            num_owned = int(dst.max()) + 1 - node_start if num_edges else 0
        if num_owned < 0:
            raise ValueError(f"Topology: num_owned must be >= 0, got {num_owned}")
        if num_edges:
            lo, hi = int(dst.min()), int(dst.max())
            if lo < node_start or hi >= node_start + num_owned:
                bad = lo if lo < node_start else hi
                raise ValueError(
                    f"Topology: target {bad} is outside the owned range [{node_start}, {node_start + num_owned})"
                )
            if int(src.min()) < 0:
                raise ValueError(f"Topology: edge_index contains a negative source id ({int(src.min())})")
        if eid is None:
            eid = torch.arange(num_edges, dtype=torch.long, device=edge_index.device)
        elif not isinstance(eid, Tensor) or eid.shape != (num_edges,):
            got = tuple(eid.shape) if isinstance(eid, Tensor) else type(eid).__name__
            raise ValueError(f"Topology: eid must be a tensor [E] = [{num_edges}], got {got}")
        eid = eid.to(torch.long)
        # order by (target, edge id): two stable sorts, edge id first
        by_eid = torch.argsort(eid, stable=True)
        order = by_eid[torch.argsort(dst[by_eid], stable=True)]
        counts = torch.bincount(dst - node_start, minlength=num_owned) if num_edges else dst.new_zeros(num_owned)
        indptr = torch.zeros(num_owned + 1, dtype=torch.long, device=edge_index.device)
        torch.cumsum(counts, 0, out=indptr[1:])
        edges = torch.stack([src.index_select(0, order), eid.index_select(0, order)], 1)  # (E, 2)
        return cls(int(node_start), int(num_owned), indptr, edges)

    @property
    def indices(self) -> Tensor:
        """``[nnz]`` int64 global source id of each in-edge (a column of :attr:`edges`)."""
        return self.edges[:, 0]

    @property
    def eids(self) -> Tensor:
        """``[nnz]`` int64 global edge id of each in-edge (a column of :attr:`edges`)."""
        return self.edges[:, 1]

    @property
    def num_edges(self) -> int:
        return int(self.edges.shape[0])

    def gather(self, pos: Tensor) -> Tensor:
        """``[M, 2]`` rows ``pos [M]`` of :attr:`edges`. A row is gathered as one 16-byte
        element (the int64 pair reinterpreted as one complex128, bits unchanged): torch's 1-D
        gather overlaps the cache misses of random rows far better than its 2-D one."""
        if self.edges.shape[0] == 0:
            return self.edges.index_select(0, pos)
        return self.edges.view(torch.complex128).view(-1).index_select(0, pos).view(torch.long).view(-1, 2)

    def in_degree(self) -> Tensor:
        """``[n]`` int64 in-degree of every owned node."""
        return self.indptr[1:] - self.indptr[:-1]

    def owns(self, nodes: Tensor) -> bool:
        """Whether every id of ``nodes`` lies in the owned range."""
        if nodes.numel() == 0:
            return True
        lo, hi = torch.stack(torch.aminmax(nodes)).tolist()
        return lo >= self.node_start and hi < self.node_start + self.num_owned

    def __repr__(self) -> str:
        return f"Topology(node_start={self.node_start}, num_owned={self.num_owned}, num_edges={self.num_edges})"


def check_fanout(fanout, name: str = "fanout") -> int:
    if isinstance(fanout, bool) or not isinstance(fanout, int) or (fanout < 1 and fanout != -1):
        raise ValueError(f"{name} must be an int >= 1 or -1 (all neighbours), got {fanout!r}")
    return fanout


def check_fanouts(fanouts: Sequence[int]) -> list[int]:
    """Validate a list of per-hop fan-outs (ints >= 1, or -1 for all neighbours)."""
    if isinstance(fanouts, (str, bytes)) or not isinstance(fanouts, Sequence) or len(fanouts) == 0:
        raise ValueError(f"fanouts must be a non-empty list of ints (>= 1 or -1), got {fanouts!r}")
    return [check_fanout(f, f"fanouts[{i}]") for i, f in enumerate(fanouts)]


# ------------------------------------------------------------------------------------------------
# One hop
def sample_neighbors(
    topo: Topology, nodes: Tensor, fanout: int, *, replace: bool = False, seed: int = 0, hop: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """Sample ``fanout`` in-neighbours of each node (see the module docstring for the rule).

    Args:
        topo: the topology owning every node of ``nodes``.
        nodes: ``[n]`` int64 distinct global ids (not checked for distinctness: a repeated node is
            sampled twice, identically).
        fanout: ``k >= 1``, or ``-1`` for all in-neighbours.
        replace: draw with replacement.
        seed, hop: the random stream; the same ``(seed, hop, node)`` always gives the same sample.

    Returns:
        ``(src, dst, eid)``, each ``[M]`` int64: the sampled edges ``src -> dst`` in global ids and
        their global edge ids, grouped by node in the order of ``nodes`` (``dst`` is the node).
    """
    check_fanout(fanout)
    if not isinstance(nodes, Tensor) or nodes.dim() != 1:
        raise ValueError(f"sample_neighbors: nodes must be a 1-D tensor, got {getattr(nodes, 'shape', nodes)!r}")
    nodes = nodes.to(torch.long)
    if not topo.owns(nodes):
        lo, hi = torch.aminmax(nodes)
        raise ValueError(
            f"sample_neighbors: nodes must lie in the owned range [{topo.node_start}, "
            f"{topo.node_start + topo.num_owned}), got ids in [{int(lo)}, {int(hi)}]"
        )
    pos, dst = sample_positions(topo, nodes, fanout, replace, seed, hop)
    src, eid = topo.gather(pos).unbind(1)
    return src, dst, eid


def sample_positions(
    topo: Topology, nodes: Tensor, k: int, replace: bool, seed: int, hop: int
) -> tuple[Tensor, Tensor]:
    """The work of :func:`sample_neighbors` without its checks: ``(pos, dst)``, each ``[M]`` int64,
    the CSR positions (rows of ``topo.edges``) of the sampled in-edges and their targets.

    ``nodes`` must be int64 ids owned by ``topo`` and ``k`` a valid fan-out (checked by the callers,
    once per call rather than once per hop).
    """
    local = nodes - topo.node_start if topo.node_start else nodes
    start = topo.indptr.index_select(0, local)  # (n,)
    deg = topo.indptr[1:].index_select(0, local).sub_(start)  # (n,)
    if k == -1:
        total = int(deg.sum())
        offset = torch.cumsum(deg, 0).sub_(deg)  # (n,) first output slot of each node
        pos = torch.arange(total, dtype=torch.long, device=nodes.device)
        pos += start.sub_(offset).repeat_interleave(deg, output_size=total)  # (M,) CSR positions
        return pos, nodes.repeat_interleave(deg, output_size=total)
    n = nodes.numel()
    if n == 0:
        return nodes, nodes
    lo, hi = torch.stack(torch.aminmax(deg)).tolist()  # one sync for both
    if replace:
        if lo == 0:
            keep = deg > 0
            nodes, start, deg = nodes[keep], start[keep], deg[keep]
        bits = draw_bits(node_keys(nodes, seed, hop), k)  # (k, n)
        rel = uniform_below(bits, scale_bound(deg).view(1, -1))  # (k, n) in [0, deg)
        pos = rel.add_(start.view(1, -1)).t().reshape(-1)  # (n k,), node-major
        return pos, nodes.view(-1, 1).expand(-1, k).reshape(-1)

    # without replacement: draw i of node v is position i (all neighbours) unless deg > k, where
    # Floyd's algorithm picks k distinct positions of [0, deg)
    slot = torch.arange(k, dtype=torch.long, device=nodes.device)  # (k,)
    if hi <= k:  # no node has more than k in-edges: take them all
        pos = start.view(-1, 1) + slot.view(1, -1)  # (n, k)
    else:
        if lo > k:
            rel = _floyd(node_keys(nodes, seed, hop), deg, k)  # (k, n)
        else:  # Floyd on every node (cheaper than picking them out), kept where deg > k
            rel = _floyd(node_keys(nodes, seed, hop), deg.clamp(min=k + 1), k)
            rel = torch.where(deg.view(1, -1) > k, rel, slot.view(-1, 1))  # (k, n)
        pos = rel.add_(start.view(1, -1)).t()  # (n, k)
    if lo >= k:
        return pos.reshape(-1), nodes.view(-1, 1).expand(-1, k).reshape(-1)
    pos = pos.masked_select(slot.view(1, -1) < deg.view(-1, 1))  # (M,), node-major
    return pos, nodes.repeat_interleave(deg.clamp_(max=k), output_size=pos.numel())


def _floyd(keys: Tensor, deg: Tensor, k: int) -> Tensor:
    """``[k, n]`` distinct positions in ``[0, deg_i)`` per node (column), every k-subset equally
    likely (``deg > k`` on every node).

    Floyd's algorithm: for ``i = 0, ..., k-1`` let ``j_i = deg - k + i``, draw ``t_i`` uniform in
    ``[0, j_i]`` and take ``t_i`` unless it was taken before, else ``j_i``. Vectorised over nodes,
    one step per draw; draw-major layout so every step reads and writes contiguous rows.
    """
    t, j = _floyd_draws(keys, deg, k)  # (k, n) each
    chosen = t.clone()  # (k, n); row 0 is final, row i is replaced at step i
    rows, t_rows, j_rows = chosen.unbind(0), t.unbind(0), j.unbind(0)
    for i in range(1, k):
        taken = (chosen.narrow(0, 0, i) == t_rows[i]).amax(0)  # (n,) bool; amax is faster than any here
        torch.where(taken, j_rows[i], t_rows[i], out=rows[i])
    return chosen


def _floyd_draws(keys: Tensor, deg: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Floyd's ``t [k, n]`` (``t[i]`` uniform in ``[0, j[i]]``) and ``j [k, n] = deg - k + i``."""
    bits = draw_bits(keys, k)  # (k, n)
    j = (deg - k).view(1, -1) + torch.arange(k, dtype=torch.long, device=keys.device).view(-1, 1)  # (k, n)
    t = uniform_below(bits, scale_bound(j + 1))  # (k, n)
    return t, j


# ------------------------------------------------------------------------------------------------
# Several hops
class SampleFn(Protocol):
    """One hop of sampling: ``(nodes [n], fanout, *, hop, replace, seed) -> (src, dst, eid)``.

    ``nodes`` are distinct global ids; the result follows :func:`sample_neighbors`. A distributed
    implementation is collective: every rank calls it once per hop, empty ``nodes`` included.
    """

    def __call__(
        self, nodes: Tensor, fanout: int, *, hop: int, replace: bool, seed: int
    ) -> tuple[Tensor, Tensor, Tensor]: ...


@dataclass
class SampledSubgraph:
    """A sampled multi-hop neighbourhood, an ordinary graph over ``node_ids`` (the sampled-subgraph
    contract).

    Fields:
        node_ids ``[n_sub]`` int64: global id of every subgraph node: the seeds first, in the given
            order, then the nodes discovered at hop 0, hop 1, ... (each hop in order of first
            appearance among that hop's sampled sources).
        edge_index ``[2, M]`` int64: local ids into ``node_ids``, ``src -> dst`` where ``dst`` is the
            node whose in-neighbours were sampled; hop 0's edges first, then hop 1's, ...
        eid ``[M]`` int64: global edge id of every sampled edge.
        num_seeds: the seeds are ``node_ids[:num_seeds]``; the loss is taken on those rows.
        num_sampled_nodes: ``[num_hops + 1]`` nodes added by each step (the seeds, then each hop).
        num_sampled_edges: ``[num_hops]`` edges sampled at each hop.

    Use: ``out = model(x[node_ids], edge_index)``, loss on ``out[:num_seeds]``.
    """

    node_ids: Tensor
    edge_index: Tensor
    eid: Tensor
    num_seeds: int
    num_sampled_nodes: list[int] = field(default_factory=list)
    num_sampled_edges: list[int] = field(default_factory=list)

    @property
    def num_nodes(self) -> int:
        return int(self.node_ids.numel())

    @property
    def num_edges(self) -> int:
        return int(self.eid.numel())

    def __repr__(self) -> str:
        return (
            f"SampledSubgraph(num_nodes={self.num_nodes}, num_edges={self.num_edges}, num_seeds={self.num_seeds}, "
            f"num_sampled_nodes={self.num_sampled_nodes})"
        )


class IdMap:
    """Global -> local id map for relabelling: a reusable table ``[num_nodes]`` (-1 = absent).

    Adding ids costs gathers and scatters only (no sort), and no memory but the table. Holds state
    during one :func:`sample_subgraph` call, cleared at its end: use one map per thread.
    """

    def __init__(self, num_nodes: int, device: torch.device | str = "cpu"):
        if num_nodes < 0:
            raise ValueError(f"IdMap: num_nodes must be >= 0, got {num_nodes}")
        self.num_nodes = int(num_nodes)
        self.table = torch.full((self.num_nodes,), -1, dtype=torch.long, device=device)
        self.size = 0
        self._ids: list[Tensor] = []

    def add_unique(self, ids: Tensor) -> None:
        """Append ids known to be distinct and absent."""
        n = int(ids.numel())
        self.table.index_copy_(0, ids, torch.arange(self.size, self.size + n, device=ids.device))
        self.size += n
        self._ids.append(ids)

    def add(self, ids: Tensor) -> Tensor:
        """Append the absent ids of ``ids`` in order of first appearance; return them."""
        fresh = ids.masked_select(self.table.index_select(0, ids) < 0)  # (f,) may repeat
        if fresh.numel() == 0:
            return fresh
        # mark each fresh id's entry with (its first position in `fresh`) - 2**62, below every
        # value the table otherwise holds; the first appearances then find their own mark
        mark = torch.arange(-_BIG, fresh.numel() - _BIG, dtype=torch.long, device=ids.device)  # (f,)
        self.table.scatter_reduce_(0, fresh, mark, "amin")
        new = fresh.masked_select(self.table.index_select(0, fresh) == mark)  # (u,), in order
        self.add_unique(new)  # overwrites every mark: each fresh id is one of `new`
        return new

    def lookup(self, ids: Tensor) -> Tensor:
        """Local ids of ``ids`` (all present)."""
        return self.table.index_select(0, ids)

    def node_ids(self) -> Tensor:
        return torch.cat(self._ids) if self._ids else self.table.new_zeros(0)

    def clear(self) -> None:
        if self._ids:
            self.table.index_fill_(0, torch.cat(self._ids), -1)
        self.size = 0
        self._ids = []


_BIG = 1 << 62


def sample_subgraph(
    sample_fn: SampleFn,
    seeds: Tensor,
    fanouts: Sequence[int],
    *,
    replace: bool = False,
    seed: int = 0,
    num_nodes: int | None = None,
    id_map: IdMap | None = None,
) -> SampledSubgraph:
    """Sample ``len(fanouts)`` hops around ``seeds`` and relabel them into a :class:`SampledSubgraph`.

    Hop ``h`` samples ``fanouts[h]`` in-neighbours of its frontier (hop 0: the seeds; hop ``h + 1``:
    the nodes first discovered at hop ``h``) through ``sample_fn(frontier, fanouts[h], hop=h,
    replace=replace, seed=seed)``, which is called once per hop even when the frontier is empty
    (distributed sampling is collective).

    Args:
        seeds: ``[B]`` distinct global ids.
        num_nodes: the number of nodes of the graph; ids are checked against it and, when no
            ``id_map`` is given, an :class:`IdMap` of that size is made for this call.
        id_map: a reusable :class:`IdMap` (saves allocating one table per call).
    """
    fanouts = check_fanouts(fanouts)
    return _sample_subgraph(sample_fn, _check_seeds(seeds), fanouts, replace, seed, num_nodes, id_map)


def _check_seeds(seeds) -> Tensor:
    if not isinstance(seeds, Tensor) or seeds.dim() != 1:
        raise ValueError(f"seeds must be a 1-D tensor of node ids, got {getattr(seeds, 'shape', seeds)!r}")
    if seeds.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"seeds must be an integer tensor (int64), got {seeds.dtype}")
    return seeds.to(torch.long)


def _sample_subgraph(
    sample_fn: SampleFn,
    seeds: Tensor,
    fanouts: list[int],
    replace: bool,
    seed: int,
    num_nodes: int | None,
    id_map: IdMap | None,
) -> SampledSubgraph:
    """:func:`sample_subgraph` after the checks of its fan-outs and of the type of ``seeds``."""
    if id_map is None:
        if num_nodes is None:
            raise ValueError("sample_subgraph needs num_nodes or an id_map")
        id_map = IdMap(num_nodes, seeds.device)
    n = id_map.num_nodes if num_nodes is None else num_nodes
    num_seeds = int(seeds.numel())
    if num_seeds:
        lo, hi = torch.stack(torch.aminmax(seeds)).tolist()
        if lo < 0 or hi >= n:
            raise ValueError(f"seeds must be node ids in [0, {n}), got ids in [{lo}, {hi}]")
    id_map.clear()
    try:
        id_map.add_unique(seeds)
        # distinct iff every seed finds its own slot (a repeated id keeps one of its slots)
        if num_seeds and not bool(id_map.lookup(seeds).eq_(torch.arange(num_seeds, device=seeds.device)).all()):
            raise ValueError("seeds must be distinct (found a repeated node id)")
        frontier = seeds
        hops = []
        num_sampled_nodes, num_sampled_edges = [num_seeds], []
        for hop, k in enumerate(fanouts):
            src, dst, eid = sample_fn(frontier, k, hop=hop, replace=replace, seed=seed)
            frontier = id_map.add(src)
            hops.append((id_map.lookup(src), id_map.lookup(dst), eid))
            num_sampled_nodes.append(int(frontier.numel()))
            num_sampled_edges.append(int(eid.numel()))
        node_ids = id_map.node_ids()
    finally:
        id_map.clear()
    edge_index = torch.stack([torch.cat([h[0] for h in hops]), torch.cat([h[1] for h in hops])])
    eid = torch.cat([h[2] for h in hops])
    return SampledSubgraph(node_ids, edge_index, eid, num_seeds, num_sampled_nodes, num_sampled_edges)


# ------------------------------------------------------------------------------------------------
# Convenience: one process, whole graph
class NeighborSampler:
    """Multi-hop fan-out sampling of a whole graph in one process.

    Args:
        edge_index: ``[2, E]`` int64 global ids (``src -> dst``).
        num_nodes: ``N``.
        fanouts: per-hop fan-outs, ints ``>= 1`` or ``-1`` (all), e.g. ``[15, 10]``.
        replace: sample with replacement.
        seed: default random stream; :meth:`sample` takes another one per call (e.g. per epoch).
        eid: ``[E]`` global edge ids (default ``arange(E)``).

    ``sample(seeds)`` returns a :class:`SampledSubgraph`. Not thread-safe (one id table).
    """

    def __init__(
        self,
        edge_index: Tensor,
        num_nodes: int,
        fanouts: Sequence[int],
        replace: bool = False,
        seed: int = 0,
        eid: Tensor | None = None,
    ):
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 0:
            raise ValueError(f"NeighborSampler: num_nodes must be an int >= 0, got {num_nodes!r}")
        if isinstance(edge_index, Tensor) and edge_index.dim() == 2 and edge_index.numel():
            hi = int(edge_index.max())
            if hi >= num_nodes:
                raise ValueError(f"NeighborSampler: edge_index refers to node {hi} but num_nodes is {num_nodes}")
        if not isinstance(seed, int):
            raise ValueError(f"NeighborSampler: seed must be an int, got {seed!r}")
        self.fanouts = check_fanouts(fanouts)
        self.replace = bool(replace)
        self.seed = seed
        self.num_nodes = num_nodes
        self.topo = Topology.from_edge_index(edge_index, 0, num_nodes, eid)
        self._id_map = IdMap(num_nodes, edge_index.device)

    def sample_fn(self, nodes: Tensor, fanout: int, *, hop: int, replace: bool, seed: int):
        """One hop on this process's topology (a :class:`SampleFn`)."""
        return sample_neighbors(self.topo, nodes, fanout, replace=replace, seed=seed, hop=hop)

    def _hop(self, nodes: Tensor, fanout: int, *, hop: int, replace: bool, seed: int):
        """:meth:`sample_fn` without the checks: the seeds are checked once per :meth:`sample`,
        every later frontier is made of source ids of this topology, valid by construction."""
        pos, dst = sample_positions(self.topo, nodes, fanout, replace, seed, hop)
        src, eid = self.topo.gather(pos).unbind(1)  # (M,) each, strided
        return src, dst, eid

    def sample(self, seeds: Tensor, seed: int | None = None) -> SampledSubgraph:
        """The :class:`SampledSubgraph` around ``seeds [B]`` (distinct ids), drawn from the stream
        ``seed`` (default: the sampler's)."""
        seed = self.seed if seed is None else seed
        return _sample_subgraph(
            self._hop, _check_seeds(seeds), self.fanouts, self.replace, seed, self.num_nodes, self._id_map
        )

    def __repr__(self) -> str:
        return (
            f"NeighborSampler(num_nodes={self.num_nodes}, num_edges={self.topo.num_edges}, "
            f"fanouts={self.fanouts}, replace={self.replace}, seed={self.seed})"
        )
