"""Halo bookkeeping: one bit per (node, part), and the multi-hop halo expansion.

Both the writer and the verifier use these, over edge chunks in NEW ids, so memory stays
``N * ceil(K / 8)`` bytes per bit set however many edges there are.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np

# (src_new [C], dst_new [C], eid [C], attr [C, S] or None)
NewChunk = tuple[np.ndarray, np.ndarray, np.ndarray, "np.ndarray | None"]


class PartBits:
    """A set of node ids per part, as a ``[N, ceil(K/8)]`` bit matrix."""

    def __init__(self, num_nodes: int, num_parts: int) -> None:
        self.bits = np.zeros((num_nodes, (num_parts + 7) // 8), dtype=np.uint8)

    def add(self, k: int, ids: np.ndarray) -> None:
        """Add ``ids`` (duplicates allowed) to part ``k``'s set."""
        col = self.bits[:, k >> 3]
        col[ids] |= np.uint8(1 << (k & 7))  # duplicates all write the same value: safe

    def contains(self, k: int, ids: np.ndarray) -> np.ndarray:
        return (self.bits[ids, k >> 3] & np.uint8(1 << (k & 7))) != 0

    def members(self, k: int) -> np.ndarray:
        """Part ``k``'s set, sorted."""
        return np.flatnonzero(self.bits[:, k >> 3] & np.uint8(1 << (k & 7)))


def owner_of(ids: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The part owning each new id, given ``starts`` = ``[K + 1]`` range boundaries."""
    return (np.searchsorted(starts, ids, side="right") - 1).astype(np.int32)


def foreign(ids: np.ndarray, start: int, end: int) -> np.ndarray:
    """The ids outside ``[start, end)``."""
    return ids[(ids < start) | (ids >= end)]


def expand_halo(
    chunks: Callable[[], Iterable[NewChunk]],
    starts: np.ndarray,
    hop1: PartBits,
    hops: int,
    on_halo_edges: Callable[[int, NewChunk], None] | None = None,
) -> list[list[np.ndarray]]:
    """Breadth-first halo rings ``2..hops`` against the edge direction, one pass per ring.

    Args:
        chunks: a function returning a fresh iterable over all edges (new ids).
        starts: ``[K + 1]`` new-id boundaries of the parts.
        hop1: each part's hop-1 halo (sources of its edges owned elsewhere).
        hops: the number of rings wanted (>= 1).
        on_halo_edges: called as ``(k, edges)`` with every edge whose target is in a ring
            ``1..hops-1`` of part ``k`` (the halo in-edges of ``halo_edges.parquet``).

    Returns:
        ``rings[k][h - 1]``: the sorted new ids of ring ``h`` of part ``k``.
    """
    num_parts = len(starts) - 1
    n = hop1.bits.shape[0]
    rings = [[hop1.members(k)] for k in range(num_parts)]
    if hops <= 1:
        return rings
    seen = PartBits(n, num_parts)
    seen.bits[:] = hop1.bits
    frontier = hop1
    for _ in range(2, hops + 1):
        nxt = PartBits(n, num_parts)
        for chunk in chunks():
            src, dst = chunk[0], chunk[1]
            for k in range(num_parts):
                sel = frontier.contains(k, dst)
                if not sel.any():
                    continue
                if on_halo_edges is not None:
                    on_halo_edges(k, _take(chunk, sel))
                cand = foreign(src[sel], int(starts[k]), int(starts[k + 1]))
                nxt.add(k, cand[~seen.contains(k, cand)])
        for k in range(num_parts):
            ring = nxt.members(k)
            rings[k].append(ring)
            seen.add(k, ring)
        frontier = nxt
    return rings


def _take(chunk: NewChunk, sel: np.ndarray) -> NewChunk:
    src, dst, eid, attr = chunk
    return src[sel], dst[sel], eid[sel], None if attr is None else attr[sel]


def split_by_owner(owner: np.ndarray, num_parts: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(k, row indices)`` for every part with rows, rows in their original order."""
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(num_parts + 1))
    for k in range(num_parts):
        if bounds[k + 1] > bounds[k]:
            yield k, order[bounds[k]:bounds[k + 1]]
