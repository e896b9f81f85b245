"""Halo exchange between processes: a :class:`~distgnn.graph.HaloExchange` over ``torch.distributed``.

One :class:`CollectiveExchange` per rank. It is built from the same per-peer plans as the
in-process :class:`~distgnn.graph.LocalExchange` (see :func:`~distgnn.graph.split_graph`), and
every exchange is ONE ``dist.all_to_all_single`` with uneven split sizes:

==================  ==========================================================================
operation           forward / backward
==================  ==========================================================================
``gather(x)``       ``x [N, *] -> [N_halo, *]``: each rank sends the owned rows its peers hold
                    as halo and receives its own halo rows (ordered by owner); backward sends
                    the halo gradients back and ``index_add``\\ s them into the owners' rows
``scatter(y)``      ``y [N_halo, *] -> [N, *]``: adjoint of ``gather`` (halo partial sums are
                    sent to their owners and added); backward is a ``gather``
``gather_reverse``  ``e [E_p, *] -> [E_p, *]``: row of each edge's reverse edge (zeros where none)
                    wherever it is stored; backward sends gradients to the storing rank
``all_reduce(t)``   ``dist.all_reduce`` (sum); backward all-reduces the gradient
``fetch(h, ids)``   ``h [N, *], ids [M] -> [M, *]``: rows of any nodes by global id from their
                    owners (own rows read in place); backward sends each row's gradient back
                    to its owner, which ``index_add``\\ s it (repeated ids summed)
==================  ==========================================================================

The send lists of gather/scatter/gather_reverse are derived once, at construction, by one
collective exchange of index lists (counts, then indices); no call computes a plan. ``fetch``
plans per call (its ids change every call): one ``all_gather`` of the ``[W]`` request counts
(so every rank knows whether anything moves at all), one ``all_to_all`` of the requested local
ids, then the rows, three collectives in all (none when no rank asks for anything); the plan
is an :class:`ExchangePlan` like the others, so the backward is the same exchange transposed. All operations are device-agnostic (gloo on
CPU tensors, NCCL on CUDA tensors): index tensors are moved to the data's device on first use
and cached. Rows may have any trailing shape (flattened for the collective). A rank may own no
node, have no halo and store no edge; an exchange that moves nothing on any rank issues no
collective at all (decided at construction, identically on every rank).

Every rank must call the same operations in the same order with rows of the same trailing
shape and dtype (as the layers do: they run the same code on every part).

Derivatives of every order are exact: each backward applies the same autograd function on the
adjoint plan, so under ``create_graph=True`` the exchanges of the backward are recorded and a
second derivative runs them again (collectively) on their adjoints. A double backward, like the
backward, needs every rank to reach the same exchanges: a rank whose first-order gradient left
the autograd graph would skip one. ``torch.cat``'s backward drops a 1-D empty input, so 1-D rows
that a rank may have none of (per-node scalars on a rank without halo, per-edge weights on a
rank without edges) are exchanged or concatenated as ``[n, 1]`` (as :mod:`distgnn.ops` does).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from ..collectives import exchange_lists
from ..graph import GraphError, LocalExchange, PartitionedGraph

__all__ = ["CollectiveExchange", "ExchangePlan", "FetchPlan", "collective_part"]


@dataclass
class ExchangePlan:
    """One all-to-all with uneven splits, and how its rows are picked and placed.

    ``x [in_rows, *]`` -> ``send = x[send_idx]`` (``x`` itself when ``send_idx`` is ``None``),
    ``send_counts[q]`` rows to rank ``q`` -> ``recv`` with ``recv_counts[q]`` rows from rank ``q``
    -> ``out [out_rows, *] = zeros.index_add(recv_idx, recv)`` (``recv`` itself when ``recv_idx``
    is ``None``). :meth:`transpose` is the adjoint plan (the backward).
    ``active``: whether any rank moves any row (identical on all ranks; no collective otherwise).
    """

    send_idx: Tensor | None
    send_counts: list[int]
    recv_idx: Tensor | None
    recv_counts: list[int]
    in_rows: int
    out_rows: int
    active: bool = True
    _on_device: dict = field(default_factory=dict, repr=False)
    _adjoint: "ExchangePlan | None" = field(default=None, repr=False)

    def transpose(self) -> "ExchangePlan":
        if self._adjoint is None:
            t = ExchangePlan(
                self.recv_idx, self.recv_counts, self.send_idx, self.send_counts, self.out_rows, self.in_rows, self.active
            )
            t._adjoint, self._adjoint = self, t
        return self._adjoint

    def indices(self, device: torch.device) -> tuple[Tensor | None, Tensor | None]:
        """``(send_idx, recv_idx)`` on ``device`` (moved once, then cached)."""
        key = str(device)
        hit = self._on_device.get(key)
        if hit is None:
            move = lambda t: None if t is None else t.to(device)  # noqa: E731
            hit = self._on_device[key] = (move(self.send_idx), move(self.recv_idx))
        return hit


@dataclass
class FetchPlan:
    """How :meth:`CollectiveExchange.fetch` assembles ``[M, *]`` rows: ``exchange`` brings the
    rows owned elsewhere (zeros elsewhere), ``own_pos [M_own]`` are the positions of the rows this
    rank owns and ``own_local [M_own]`` their local rows."""

    exchange: ExchangePlan
    own_pos: Tensor
    own_local: Tensor


class _Counter:
    """Bytes moved by the exchange (rows sent to other ranks, all directions included)."""

    def __init__(self) -> None:
        self.bytes_sent = 0
        self.bytes_received = 0
        self.bytes_reduced = 0
        self.seconds = 0.0  # wall time inside the collectives (host time; includes waiting for peers)


def _all_to_all(plan: ExchangePlan, x: Tensor, group, counter: _Counter) -> Tensor:
    """Run ``plan`` on ``x [in_rows, *]`` (no autograd): ``[out_rows, *]``."""
    trailing = tuple(x.shape[1:])
    send_idx, recv_idx = plan.indices(x.device)
    send = x if send_idx is None else x.index_select(0, send_idx)  # (S, *)
    n_recv = sum(plan.recv_counts)
    width = 1
    for d in trailing:
        width *= d
    flat = send.reshape(send.shape[0], width).contiguous()  # (S, W): the collective moves 2-D rows
    recv = flat.new_empty((n_recv, width))  # (R, W)
    if plan.active:
        t0 = time.perf_counter()
        dist.all_to_all_single(
            recv, flat, output_split_sizes=plan.recv_counts, input_split_sizes=plan.send_counts, group=group
        )
        row_bytes = width * flat.element_size()
        counter.seconds += time.perf_counter() - t0
        counter.bytes_sent += flat.shape[0] * row_bytes
        counter.bytes_received += n_recv * row_bytes
    recv = recv.reshape((n_recv,) + trailing)  # (R, *)
    if recv_idx is None:
        return recv
    out = recv.new_zeros((plan.out_rows,) + trailing)
    return out.index_add_(0, recv_idx, recv)  # (out_rows, *)


class _ExchangeFn(torch.autograd.Function):
    """Differentiable :func:`_all_to_all`; the backward is the same function on the adjoint plan,
    hence itself differentiable (to any order: the adjoint of the adjoint is the plan)."""

    @staticmethod
    def forward(ctx, x: Tensor, plan: ExchangePlan, group, counter: _Counter) -> Tensor:
        ctx.plan, ctx.group, ctx.counter = plan, group, counter
        return _all_to_all(plan, x, group, counter)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _ExchangeFn.apply(grad.contiguous(), ctx.plan.transpose(), ctx.group, ctx.counter), None, None, None


class _AllReduceFn(torch.autograd.Function):
    """Differentiable sum over ranks; the backward all-reduces the gradient (through this same
    function, so it is differentiable again)."""

    @staticmethod
    def forward(ctx, t: Tensor, group, counter: _Counter) -> Tensor:
        ctx.group, ctx.counter = group, counter
        out = t.detach().clone().contiguous()
        t0 = time.perf_counter()
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
        counter.seconds += time.perf_counter() - t0
        counter.bytes_reduced += out.numel() * out.element_size()
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _AllReduceFn.apply(grad, ctx.group, ctx.counter), None, None


def _any_rows(counts: list[int], group, device: torch.device) -> bool:
    flag = torch.tensor([sum(counts)], dtype=torch.long, device=device)
    dist.all_reduce(flag, group=group)
    return bool(flag.item() > 0)


class CollectiveExchange:
    """:class:`~distgnn.graph.HaloExchange` of rank ``rank`` of a ``torch.distributed`` group.

    Args:
        rank: this rank in ``group`` (= the part it holds); world_size: ranks in ``group``.
        num_owned: ``N``, rows this rank owns.
        gather_plan: ``world_size`` int64 tensors; ``gather_plan[q]``: local ids ON rank ``q`` of our
            halo rows owned by ``q``, in halo order. The halo must be ordered by owner (each
            owner's rows one contiguous block, as :func:`~distgnn.graph.split_graph` and the
            partitioner lay it out); ``gather_plan[rank]`` must be empty.
        reverse_plan: optional, ``world_size`` pairs ``(here, there)``: positions of our edges and
            positions, among the edges stored on rank ``q``, of their reverse edges. Needed for
            :meth:`gather_reverse`. Or a callable returning those pairs, called (collectively: it
            may exchange) at the first :meth:`gather_reverse`, so a model that never asks for
            reverse edges never holds their plan; every rank's first ``gather_reverse`` is then at
            the same point of its program, as the layers make it (they run the same code on every
            part).
        num_edges: ``E_p``, edges stored here (required with ``reverse_plan``).
        group: the process group (default: the world group).
        device: where the construction-time index exchange runs (default: CPU for gloo, the
            current CUDA device for NCCL); :meth:`fetch` exchanges its ids there too.
        starts: ``[W + 1]`` first global id of every rank (``starts[W] = N``) when ranks own
            contiguous id ranges (a partition on disk); or
        node_owner, node_local: ``[N]`` owning rank and owner-local row of every global node (any
            assignment, as :func:`~distgnn.graph.split_graph` makes). One of the two is needed
            by :meth:`fetch`.

    Construction is collective: every rank of ``group`` must build its exchange at the same
    time, all with, all without or all with a callable ``reverse_plan``.

    Attributes:
        bytes_sent, bytes_received: bytes of rows moved by gather/scatter/gather_reverse
            (forward and backward) since construction or :meth:`reset_counters`.
        bytes_reduced: bytes of tensors summed by :meth:`all_reduce` (forward and backward).
        seconds: wall time inside those collectives.
    """

    def __init__(
        self,
        rank: int,
        world_size: int,
        num_owned: int,
        gather_plan: Sequence[Tensor],
        reverse_plan: Sequence[tuple[Tensor, Tensor]] | Callable[[], Sequence[tuple[Tensor, Tensor]]] | None = None,
        *,
        num_edges: int | None = None,
        group=None,
        device: torch.device | str | None = None,
        starts: Sequence[int] | Tensor | None = None,
        node_owner: Tensor | None = None,
        node_local: Tensor | None = None,
    ):
        name = type(self).__name__
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError(f"{name} needs an initialised torch.distributed process group (dist.init_process_group)")
        if dist.get_world_size(group) != world_size or dist.get_rank(group) != rank:
            raise ValueError(
                f"{name}: rank {rank} of {world_size} given, but the process group says rank "
                f"{dist.get_rank(group)} of {dist.get_world_size(group)}"
            )
        reverse_fn = reverse_plan if callable(reverse_plan) else None
        if reverse_fn is not None:
            if num_edges is None:
                raise ValueError(f"{name}: num_edges is required with a reverse_plan")
            reverse_plan = None
        _check_plan(name, world_size, gather_plan, reverse_plan, num_edges)
        if gather_plan[rank].numel():
            raise ValueError(f"{name}: gather_plan[{rank}] names halo rows owned by this rank itself")
        if device is None:
            device = "cuda" if dist.get_backend(group) == "nccl" else "cpu"
            if device == "cuda":
                device = torch.device("cuda", torch.cuda.current_device())
        device = torch.device(device)
        self.device = device
        self.starts = None if starts is None else torch.as_tensor(starts, dtype=torch.long).cpu()
        if self.starts is not None and (self.starts.numel() != world_size + 1
                                        or int(self.starts[rank + 1] - self.starts[rank]) != int(num_owned)):
            raise ValueError(f"{name}: starts must have {world_size + 1} entries with rank {rank} owning "
                             f"{num_owned} ids, got {self.starts.tolist()}")
        if (node_owner is None) != (node_local is None):
            raise ValueError(f"{name}: give node_owner and node_local together")
        self.node_owner = None if node_owner is None else node_owner.to(torch.long).cpu()
        self.node_local = None if node_local is None else node_local.to(torch.long).cpu()
        self.rank, self.world_size, self.num_owned = rank, world_size, int(num_owned)
        self.group = group
        self.gather_plan = [t.to(torch.long).cpu() for t in gather_plan]
        self.reverse_plan = None if reverse_plan is None else [(h.cpu(), t.cpu()) for h, t in reverse_plan]
        self.num_halo = sum(int(t.numel()) for t in self.gather_plan)
        self._counter = _Counter()

        # gather: we receive our halo rows from their owners, in halo order; we send the rows
        # our peers asked for (their gather_plan[rank], learnt once here)
        send_lists = exchange_lists(self.gather_plan, group, device)
        for q, idx in enumerate(send_lists):
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.num_owned):
                raise ValueError(f"{name}: rank {q} asks for row {int(idx.max())} but rank {rank} owns {self.num_owned}")
        recv_counts = [int(t.numel()) for t in self.gather_plan]
        send_counts = [int(t.numel()) for t in send_lists]
        active = _any_rows(send_counts, group, device)
        self.gather_send = send_lists
        self._gather = ExchangePlan(
            torch.cat(send_lists), send_counts, None, recv_counts, self.num_owned, self.num_halo, active
        )
        self._scatter = self._gather.transpose()

        self.num_edges = num_edges
        self._reverse = None
        self._reverse_fn = reverse_fn
        if self.reverse_plan is not None:
            self._reverse = self._reverse_exchange(self.reverse_plan)

    def _reverse_exchange(self, reverse_plan) -> ExchangePlan:
        """The :class:`ExchangePlan` of ``gather_reverse`` from ``(here, there)`` pairs. Collective."""
        e, group, device = int(self.num_edges), self.group, self.device
        send_rev = exchange_lists([there for _, there in reverse_plan], group, device)
        here = [h.to(torch.long) for h, _ in reverse_plan]
        r_send = [int(t.numel()) for t in send_rev]
        return ExchangePlan(
            torch.cat(send_rev).to(torch.long),
            r_send,
            torch.cat(here),
            [int(t.numel()) for t in here],
            e,
            e,
            _any_rows(r_send, group, device),
        )

    @classmethod
    def from_local(cls, local: LocalExchange, *, num_edges: int | None = None, group=None, device=None) -> "CollectiveExchange":
        """The collective twin of an in-process :class:`~distgnn.graph.LocalExchange` (same plans)."""
        return cls(
            local.part,
            len(local.gather_plan),
            local.num_owned,
            local.gather_plan,
            local.reverse_plan,
            num_edges=num_edges,
            group=group,
            device=device,
            node_owner=local.node_owner,
            node_local=local.node_local,
        )

    # -- counters -------------------------------------------------------------------------------
    @property
    def bytes_sent(self) -> int:
        return self._counter.bytes_sent

    @property
    def bytes_received(self) -> int:
        return self._counter.bytes_received

    @property
    def bytes_reduced(self) -> int:
        return self._counter.bytes_reduced

    @property
    def seconds(self) -> float:
        """Wall time spent inside the exchange's collectives (waiting for peers included)."""
        return self._counter.seconds

    def reset_counters(self) -> None:
        self._counter = _Counter()

    # -- HaloExchange -----------------------------------------------------------------------------
    def gather(self, x: Tensor) -> Tensor:
        """``x [N, *]`` -> halo rows ``[N_halo, *]``."""
        if x.dim() == 0 or x.shape[0] != self.num_owned:
            raise GraphError(f"rank {self.rank}: gather expects [{self.num_owned}, *] rows, got {tuple(x.shape)}")
        return _ExchangeFn.apply(x, self._gather, self.group, self._counter)  # (N_halo, *)

    def scatter(self, y: Tensor) -> Tensor:
        """``y [N_halo, *]`` -> ``[N, *]``: halo partial sums added into their owners' rows."""
        if y.dim() == 0 or y.shape[0] != self.num_halo:
            raise GraphError(f"rank {self.rank}: scatter expects [{self.num_halo}, *] halo rows, got {tuple(y.shape)}")
        return _ExchangeFn.apply(y, self._scatter, self.group, self._counter)  # (N, *)

    def gather_reverse(self, e: Tensor) -> Tensor:
        """``e [E_p, *]`` -> ``[E_p, *]``: rows of the reverse edges, zeros where there is none."""
        if self._reverse is None and self._reverse_fn is None:
            raise GraphError(f"rank {self.rank}: this exchange was built without a reverse_plan")
        if e.dim() == 0 or e.shape[0] != self.num_edges:
            raise GraphError(f"rank {self.rank}: gather_reverse expects [{self.num_edges}, *] rows, got {tuple(e.shape)}")
        if self._reverse is None:  # the plan deferred to this first call (collective: every rank is here)
            plan = self._reverse_fn()
            _check_plan(type(self).__name__, self.world_size, self.gather_plan, plan, self.num_edges)
            self._reverse = self._reverse_exchange([(h.cpu(), t.cpu()) for h, t in plan])
            self._reverse_fn = None
        return _ExchangeFn.apply(e, self._reverse, self.group, self._counter)  # (E_p, *)

    def all_reduce(self, t: Tensor) -> Tensor:
        """Elementwise sum of ``t`` over all ranks (identical on every rank), differentiable."""
        return _AllReduceFn.apply(t, self.group, self._counter)

    @property
    def num_nodes_global(self) -> int | None:
        """``N`` of the whole graph (``None`` when built without ``starts`` or node tables)."""
        if self.starts is not None:
            return int(self.starts[-1])
        return None if self.node_owner is None else int(self.node_owner.numel())

    def locate(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """``(owner [M], local row on the owner [M])`` of global ids ``ids [M]`` (CPU int64)."""
        n = self.num_nodes_global
        if n is None:
            raise GraphError(f"rank {self.rank}: fetch needs the owner of every node; build the exchange with "
                             "starts= (contiguous ranges) or node_owner=/node_local=")
        ids = ids.to(device="cpu", dtype=torch.long)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
            raise GraphError(f"rank {self.rank}: fetch_rows ids must be in [0, {n}), got "
                             f"[{int(ids.min())}, {int(ids.max())}]")
        if self.starts is not None:
            owner = torch.searchsorted(self.starts, ids, right=True) - 1
            return owner, ids - self.starts[owner]
        return self.node_owner[ids], self.node_local[ids]

    def fetch_plan(self, ids: Tensor) -> "FetchPlan":
        """The :class:`FetchPlan` of ``ids [M]``: owned rows read in place, the others moved from
        their owners by one :class:`ExchangePlan`. Collective (two small exchanges: request
        counts, then the requested rows' ids; none when no rank asks another for anything);
        reusable for several tensors of rows indexed alike."""
        owner, local = self.locate(ids)
        world, dev = self.world_size, self.device
        mine = owner == self.rank
        own_pos = torch.nonzero(mine).flatten()
        remote = torch.nonzero(~mine).flatten()
        order = remote[torch.argsort(owner[remote], stable=True)]  # requests grouped by owner, id order within
        ask = torch.bincount(owner[remote], minlength=world)  # (W,), nothing asked of ourselves
        table = [torch.zeros(world, dtype=torch.long, device=dev) for _ in range(world)]
        dist.all_gather(table, ask.to(dev), group=self.group)  # table[p][q]: rows p asks of q
        table = torch.stack(table).cpu()  # (W, W)
        active = bool(table.sum() > 0)
        send_counts = table[:, self.rank].tolist()  # rows every rank asks of us
        recv_counts = ask.tolist()
        if active:
            requested = torch.empty(sum(send_counts), dtype=torch.long, device=dev)
            dist.all_to_all_single(requested, local[order].to(dev), output_split_sizes=send_counts,
                                   input_split_sizes=recv_counts, group=self.group)
            requested = requested.cpu()
        else:
            requested = torch.zeros(0, dtype=torch.long)
        if requested.numel() and int(requested.max()) >= self.num_owned:  # pragma: no cover - locate checked
            raise GraphError(f"rank {self.rank}: asked for row {int(requested.max())} of {self.num_owned}")
        plan = ExchangePlan(requested, send_counts, order, recv_counts, self.num_owned, int(ids.numel()), active)
        return FetchPlan(plan, own_pos, local[own_pos])

    def fetch(self, h: Tensor, ids: Tensor) -> Tensor:
        """``h [N, *]`` (the owned rows), ``ids [M]`` global ids -> ``[M, *]``. Collective."""
        if h.dim() == 0 or h.shape[0] != self.num_owned:
            raise GraphError(f"rank {self.rank}: fetch expects [{self.num_owned}, *] rows, got {tuple(h.shape)}")
        return self.fetch_with(self.fetch_plan(ids), h)

    def fetch_with(self, plan: "FetchPlan", h: Tensor) -> Tensor:
        """Rows of ``h [N, *]`` by a plan of :meth:`fetch_plan`: ``[M, *]``. Collective, differentiable
        (the remote rows' backward is the exchange transposed; the owned rows' an ``index_add``)."""
        out = _ExchangeFn.apply(h, plan.exchange, self.group, self._counter)  # (M, *), zeros at owned rows
        if not plan.own_pos.numel():
            return out
        own_pos, own_local = (t.to(h.device) for t in (plan.own_pos, plan.own_local))
        return out.index_copy(0, own_pos, h.index_select(0, own_local))  # (M, *)

    def __repr__(self) -> str:
        return (
            f"CollectiveExchange(rank={self.rank}/{self.world_size}, num_owned={self.num_owned}, "
            f"num_halo={self.num_halo}, reverse={self._reverse is not None or self._reverse_fn is not None})"
        )


def _check_plan(name, world_size, gather_plan, reverse_plan, num_edges) -> None:
    if len(gather_plan) != world_size:
        raise ValueError(f"{name}: gather_plan needs one entry per rank ({world_size}), got {len(gather_plan)}")
    for q, t in enumerate(gather_plan):
        if not isinstance(t, Tensor) or t.dim() != 1 or t.dtype != torch.long:
            raise ValueError(f"{name}: gather_plan[{q}] must be a 1-D int64 tensor")
    if reverse_plan is not None:
        if len(reverse_plan) != world_size:
            raise ValueError(f"{name}: reverse_plan needs one entry per rank ({world_size}), got {len(reverse_plan)}")
        if num_edges is None:
            raise ValueError(f"{name}: num_edges is required with a reverse_plan")
        for q, (here, there) in enumerate(reverse_plan):
            if here.shape != there.shape or here.dim() != 1:
                raise ValueError(f"{name}: reverse_plan[{q}] must be two 1-D tensors of equal length")
            if here.numel() and (int(here.min()) < 0 or int(here.max()) >= num_edges):
                raise ValueError(f"{name}: reverse_plan[{q}] names an edge outside [0, {num_edges})")


def collective_part(parts: Sequence[PartitionedGraph], rank: int, *, group=None, device=None) -> PartitionedGraph:
    """Rank ``rank``'s part of an in-process split, with a :class:`CollectiveExchange`.

    ``parts`` is the output of :func:`~distgnn.graph.split_graph`, which every rank computes
    identically; the returned graph has the same edges, ids and plans as ``parts[rank]`` but
    exchanges halo rows with the other processes. Collective: every rank must call it.
    """
    if not 0 <= rank < len(parts):
        raise ValueError(f"collective_part: rank {rank} outside the {len(parts)} parts")
    g = parts[rank]
    if not isinstance(g.exchange, LocalExchange):
        raise TypeError(f"collective_part expects parts from split_graph, got a {type(g.exchange).__name__}")
    ex = CollectiveExchange.from_local(g.exchange, num_edges=g.num_edges, group=group, device=device)
    return PartitionedGraph(
        g.edge_index,
        g.num_nodes,
        g.num_halo,
        ex,
        node_ids=g.node_ids,
        halo_ids=g.halo_ids,
        edge_ids=g.edge_ids,
        part=g.part,
        num_parts=g.num_parts,
        validate=False,
    )
