"""The graph objects layers accept (contract 1).

A layer computes rows for the nodes it *owns* and reads neighbour rows only through the
message-passing core, which asks the graph for them. Every graph answers the same small set of
questions:

==========================  ===========================================================================
member                      meaning
==========================  ===========================================================================
``edge_index [2, E]``       local edges ``src -> dst``; ``dst < num_nodes``, ``src < num_src_nodes``
``num_nodes``               ``N``: owned rows, the rows a layer computes
``num_src_nodes``           ``N_src``: owned rows first, then halo rows (rows owned elsewhere)
``gather_src(x)``           ``x [N, *] -> [N_src, *]``: owned rows followed by the halo rows
``scatter_src(y)``          ``y [N_src, *] -> [N, *]``: adjoint of ``gather_src``; halo rows are summed
                            into their owners (partial sums over outgoing edges)
``all_reduce(t)``           sum of ``t`` over every part (identity on a whole graph)
``gather_reverse(e)``       ``e [E, *] -> [E, *]``: for each edge ``j -> i`` the row of its reverse edge
                            ``i -> j`` (the first one in edge order), zeros when there is none; on a
                            partition the reverse edge may be stored by another part
``in_degree(w)``            ``[N]`` in-degree (or weighted) in the WHOLE graph
``out_degree(w)``           ``[N]`` out-degree (or weighted) in the WHOLE graph
``csr()``                   cached CSR view (both orientations) for sparse products
``fetch_rows(h, ids)``      ``h [N, *], ids [M] -> [M, *]``: rows of ANY nodes by global id, asked of
                            their owners; the gradient goes back to the owners (collective on a
                            partition: every part calls it, possibly with no id)
==========================  ===========================================================================

:class:`Graph` is a whole graph: ``gather_src`` returns ``x`` itself. :class:`PartitionedGraph`
is one part of a partitioned graph: its ``gather_src`` appends halo rows obtained from a
:class:`HaloExchange` backend. :func:`split_graph` builds in-process parts whose exchange copies
halo rows by index between threads that run all parts in lockstep (:func:`run_parts`); the
distributed runtime plugs a collective-based exchange into the same class.

Layers accept a plain ``edge_index`` too: :func:`as_graph` wraps it in a :class:`Graph` and keeps
the wrapper (and its cached CSR) for as long as that tensor lives unmodified.
"""
from __future__ import annotations

import threading
import weakref
from typing import Callable, Protocol, Sequence, TypeVar

import torch
from torch import Tensor

__all__ = [
    "Graph",
    "PartitionedGraph",
    "HaloExchange",
    "LocalExchange",
    "as_graph",
    "split_graph",
    "run_parts",
    "GraphError",
]

T = TypeVar("T")


class GraphError(ValueError):
    """Raised for a malformed graph argument; the message says what was expected."""


def check_edge_index(edge_index: Tensor, num_nodes: int | None = None, name: str = "edge_index") -> int:
    """Validate ``edge_index [2, E]`` (int64, ids in range) and return the number of nodes."""
    if not isinstance(edge_index, Tensor):
        raise GraphError(f"{name} must be a LongTensor [2, E], got {type(edge_index).__name__}")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise GraphError(f"{name} must have shape [2, E], got {tuple(edge_index.shape)}")
    if edge_index.dtype != torch.long:
        raise GraphError(f"{name} must be int64 (torch.long), got {edge_index.dtype}")
    if edge_index.numel() == 0:
        return 0 if num_nodes is None else num_nodes
    lo, hi = int(edge_index.min()), int(edge_index.max())
    if lo < 0:
        raise GraphError(f"{name} contains a negative node id ({lo})")
    if num_nodes is None:
        return hi + 1
    if hi >= num_nodes:
        raise GraphError(f"{name} refers to node {hi} but the graph has {num_nodes} nodes")
    return num_nodes


def reverse_edge_ids(edge_index: Tensor, num_nodes: int) -> Tensor:
    """``[E]`` id of the reverse edge ``i -> j`` of every edge ``j -> i`` (its first occurrence in
    edge order), or -1 when the graph has no such edge. Vectorised: one sort and one search."""
    src, dst = edge_index
    n = max(num_nodes, 1)
    key = src * n + dst
    order = torch.argsort(key, stable=True)  # first occurrence of equal keys comes first
    sorted_key = key[order]
    want = dst * n + src
    pos = torch.searchsorted(sorted_key, want).clamp(max=max(key.numel() - 1, 0))
    found = sorted_key[pos] == want if key.numel() else torch.zeros(0, dtype=torch.bool)
    return torch.where(found, order[pos], torch.full_like(want, -1))


def _take_rows(e: Tensor, idx: Tensor) -> Tensor:
    """``e[idx]`` with zero rows where ``idx == -1``."""
    have = idx >= 0
    rows = e.index_select(0, idx.clamp(min=0))
    return rows * have.view((-1,) + (1,) * (e.dim() - 1)).to(e.dtype)


class Graph:
    """A whole graph: ``edge_index [2, E]`` over ``num_nodes`` nodes (see the module docstring).

    Derived structures (self-loop variants, CSR views, unweighted degrees and normalisations) are
    cached on the object, never on layers; the cache is keyed by name and holds no autograd state.
    """

    is_partitioned = False

    def __init__(self, edge_index: Tensor, num_nodes: int | None = None, *, validate: bool = True):
        if validate:
            num_nodes = check_edge_index(edge_index, num_nodes)
        elif num_nodes is None:
            num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
        self.edge_index = edge_index
        self.num_nodes = int(num_nodes)
        self._cache: dict = {}

    # -- the contract ---------------------------------------------------------------------------
    @property
    def num_src_nodes(self) -> int:
        return self.num_nodes

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def device(self) -> torch.device:
        return self.edge_index.device

    def gather_src(self, x: Tensor) -> Tensor:
        """``x [N, *]`` -> source-side rows ``[N_src, *]`` (``x`` itself on a whole graph)."""
        return x

    def scatter_src(self, y: Tensor) -> Tensor:
        """``y [N_src, *]`` -> ``[N, *]``, the adjoint of :meth:`gather_src`."""
        return y

    def all_reduce(self, t: Tensor) -> Tensor:
        """Sum of ``t`` over all parts of the graph (``t`` itself on a whole graph)."""
        return t

    def gather_reverse(self, e: Tensor) -> Tensor:
        """``e [E, *]`` -> ``[E, *]``: row of the reverse edge of every edge, zeros where none."""
        rev = self.cached("reverse_edges", lambda: reverse_edge_ids(self.edge_index, self.num_nodes))
        return _take_rows(e, rev)

    def fetch_rows(self, h: Tensor, ids: Tensor) -> Tensor:
        """Rows of ``h`` for global node ids: ``h [N, *], ids [M] -> [M, *]``, ``h[ids]`` here.

        On a whole graph node ``i`` is row ``i``; on a :class:`PartitionedGraph` ``h`` holds the owned
        rows only and every id is asked of its owner (see :meth:`PartitionedGraph.fetch_rows`).
        Ids may repeat; the gradient of a repeated row is summed.

        Shapes:
            h: ``[N, *]`` (``N`` = owned rows), ids: ``[M]`` int64 -> ``[M, *]``.
        """
        self._check_fetch(h, ids)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_nodes):
            raise GraphError(f"fetch_rows: ids must be in [0, {self.num_nodes}), got "
                             f"[{int(ids.min())}, {int(ids.max())}]")
        return h.index_select(0, ids)  # (M, *)

    def _check_fetch(self, h: Tensor, ids: Tensor) -> None:
        if h.dim() == 0 or h.shape[0] != self.num_nodes:
            raise GraphError(f"{type(self).__name__}.fetch_rows: h must have one row per owned node "
                             f"([{self.num_nodes}, *]), got {tuple(h.shape)}")
        if not isinstance(ids, Tensor) or ids.dim() != 1 or ids.dtype != torch.long:
            raise GraphError(f"{type(self).__name__}.fetch_rows: ids must be a 1-D int64 tensor of global node ids")

    def in_degree(self, edge_weight: Tensor | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
        """``[N]`` number (or weight sum) of incoming edges of each owned node, whole graph."""
        if edge_weight is None:
            return self.cached(("in_degree", dtype), lambda: self._count(self.edge_index[1], dtype))
        n = edge_weight.new_zeros(self.num_nodes)
        return n.index_add(0, self.edge_index[1], edge_weight)

    def out_degree(self, edge_weight: Tensor | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
        """``[N]`` number (or weight sum) of outgoing edges of each owned node, whole graph."""
        if edge_weight is None:
            return self.cached(
                ("out_degree", dtype),
                lambda: self.scatter_src(self._count(self.edge_index[0], dtype, self.num_src_nodes)),
            )
        partial = edge_weight.new_zeros(self.num_src_nodes).index_add(0, self.edge_index[0], edge_weight)
        return self.scatter_src(partial)

    def csr(self):
        """Cached :class:`distgnn.ops.sparse.CSR` of ``A [N, N_src]`` with ``A[dst, src]``."""
        from .ops.sparse import CSR

        return self.cached(
            "csr",
            lambda: CSR.from_edges(self.edge_index[0], self.edge_index[1], self.num_nodes, self.num_src_nodes),
        )

    # -- helpers --------------------------------------------------------------------------------
    def cached(self, key, build: Callable[[], T]) -> T:
        try:
            return self._cache[key]
        except KeyError:
            value = self._cache[key] = build()
            return value

    def _count(self, index: Tensor, dtype: torch.dtype, n: int | None = None) -> Tensor:
        n = self.num_nodes if n is None else n
        return torch.bincount(index, minlength=n).to(dtype)

    def with_edges(self, edge_index: Tensor) -> "Graph":
        """A graph over the same nodes (and, when partitioned, the same halo) with other edges."""
        return Graph(edge_index, self.num_nodes, validate=False)

    def to(self, device: torch.device | str) -> "Graph":
        return self.with_edges(self.edge_index.to(device))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_nodes={self.num_nodes}, num_edges={self.num_edges})"

    @classmethod
    def from_dense(cls, a: Tensor) -> tuple["Graph", Tensor]:
        """Graph and edge weights ``[E]`` of a dense adjacency ``a [N, N]`` (``a[i, j]``: ``j -> i``)."""
        if a.dim() != 2 or a.shape[0] != a.shape[1]:
            raise GraphError(f"a dense adjacency must be [N, N], got {tuple(a.shape)}")
        dst, src = a.nonzero(as_tuple=True)
        return cls(torch.stack([src, dst]), a.shape[0], validate=False), a[dst, src]


# ------------------------------------------------------------------------------------------------
# Plain edge_index -> Graph, cached per tensor
_AS_GRAPH_CACHE: dict[int, tuple[weakref.ref, int, int, Graph]] = {}
_AS_GRAPH_LOCK = threading.Lock()


def as_graph(a: Tensor | Graph, num_nodes: int | None = None) -> Graph:
    """Return ``a`` if it is a graph; wrap an ``edge_index [2, E]`` in a (cached) :class:`Graph`.

    The wrapper is reused while the same tensor object is alive and unmodified (its version
    counter is checked), so repeated calls with one ``edge_index`` share one CSR view.
    """
    if isinstance(a, Graph):
        if num_nodes is not None and a.num_nodes != num_nodes:
            raise GraphError(f"the graph has {a.num_nodes} (owned) nodes but x has {num_nodes} rows")
        return a
    if not isinstance(a, Tensor):
        raise GraphError(
            f"expected an edge_index LongTensor [2, E] or a distgnn Graph, got {type(a).__name__}"
        )
    key = id(a)
    with _AS_GRAPH_LOCK:
        hit = _AS_GRAPH_CACHE.get(key)
        if hit is not None and hit[0]() is a and hit[1] == a._version and hit[3].num_nodes == (
            num_nodes if num_nodes is not None else hit[3].num_nodes
        ):
            return hit[3]
    g = Graph(a, num_nodes)
    with _AS_GRAPH_LOCK:
        try:
            ref = weakref.ref(a, lambda _, k=key: _AS_GRAPH_CACHE.pop(k, None))
        except TypeError:  # pragma: no cover - tensors support weakrefs
            return g
        _AS_GRAPH_CACHE[key] = (ref, a._version, g.num_nodes, g)
    return g


# ------------------------------------------------------------------------------------------------
# Partitioned graphs
class HaloExchange(Protocol):
    """How one part obtains halo rows and returns partial sums (one object per part).

    ``gather(x [N, *]) -> [N_halo, *]``: rows of the halo nodes, differentiable (the backward sends
    the halo gradients to the owners, which add them). ``scatter(y [N_halo, *]) -> [N, *]``: the
    adjoint: each owner receives and sums the rows other parts hold for its nodes.
    ``all_reduce(t) -> t``: elementwise sum over all parts, differentiable, identical on every part.
    ``gather_reverse(e [E_p, *]) -> [E_p, *]``: rows of the reverse edges (zeros where none),
    wherever they are stored, differentiable.
    ``fetch(h [N, *], ids [M]) -> [M, *]``: rows of any nodes by GLOBAL id, each asked of its owner
    (this part included); the backward returns the gradients to the owners, which add them, and
    is itself differentiable. Collective: every part calls it, with its own (possibly empty) ids.

    Halo rows are ordered by owner part (then by the owner's local id), so each peer's rows form one
    contiguous block: collective backends receive them grouped by sender.
    """

    def gather(self, x: Tensor) -> Tensor: ...

    def gather_reverse(self, e: Tensor) -> Tensor: ...

    def scatter(self, y: Tensor) -> Tensor: ...

    def fetch(self, h: Tensor, ids: Tensor) -> Tensor: ...

    def all_reduce(self, t: Tensor) -> Tensor: ...


class PartitionedGraph(Graph):
    """One part of a partitioned graph.

    Args:
        edge_index: ``[2, E_p]`` local edges: every edge whose target this part owns; targets are
            local owned ids ``[0, N)``, sources local ids in ``[0, N + N_halo)`` (halo after owned).
        num_nodes: ``N``, owned nodes.
        num_halo: ``N_halo``, halo nodes (sources owned by other parts).
        exchange: the :class:`HaloExchange` backend of this part.
        node_ids: ``[N]`` global ids of the owned nodes (optional; for splitting and gathering data).
        halo_ids: ``[N_halo]`` global ids of the halo nodes (optional).
        edge_ids: ``[E_p]`` global ids of the local edges (optional).
        part: this part's index; num_parts: the number of parts.
    """

    is_partitioned = True

    def __init__(
        self,
        edge_index: Tensor,
        num_nodes: int,
        num_halo: int,
        exchange: HaloExchange,
        *,
        node_ids: Tensor | None = None,
        halo_ids: Tensor | None = None,
        edge_ids: Tensor | None = None,
        part: int = 0,
        num_parts: int = 1,
        validate: bool = True,
    ):
        if validate and edge_index.numel():
            check_edge_index(edge_index[:1], num_nodes + num_halo, "edge_index sources")
            check_edge_index(edge_index[1:], num_nodes, "edge_index targets")
        super().__init__(edge_index, num_nodes, validate=False)
        self.num_halo = int(num_halo)
        self.exchange = exchange
        self.node_ids = node_ids
        self.halo_ids = halo_ids
        self.edge_ids = edge_ids
        self.part = part
        self.num_parts = num_parts
        self.derived = False  # True for graphs made by with_edges: edge plans do not apply

    @property
    def num_src_nodes(self) -> int:
        return self.num_nodes + self.num_halo

    def gather_src(self, x: Tensor) -> Tensor:
        if x.shape[0] != self.num_nodes:
            raise GraphError(f"part {self.part}: x has {x.shape[0]} rows but the part owns {self.num_nodes} nodes")
        if x.dim() == 1:  # torch.cat's backward drops an empty 1-D input: a rank without halo would
            # then skip the exchange in a double backward that its peers make, and they would wait
            return self.gather_src(x.unsqueeze(1)).squeeze(1)  # (N + N_halo,)
        return torch.cat([x, self.exchange.gather(x)], dim=0)  # (N + N_halo, *)

    def scatter_src(self, y: Tensor) -> Tensor:
        own, halo = y[: self.num_nodes], y[self.num_nodes :]
        return own + self.exchange.scatter(halo)  # (N, *)

    def all_reduce(self, t: Tensor) -> Tensor:
        return self.exchange.all_reduce(t)

    def gather_reverse(self, e: Tensor) -> Tensor:
        if self.derived:
            raise GraphError(
                "gather_reverse is only available on the partitioned graph itself, not on one derived "
                "with with_edges (its exchange plans describe the original edges)"
            )
        if e.shape[0] != self.num_edges:
            raise GraphError(f"part {self.part}: e has {e.shape[0]} rows but the part stores {self.num_edges} edges")
        return self.exchange.gather_reverse(e)

    def fetch_rows(self, h: Tensor, ids: Tensor) -> Tensor:
        """Rows of any nodes by global id: ``h [N, *]`` (this part's owned rows), ``ids [M]`` ->
        ``[M, *]``, every row asked of the part that owns it (:meth:`HaloExchange.fetch`).

        Collective: every part must call it the same number of times, in the same order, with rows
        of the same trailing shape and dtype (ids may differ, and may be empty). The backward sends
        the gradient of each fetched row back to its owner, where repeated rows are summed
        (``index_add``); it is built from the same exchange, so it differentiates again.
        Global ids are those of ``node_ids`` / ``halo_ids`` (new ids on a partition on disk).
        """
        self._check_fetch(h, ids)
        return self.exchange.fetch(h, ids)  # (M, *)

    def with_edges(self, edge_index: Tensor) -> "PartitionedGraph":
        g = PartitionedGraph(
            edge_index,
            self.num_nodes,
            self.num_halo,
            self.exchange,
            node_ids=self.node_ids,
            halo_ids=self.halo_ids,
            part=self.part,
            num_parts=self.num_parts,
            validate=False,
        )
        g.derived = True
        return g

    def to(self, device):  # the exchange decides where halo rows live
        raise NotImplementedError("move a PartitionedGraph by building it on the target device")

    def __repr__(self) -> str:
        return (
            f"PartitionedGraph(part={self.part}/{self.num_parts}, num_nodes={self.num_nodes}, "
            f"num_halo={self.num_halo}, num_edges={self.num_edges})"
        )


# ------------------------------------------------------------------------------------------------
# In-process exchange: every part runs in its own thread; rows are copied by index
class _LocalGroup:
    """Shared mailbox of the parts of one in-process partition."""

    def __init__(self, num_parts: int, timeout: float):
        self.num_parts = num_parts
        self.timeout = timeout
        self.slots: list = [None] * num_parts
        self.barrier = threading.Barrier(num_parts)

    def wait(self) -> None:
        try:
            self.barrier.wait(self.timeout)
        except threading.BrokenBarrierError:
            raise RuntimeError(
                "another part failed or did not reach the same exchange (all parts must run the "
                "same layers in the same order; use distgnn.graph.run_parts)"
            ) from None

    def publish(self, part: int, value) -> list:
        """Everyone posts ``value``; returns all posts once every part has posted."""
        self.slots[part] = value
        self.wait()
        posts = list(self.slots)
        self.wait()  # nobody overwrites a slot before every part has read it
        return posts


class LocalExchange:
    """In-process :class:`HaloExchange` for part ``part`` (see :func:`split_graph`).

    ``gather_plan[q]`` = owner-local indices, on part ``q``, of this part's halo rows owned by ``q``
    (halo rows are ordered by owner, so each owner's rows are one contiguous block);
    ``scatter_plan[q]`` = (positions in ``q``'s halo, local ids here) of ``q``'s halo rows we own.
    ``reverse_plan[q]`` = (positions of our edges, positions on ``q`` of their reverse edges).
    ``node_owner [N]`` / ``node_local [N]``: the owning part and owner-local row of every global
    node (shared by all parts; needed by :meth:`fetch`).
    Copies are ordinary differentiable tensor ops, so gradients flow back to owners through autograd.
    """

    def __init__(
        self,
        group: _LocalGroup,
        part: int,
        num_owned: int,
        gather_plan: list[Tensor],
        scatter_plan: list[tuple[Tensor, Tensor]],
        reverse_plan: list[tuple[Tensor, Tensor]] | None = None,
        node_owner: Tensor | None = None,
        node_local: Tensor | None = None,
    ):
        self.group = group
        self.part = part
        self.num_owned = num_owned
        self.gather_plan = gather_plan
        self.scatter_plan = scatter_plan
        self.reverse_plan = reverse_plan
        self.node_owner = node_owner
        self.node_local = node_local

    def gather(self, x: Tensor) -> Tensor:
        posts = self.group.publish(self.part, x)
        chunks = [posts[q].index_select(0, idx) for q, idx in enumerate(self.gather_plan) if idx.numel()]
        if not chunks:
            return x.new_zeros((0,) + tuple(x.shape[1:]))
        return torch.cat(chunks, dim=0)  # (N_halo, *)

    def scatter(self, y: Tensor) -> Tensor:
        posts = self.group.publish(self.part, y)
        out = y.new_zeros((self.num_owned,) + tuple(y.shape[1:]))
        for q, (rows, local) in enumerate(self.scatter_plan):
            if rows.numel():
                out = out.index_add(0, local, posts[q].index_select(0, rows))  # (N, *)
        return out

    def gather_reverse(self, e: Tensor) -> Tensor:
        posts = self.group.publish(self.part, e)
        out = e.new_zeros(e.shape)
        for q, (here, there) in enumerate(self.reverse_plan):
            if here.numel():
                out = out.index_copy(0, here, posts[q].index_select(0, there))  # (E_p, *)
        return out

    def fetch(self, h: Tensor, ids: Tensor) -> Tensor:
        if self.node_owner is None:
            raise GraphError("LocalExchange.fetch needs node_owner and node_local (build the parts with split_graph)")
        n = int(self.node_owner.numel())
        bad = ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n)
        posts = self.group.publish(self.part, h)  # every part posts, also when its ids are bad
        if bad:
            raise GraphError(f"part {self.part}: fetch_rows ids must be in [0, {n}), got "
                             f"[{int(ids.min())}, {int(ids.max())}]")
        owner, local = self.node_owner[ids], self.node_local[ids]
        out = h.new_zeros((ids.numel(),) + tuple(h.shape[1:]))
        for q, rows in enumerate(posts):
            pos = torch.nonzero(owner == q).flatten()
            if pos.numel():
                out = out.index_copy(0, pos, rows.index_select(0, local[pos]))  # (M, *)
        return out

    def all_reduce(self, t: Tensor) -> Tensor:
        posts = self.group.publish(self.part, t)
        total = posts[0]
        for p in posts[1:]:  # the same order on every part: bitwise identical results
            total = total + p
        return total


def split_graph(
    graph: Tensor | Graph,
    assignment: Tensor,
    num_nodes: int | None = None,
    *,
    num_parts: int | None = None,
    timeout: float = 120.0,
) -> list[PartitionedGraph]:
    """Split a whole graph into in-process parts: part ``p`` owns the nodes with ``assignment == p``.

    Owned nodes keep their global order; each part stores every edge whose target it owns, in the
    original edge order (``edge_ids``), and its halo ordered by (owner, owner-local id). The parts
    must be run together with :func:`run_parts`.

    Args:
        graph: ``edge_index [2, E]`` or a :class:`Graph`.
        assignment: ``[N]`` part id of every node.
        num_parts: number of parts (default ``assignment.max() + 1``; a part may own no node).
    """
    g = as_graph(graph, num_nodes)
    n = g.num_nodes
    if assignment.dim() != 1 or assignment.shape[0] != n:
        raise GraphError(f"assignment must be [N] with N={n}, got {tuple(assignment.shape)}")
    assignment = assignment.to(torch.long)
    if n and int(assignment.min()) < 0:
        raise GraphError("assignment contains a negative part id")
    p_max = int(assignment.max()) + 1 if n else 1
    num_parts = p_max if num_parts is None else num_parts
    if num_parts < p_max:
        raise GraphError(f"assignment names part {p_max - 1} but num_parts is {num_parts}")

    local_of = torch.empty(n, dtype=torch.long)
    owned = [torch.nonzero(assignment == p).flatten() for p in range(num_parts)]
    for ids in owned:
        local_of[ids] = torch.arange(ids.numel())
    src, dst = g.edge_index
    group = _LocalGroup(num_parts, timeout)

    halos, parts = [], []
    for p in range(num_parts):
        eid = torch.nonzero(assignment[dst] == p).flatten()
        s, d = src[eid], dst[eid]
        foreign = assignment[s] != p
        halo = torch.unique(s[foreign])
        order = torch.argsort(assignment[halo] * max(n, 1) + local_of[halo])  # by (owner, local id)
        halo = halo[order]
        pos = torch.full((n,), -1, dtype=torch.long)
        pos[halo] = torch.arange(halo.numel()) + owned[p].numel()
        s_local = torch.where(foreign, pos[s], local_of[s])
        halos.append(halo)
        parts.append((torch.stack([s_local, local_of[d]]), eid))

    rev = reverse_edge_ids(g.edge_index, n)
    edge_part = assignment[dst]
    edge_pos = torch.empty(g.num_edges, dtype=torch.long)
    for _, eid in parts:
        edge_pos[eid] = torch.arange(eid.numel())

    graphs = []
    for p in range(num_parts):
        halo = halos[p]
        owner = assignment[halo]
        gather_plan = [local_of[halo[owner == q]] for q in range(num_parts)]
        scatter_plan = []
        for q in range(num_parts):
            rows = torch.nonzero(assignment[halos[q]] == p).flatten()
            scatter_plan.append((rows, local_of[halos[q][rows]]))
        edge_index, eid = parts[p]
        r = rev[eid]
        r_part = torch.where(r >= 0, edge_part[r.clamp(min=0)], torch.full_like(r, -1))
        reverse_plan = []
        for q in range(num_parts):
            here = torch.nonzero(r_part == q).flatten()
            reverse_plan.append((here, edge_pos[r[here]]))
        ex = LocalExchange(group, p, owned[p].numel(), gather_plan, scatter_plan, reverse_plan,
                           node_owner=assignment, node_local=local_of)
        graphs.append(
            PartitionedGraph(
                edge_index,
                owned[p].numel(),
                halo.numel(),
                ex,
                node_ids=owned[p],
                halo_ids=halo,
                edge_ids=eid,
                part=p,
                num_parts=num_parts,
                validate=False,
            )
        )
    return graphs


def run_parts(graphs: Sequence[PartitionedGraph], fn: Callable[[int, PartitionedGraph], T]) -> list[T]:
    """Run ``fn(p, graphs[p])`` for every in-process part at once (one thread each).

    Parts meet at every exchange, so ``fn`` must run the same layers in the same order on every
    part. The first exception is re-raised here (the other parts are released, not left hanging).
    Grad mode is carried into the threads; autograd links the parts, so a loss summed over the
    returned outputs can be back-propagated from the calling thread.
    """
    results: list = [None] * len(graphs)
    errors: list = [None] * len(graphs)
    grad = torch.is_grad_enabled()
    groups = {id(g.exchange.group): g.exchange.group for g in graphs if isinstance(g.exchange, LocalExchange)}

    def target(p: int) -> None:
        try:
            with torch.set_grad_enabled(grad):
                results[p] = fn(p, graphs[p])
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            errors[p] = exc
            for group in groups.values():
                group.barrier.abort()

    threads = [threading.Thread(target=target, args=(p,), name=f"distgnn-part-{p}") for p in range(len(graphs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for group in groups.values():
        group.barrier.reset()
    first = next((e for e in errors if e is not None and not _is_release(e)), None)
    first = first or next((e for e in errors if e is not None), None)
    if first is not None:
        raise first
    return results


def _is_release(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and "another part failed" in str(exc)
