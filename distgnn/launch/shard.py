"""What one worker holds: its consecutive parts of a partition, merged, as a partitioned graph.

A partition written by :mod:`distgnn.partition` gives part ``k`` the contiguous new-id range
``[start_k, end_k)``. A worker holding parts ``a..b`` therefore owns the contiguous range
``[start_a, end_b)``: :func:`merge_parts` concatenates those parts (owned rows, stored edges),
and :func:`build_graph` turns the result into a :class:`~distgnn.graph.PartitionedGraph` whose
halo rows come from the other workers through a :class:`~.exchange.CollectiveExchange`:

- halo = sources of stored edges outside the owned range, sorted by global id (which orders
  them by owning rank, then by the owner's local id: ranks own ascending ranges);
- ``gather_plan[q]`` = the halo ids owned by rank ``q``, minus ``q``'s first id;
- ``reverse_plan``: the reverse ``v -> u`` of a stored edge ``u -> v`` is stored by the owner of
  ``u``; each rank asks each owner, in one batched exchange, for the position of the first
  (lowest original edge id) such edge -- the same edge the whole graph's ``gather_reverse``
  picks. Built at the graph's first ``gather_reverse`` (only edge-feature layers ask for it), not
  at load: it sorts the whole edge list and moves two ids per edge, which a model that never
  reads reverse edges should not pay for in time or memory.

Importing this module loads neither Ray nor Arrow (parts are read by the caller).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from ..graph import PartitionedGraph
from ..collectives import exchange_lists, owner_of
from .exchange import CollectiveExchange

__all__ = ["Shard", "assign_parts", "merge_parts", "build_graph", "check_columns", "REQUIRED_COLUMNS"]

# manifest node fields training needs (and the Part attributes they become)
REQUIRED_COLUMNS = {"features": "x", "label": "y", "train_mask": "train_mask"}


def check_columns(manifest, where: str, task=None) -> None:
    """Raise :class:`ValueError` when the partition lacks a column training needs (one line).

    Link prediction (``task``) needs the features and an edge split, no labels or masks."""
    from .link import is_link_task

    if is_link_task(task):
        if manifest.node_field("features") is None:
            raise ValueError(f"{where}: the partition has no features column; link prediction needs node features")
        if getattr(manifest, "link_split", None) is None:
            raise ValueError(f"{where}: the partition has no edge split; link prediction needs one (partition with "
                             "--edge-split 0.85,0.05,0.10, or an edge table with a split column)")
        return
    missing = [f for f in REQUIRED_COLUMNS if manifest.node_field(f) is None]
    if missing:
        raise ValueError(f"{where}: the partition has no {', '.join(missing)} column(s); training needs "
                         "features, labels and a training mask")


def assign_parts(num_parts: int, num_workers: int, weights: Sequence[int] | None = None) -> list[range]:
    """Consecutive blocks of parts, one per worker, balanced by ``weights`` (default: one each).

    Raises :class:`ValueError` when there are more workers than parts or none at all.
    """
    if num_workers < 1:
        raise ValueError(f"need at least one worker, got {num_workers}")
    if num_workers > num_parts:
        raise ValueError(
            f"{num_workers} workers but the partition has only {num_parts} parts: every worker needs at least "
            f"one part (use --workers {num_parts} or fewer, or partition into more parts)"
        )
    w = [1] * num_parts if weights is None else [max(int(v), 0) + 1 for v in weights]
    total = sum(w)
    blocks, start, acc = [], 0, 0
    for r in range(num_workers):
        left_workers = num_workers - r - 1
        end = start + 1  # at least one part
        acc += w[start]
        target = total * (r + 1) / num_workers
        while end < num_parts - left_workers and acc + w[end] / 2 <= target:
            acc += w[end]
            end += 1
        if r == num_workers - 1:
            end = num_parts
        blocks.append(range(start, end))
        start = end
    return blocks


@dataclass
class Shard:
    """The rows and edges one worker owns (new global ids throughout).

    ``n = node_end - node_start``; ``starts [W + 1]``: the first id of every rank (``starts[W] = N``).
    ``edge_index [2, E_w]`` holds every edge whose target is owned, in original edge order
    (``eid`` ascending); the other fields are as in :class:`~distgnn.partition.Part`, concatenated.
    """

    rank: int
    world_size: int
    starts: list[int]
    num_nodes_global: int
    edge_index: Tensor
    eid: Tensor
    in_degree: Tensor
    out_degree: Tensor
    x: Tensor | None = None
    y: Tensor | None = None
    train_mask: Tensor | None = None
    val_mask: Tensor | None = None
    test_mask: Tensor | None = None
    edge_attr: Tensor | None = None

    @property
    def node_start(self) -> int:
        return self.starts[self.rank]

    @property
    def node_end(self) -> int:
        return self.starts[self.rank + 1]

    @property
    def num_nodes(self) -> int:
        return self.node_end - self.node_start


def merge_parts(parts: Sequence, rank: int, starts: Sequence[int], *, consume: bool = False) -> Shard:
    """One :class:`Shard` from consecutive :class:`~distgnn.partition.Part` objects of rank ``rank``.

    ``starts``: the first new id of every rank and, last, the number of nodes.

    Every merged field is ONE contiguous tensor, filled part by part (a single part's tensors are
    taken as they are, no copy). ``consume=True`` sets each part's merged fields to ``None`` as
    soon as they are copied, so a worker holds its parts and the merged shard together for one
    field of one part at a time, not twice over (the parts' other fields, e.g. ``link_edges``,
    are left alone). Edges of several parts are put back in original edge order one row at a
    time (one ``[E]`` temporary, not a second ``[2, E]``).
    """
    if not parts:
        raise ValueError(f"rank {rank} holds no part")
    for a, b in zip(parts, parts[1:]):
        if a.node_end != b.node_start:
            raise ValueError(f"rank {rank}: parts {a.part_id} and {b.part_id} are not consecutive")
    if parts[0].node_start != starts[rank] or parts[-1].node_end != starts[rank + 1]:
        raise ValueError(f"rank {rank}: its parts own [{parts[0].node_start}, {parts[-1].node_end}), "
                         f"expected [{starts[rank]}, {starts[rank + 1]})")

    def cat(name: str, dim: int = 0):
        values = [getattr(p, name) for p in parts]
        if any(v is None for v in values):
            return None
        if len(values) == 1:
            out = values[0]
        else:
            shape = list(values[0].shape)
            shape[dim] = sum(int(v.shape[dim]) for v in values)
            out = torch.empty(shape, dtype=values[0].dtype)
            at = 0
            for i, p in enumerate(parts):
                size = int(values[i].shape[dim])
                out.narrow(dim, at, size).copy_(values[i])
                at += size
                values[i] = None  # the part's tensor is freed now when consumed
                if consume:
                    setattr(p, name, None)
        if consume:
            setattr(parts[0], name, None)
        return out

    if len(parts) > 1 and all(_ascending(p.eid) for p in parts):
        edge_index, eid, edge_attr = _interleave_edges(parts, consume)
    else:
        edge_index, eid, edge_attr = cat("edge_index", 1), cat("eid"), cat("edge_attr")
        if len(parts) > 1:
            order = torch.argsort(eid, stable=True)  # original edge order, as one part would store them
            for row in edge_index:  # in place, one [E] temporary per row
                row.copy_(row[order])
            eid = eid[order]
            edge_attr = None if edge_attr is None else edge_attr[order]
    return Shard(
        rank=rank, world_size=len(starts) - 1, starts=[int(s) for s in starts],
        num_nodes_global=parts[0].num_nodes_global,
        edge_index=edge_index, eid=eid, edge_attr=edge_attr,
        in_degree=cat("in_degree"), out_degree=cat("out_degree"),
        x=cat("x"), y=cat("y"), train_mask=cat("train_mask"), val_mask=cat("val_mask"), test_mask=cat("test_mask"),
    )


def _ascending(eid: Tensor) -> bool:
    return eid.numel() < 2 or bool((eid[1:] > eid[:-1]).all())


def _interleave_edges(parts: Sequence, consume: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """The parts' edges in original edge order, when every part stores its own in that order: edge
    ``j`` of part ``i`` goes to row ``j + sum over the other parts q of #(eid_q < eid_ij)`` (a merge
    of sorted lists by binary search), written straight from the part (no concatenated copy, no sort)."""
    eids = [p.eid for p in parts]
    total = sum(int(e.numel()) for e in eids)
    attrs = [p.edge_attr for p in parts]
    has_attr = all(a is not None for a in attrs)
    edge_index = torch.empty((2, total), dtype=parts[0].edge_index.dtype)
    eid = torch.empty(total, dtype=eids[0].dtype)
    edge_attr = torch.empty((total, *attrs[0].shape[1:]), dtype=attrs[0].dtype) if has_attr else None
    del attrs
    for i, p in enumerate(parts):
        pos = torch.arange(eids[i].numel())  # (E_i,) rows of part i's edges in the merged order
        for q, other in enumerate(eids):
            if q != i:
                pos += torch.searchsorted(other, eids[i])
        edge_index[:, pos] = p.edge_index
        eid[pos] = eids[i]
        if has_attr:
            edge_attr[pos] = p.edge_attr
        if consume:  # the part's eid stays until every part is placed (the others' positions need it)
            p.edge_index = p.edge_attr = None
    if consume:
        for p in parts:
            p.eid = None
    return edge_index, eid, edge_attr


def build_graph(shard: Shard, *, group=None, device: torch.device | str = "cpu", reverse: bool = True) -> PartitionedGraph:
    """The :class:`~distgnn.graph.PartitionedGraph` of ``shard`` on ``device``. Collective.

    ``reverse=False``: the graph refuses ``gather_reverse``; otherwise its plan is built by the
    first ``gather_reverse`` call, collectively (every rank's model makes that call at the same
    layer). Node and edge ids on the graph are new global ids / original edge ids.
    """
    rank, world = shard.rank, shard.world_size
    nccl = dist.get_backend(group) == "nccl"
    plan_device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    start, end, n = shard.node_start, shard.node_end, shard.num_nodes
    N = shard.num_nodes_global
    starts = torch.tensor(shard.starts, dtype=torch.long)
    if reverse and N and N > 3_000_000_000:
        raise ValueError(f"reverse-edge plans support up to 3e9 nodes, the graph has {N}")
    # local ids written straight into the result: no whole-edge-list temporary but a mask
    edge_index = torch.sub(shard.edge_index, start)  # (2, E_w): owned sources and targets local
    foreign = (edge_index[0] < 0) | (edge_index[0] >= n)  # (E_w,) sources owned elsewhere
    outside = shard.edge_index[0][foreign]  # (F,) their global ids
    halo = torch.unique(outside)  # sorted: by owner rank, then by the owner's local id
    edge_index[0][foreign] = torch.searchsorted(halo, outside).add_(n)
    del foreign, outside
    owner = owner_of(halo, starts)
    gather_plan = [halo[owner == q] - shard.starts[q] for q in range(world)]
    device = torch.device(device)
    edge_index = edge_index.to(device)
    reverse_plan = None
    if reverse:  # deferred to the first gather_reverse; kept: the local edges and the halo ids
        reverse_plan = lambda: _reverse_plan(edge_index, halo, start, n, starts, N, group, plan_device)  # noqa: E731
    ex = CollectiveExchange(
        rank, world, n, gather_plan, reverse_plan, num_edges=int(edge_index.shape[1]), group=group,
        device=plan_device, starts=shard.starts,
    )
    g = PartitionedGraph(
        edge_index, n, int(halo.numel()), ex,
        node_ids=torch.arange(start, end, dtype=torch.long), halo_ids=halo, edge_ids=shard.eid,
        part=rank, num_parts=world, validate=False,
    )
    # whole-graph degrees are in the shard already: no exchange needed for them
    for dtype in (torch.float32, torch.float64):
        g._cache[("out_degree", dtype)] = shard.out_degree.to(device=device, dtype=dtype)
        g._cache[("in_degree", dtype)] = shard.in_degree.to(device=device, dtype=dtype)
    return g


def _reverse_plan(edge_index: Tensor, halo: Tensor, start: int, n: int, starts: Tensor, N: int, group,
                  plan_device: torch.device) -> list[tuple[Tensor, Tensor]]:
    """``reverse_plan`` of :class:`~.exchange.CollectiveExchange` for the local ``edge_index [2, E]``
    (sources: owned rows, then ``halo`` by global id). Collective: one exchange of the asked keys
    ``dst * N + src``, one of the answers; temporaries are freed as soon as they are used."""
    local_src, local_dst = edge_index.cpu()
    src = torch.empty_like(local_src)  # (E,) global ids
    owned = local_src < n
    src[owned] = local_src[owned] + start
    src[~owned] = halo.index_select(0, local_src[~owned] - n)
    del owned
    dst = local_dst + start  # (E,)
    world = starts.numel() - 1
    # ask the owner of u, for each stored u -> v, where its first v -> u is
    e_owner = owner_of(src, starts)
    order = torch.argsort(e_owner, stable=True)  # (E,) our edges grouped by the owner of their source
    counts = torch.bincount(e_owner, minlength=world).tolist()
    del e_owner
    asked = dst.index_select(0, order).mul_(N).add_(src.index_select(0, order))  # (E,) keys dst * N + src
    incoming = exchange_lists(list(torch.split(asked, counts)), group, plan_device)
    del asked
    sorted_key, key_order = torch.sort(src.mul_(N).add_(dst), stable=True)  # keys src * N + dst of our edges
    del src, dst  # first occurrence of equal keys first (stable)
    answers = []
    for want in incoming:
        if not sorted_key.numel() or not want.numel():
            answers.append(torch.full_like(want, -1))
            continue
        pos = torch.searchsorted(sorted_key, want).clamp_(max=sorted_key.numel() - 1)
        found = sorted_key.index_select(0, pos) == want
        answers.append(key_order.index_select(0, pos).masked_fill_(~found, -1))
    del incoming, sorted_key, key_order
    replies = exchange_lists(answers, group, plan_device)
    del answers
    plan = []
    for here, there in zip(torch.split(order, counts), replies):
        found = there >= 0
        plan.append((here[found], there[found]))
    return plan
