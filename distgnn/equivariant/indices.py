"""Neighbour lists (e3x's two formats) and the padded neighbourhood plan MessagePass runs on.

- **dense**: ``adj_idx [N, M]``: row ``i`` lists the neighbours ``j`` of ``i``; the index ``N``
  (one past the last node) is padding; an optional ``where [N, M]`` mask (default
  ``adj_idx < N``) says which entries count.
- **sparse**: ``dst_idx [E]``, ``src_idx [E]``: edge ``e`` is ``src_idx[e] -> dst_idx[e]``;
  entries equal to the padding index (``num_segments`` for ``dst_idx``, ``N`` for ``src_idx``)
  are padding, as :func:`dense_to_sparse_indices` writes them.

A :class:`NeighbourPlan` lays the edges out as padded neighbourhoods ``[R, M]`` grouped into
buckets of similar in-degree (powers of two), so every bucket is one batched matrix product.
Building it needs the edges grouped by target: with ``indices_are_sorted`` the targets are
checked to be non-decreasing and used as they are; otherwise one stable sort groups them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "NeighbourPlan",
    "dense_pairwise_indices",
    "dense_to_sparse_indices",
    "sparse_pairwise_indices",
    "sparse_to_dense_indices",
]


def dense_pairwise_indices(num: int, mask_self: bool = True) -> Tensor:
    """``adj_idx [num, num-1]`` (``[num, num]`` with loops) listing every other element."""
    if num < 1:
        raise ValueError(f"dense_pairwise_indices: num must be >= 1, got {num}")
    adj = torch.arange(num).repeat(num, 1)  # (num, num)
    if mask_self:
        keep = ~torch.eye(num, dtype=torch.bool)
        adj = adj[keep].view(num, num - 1)
    return adj


def sparse_pairwise_indices(num: int, mask_self: bool = True) -> tuple[Tensor, Tensor]:
    """``(dst_idx, src_idx)`` of every ordered pair of ``num`` elements (loops optional)."""
    if num < 1:
        raise ValueError(f"sparse_pairwise_indices: num must be >= 1, got {num}")
    dst = torch.arange(num).repeat_interleave(num)
    src = torch.arange(num).repeat(num)
    if mask_self:
        keep = dst != src
        dst, src = dst[keep], src[keep]
    return dst, src


def dense_to_sparse_indices(adj_idx: Tensor, pad_idx: int | None = None) -> tuple[Tensor, Tensor]:
    """``adj_idx [..., N, M]`` -> ``(dst_idx [..., E], src_idx [..., E])``; entries ``>= pad_idx``
    (default ``adj_idx.max() + 1``) are dropped; batches are padded to equal length with ``pad_idx``."""
    if adj_idx.dim() < 2:
        raise ValueError(f"dense_to_sparse_indices: adj_idx must be [..., N, M], got {tuple(adj_idx.shape)}")
    lead, (n, m) = adj_idx.shape[:-2], adj_idx.shape[-2:]
    if adj_idx.numel() == 0:
        empty = adj_idx.new_zeros(tuple(lead) + (0,))
        return empty, empty.clone()
    pad = int(adj_idx.max()) + 1 if pad_idx is None else pad_idx
    flat = adj_idx.reshape(-1, n, m)
    dsts, srcs = [], []
    for b in range(flat.shape[0]):
        keep = flat[b] < pad
        rows = torch.arange(n).unsqueeze(1).expand(n, m)
        dsts.append(rows[keep])
        srcs.append(flat[b][keep])
    size = max(d.numel() for d in dsts)
    fill = lambda t: torch.cat([t, t.new_full((size - t.numel(),), pad)])  # noqa: E731
    dst = torch.stack([fill(d) for d in dsts]).reshape(tuple(lead) + (size,))
    src = torch.stack([fill(s) for s in srcs]).reshape(tuple(lead) + (size,))
    return dst, src


def sparse_to_dense_indices(dst_idx: Tensor, src_idx: Tensor, pad_idx: int | None = None) -> Tensor:
    """``(dst_idx [..., E], src_idx [..., E])`` -> ``adj_idx [..., pad_idx, M]`` (rows in edge order,
    padded with ``pad_idx``, default ``dst_idx.max() + 1``)."""
    if dst_idx.shape != src_idx.shape:
        raise ValueError(
            f"sparse_to_dense_indices: dst_idx {tuple(dst_idx.shape)} and src_idx {tuple(src_idx.shape)} differ")
    lead = dst_idx.shape[:-1]
    if dst_idx.numel() == 0:
        return dst_idx.new_zeros(tuple(lead) + (0, 0))
    pad = int(dst_idx.max()) + 1 if pad_idx is None else pad_idx
    d2, s2 = dst_idx.reshape(-1, dst_idx.shape[-1]), src_idx.reshape(-1, src_idx.shape[-1])
    counts = torch.stack([torch.bincount(d[d < pad], minlength=pad)[:pad] for d in d2])  # (B, pad)
    width = int(counts.max()) if counts.numel() else 0
    adj = dst_idx.new_full((d2.shape[0], pad, width), pad)
    for b in range(d2.shape[0]):
        for i in range(pad):
            sel = s2[b][d2[b] == i]
            adj[b, i, : sel.numel()] = sel
    return adj.reshape(tuple(lead) + (pad, width))


# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bucket:
    """Nodes ``rows [R]`` whose neighbourhoods are padded to ``width`` slots.

    ``edges [n]`` are the bucket's edges and ``slots [n]`` their slots in ``[0, R * width)``;
    ``slot_src [R * width]`` is the source row of every slot (``num_src``, an appended zero row,
    for an empty slot). ``identity``: the bucket holds every edge, in order, without empty slots
    (edge ``e`` sits in slot ``e``), so per-edge rows need no copy.
    """

    rows: Tensor
    edges: Tensor
    slots: Tensor
    slot_src: Tensor
    width: int
    identity: bool = False


@dataclass(frozen=True)
class NeighbourPlan:
    """Padded neighbourhoods of the targets ``[0, num_out)`` (see the module docstring)."""

    buckets: tuple[Bucket, ...]
    num_out: int
    num_src: int
    num_edges: int

    @staticmethod
    def from_edges(
        src: Tensor,
        dst: Tensor,
        num_out: int,
        num_src: int,
        *,
        indices_are_sorted: bool = False,
        owner: str = "MessagePass",
    ) -> "NeighbourPlan":
        """Plan for edges ``src -> dst`` (1-D int64). Entries equal to the padding indices
        (``dst == num_out`` or ``src == num_src``) are dropped; anything else out of range is an error."""
        num_edges = int(dst.numel())
        if num_edges:
            lo = min(int(dst.min()), int(src.min()))
            if lo < 0:
                raise IndexError(f"{owner}: negative index {lo} in the neighbour list")
            if int(dst.max()) > num_out:
                raise IndexError(f"{owner}: dst_idx refers to segment {int(dst.max())} but num_segments is {num_out} "
                                 f"(padding entries must equal num_segments)")
            if int(src.max()) > num_src:
                raise IndexError(f"{owner}: src_idx refers to node {int(src.max())} but the inputs have {num_src} "
                                 f"nodes (padding entries must equal {num_src})")
        ids = torch.arange(num_edges, device=dst.device)
        keep = (dst < num_out) & (src < num_src)
        if not bool(keep.all()):
            ids, src, dst = ids[keep], src[keep], dst[keep]
        deg = torch.bincount(dst, minlength=num_out)  # (num_out,)
        start = torch.cumsum(deg, 0) - deg  # exclusive prefix sums (CSR row pointers)
        if indices_are_sorted:
            if dst.numel() > 1 and not bool((dst[1:] >= dst[:-1]).all()):
                raise ValueError(f"{owner}: indices_are_sorted=True but dst_idx is not sorted; sort the edges by "
                                 f"target or pass indices_are_sorted=False")
            slot = torch.arange(dst.numel(), device=dst.device) - start[dst]
        else:
            order = torch.argsort(dst, stable=True)
            slot = torch.empty_like(dst)
            slot[order] = torch.arange(dst.numel(), device=dst.device) - start[dst[order]]
        # bucket b holds the nodes with 2^(b-1) < deg <= 2^b
        bucket = torch.ceil(torch.log2(deg.clamp(min=1).to(torch.float64))).to(torch.long)
        bucket = torch.where(deg > 0, bucket, torch.full_like(bucket, -1))
        edge_bucket = bucket[dst]
        buckets = []
        for b in torch.unique(bucket[bucket >= 0]).tolist():
            rows = torch.nonzero(bucket == b).flatten()
            width = int(deg[rows].max())
            pos = torch.full((num_out,), -1, dtype=torch.long, device=dst.device)
            pos[rows] = torch.arange(rows.numel(), device=dst.device)
            sel = edge_bucket == b
            flat = pos[dst[sel]] * width + slot[sel]
            slot_src = torch.full((rows.numel() * width,), num_src, dtype=torch.long, device=dst.device)
            slot_src[flat] = src[sel]
            edges = ids[sel]
            identity = edges.numel() == num_edges == rows.numel() * width and bool(
                (flat == torch.arange(num_edges, device=dst.device)).all() and (edges == flat).all())
            buckets.append(Bucket(rows, edges, flat, slot_src, width, identity))
        return NeighbourPlan(tuple(buckets), num_out, num_src, num_edges)

    @staticmethod
    def from_dense(adj: Tensor, mask: Tensor, num_src: int) -> "NeighbourPlan":
        """Plan of a padded list ``adj [R, M]`` (global source rows) with ``mask [R, M]``: row ``r``
        is target ``r``, slot ``(r, k)`` is edge ``r M + k``."""
        r, m = adj.shape
        flat_mask = mask.reshape(-1)
        slots = torch.nonzero(flat_mask).flatten()
        slot_src = torch.where(flat_mask, adj.reshape(-1), torch.full_like(flat_mask, num_src, dtype=torch.long))
        identity = slots.numel() == r * m
        bucket = Bucket(torch.arange(r, device=adj.device), slots, slots, slot_src, m, identity)
        return NeighbourPlan((bucket,), r, num_src, r * m)
