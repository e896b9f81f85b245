"""Negative edges for link-prediction training, keyed so any worker draws the same ones.

Negative ``j`` of the positive edge with global id ``eid`` at ``epoch`` is drawn from the
counter-based generator of :mod:`distgnn.sampling.rng` keyed by ``(seed, epoch, eid, j, round)``:
it depends on nothing else, so the negatives are the same on any number of workers and whatever
the batch holds.

=================  ======================================================================
mode               negative ``j`` of positive ``(u, v)``
=================  ======================================================================
``corrupt-dst``    ``(u, w)``, ``w`` uniform over all ``N`` nodes
``uniform``        ``(w', w)``, both uniform over all ``N`` nodes
=================  ======================================================================

With ``exclude(u, v) -> bool [M]`` (True for a known positive), an excluded draw is redrawn with
the next round's key, at most ``max_rounds`` times; a draw still excluded then is kept (so a
node adjacent to every other node cannot loop forever). Without ``exclude`` a negative may
coincide with a positive (probability about ``E / N²``), as in PyG's default.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .rng import GAMMA, mix64_, node_keys, stream_key

__all__ = ["NEG_MODES", "NegativeSampler", "edge_membership"]

NEG_MODES = ("corrupt-dst", "uniform")
_NEG_STREAM = 2_000_003


class NegativeSampler:
    """``k`` keyed negatives per positive edge (see the module docstring).

    Args:
        num_nodes: ``N`` (negative endpoints are uniform in ``[0, N)``).
        k: negatives per positive (default 1).
        mode: ``"corrupt-dst"`` (default) or ``"uniform"``.
        seed: the stream (default 0); exclude: ``fn(u [M], v [M]) -> bool [M]``, True where
            ``(u, v)`` is a known positive (default: none; :func:`edge_membership` for one
            process); max_rounds: redraws of excluded negatives (default 3).

    Shapes:
        sample(src [B], dst [B], eid [B], epoch) -> (neg_src [B * k], neg_dst [B * k]); rows
        ``i*k .. i*k+k-1`` are the negatives of positive ``i``.
    """

    def __init__(
        self,
        num_nodes: int,
        k: int = 1,
        mode: str = "corrupt-dst",
        *,
        seed: int = 0,
        exclude: Callable[[Tensor, Tensor], Tensor] | None = None,
        max_rounds: int = 3,
    ):
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
            raise ValueError(f"NegativeSampler: num_nodes must be an int >= 1, got {num_nodes!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"NegativeSampler: k (--negatives) must be an int >= 1, got {k!r}")
        if mode not in NEG_MODES:
            raise ValueError(f"NegativeSampler: unknown mode {mode!r} (--neg-sampling); choose one of {', '.join(NEG_MODES)}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"NegativeSampler: seed must be an int, got {seed!r}")
        if exclude is not None and not callable(exclude):
            raise ValueError(f"NegativeSampler: exclude must be a callable fn(u, v) -> bool tensor, got "
                             f"{type(exclude).__name__}")
        if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 0:
            raise ValueError(f"NegativeSampler: max_rounds must be an int >= 0, got {max_rounds!r}")
        self.num_nodes, self.k, self.mode, self.seed = num_nodes, k, mode, seed
        self.exclude, self.max_rounds = exclude, max_rounds
        self._base = stream_key(seed, _NEG_STREAM)

    def _draw(self, keys: Tensor, j: Tensor, rnd: int, which: int) -> Tensor:
        """Node ids uniform in ``[0, N)`` for rows with keys ``keys [M]`` and draw numbers ``j [M]``."""
        d = (j + rnd * self.k) * 2 + which  # (M,) distinct per (j, round, endpoint)
        bits = mix64_(keys + (d + 1) * GAMMA)  # (M,)
        r = (bits & ((1 << 52) - 1)).to(torch.float64).mul_(2.0**-52)  # (M,) in [0, 1)
        return (r * self.num_nodes).to(torch.long)

    def sample(self, src: Tensor, dst: Tensor, eid: Tensor, epoch: int) -> tuple[Tensor, Tensor]:
        """The negatives of the positives ``src[i] -> dst[i]`` with global edge ids ``eid[i]`` at ``epoch``."""
        if not (isinstance(src, Tensor) and isinstance(dst, Tensor) and isinstance(eid, Tensor)):
            raise ValueError("NegativeSampler.sample: src, dst and eid must be tensors")
        if not (src.dim() == dst.dim() == eid.dim() == 1 and src.numel() == dst.numel() == eid.numel()):
            raise ValueError(f"NegativeSampler.sample: src, dst and eid must be [B] each, got {tuple(src.shape)}, "
                             f"{tuple(dst.shape)} and {tuple(eid.shape)}")
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise ValueError(f"NegativeSampler.sample: epoch must be an int, got {epoch!r}")
        k = self.k
        keys = node_keys(eid.to(torch.long), self._base, epoch).repeat_interleave(k)  # (B * k,)
        j = torch.arange(k, dtype=torch.long, device=eid.device).repeat(eid.numel())  # (B * k,)
        anchor = src.to(torch.long).repeat_interleave(k)  # (B * k,)

        def draw(rows: Tensor, rnd: int) -> tuple[Tensor, Tensor]:
            kk, jj = keys[rows], j[rows]
            v = self._draw(kk, jj, rnd, 0)
            u = self._draw(kk, jj, rnd, 1) if self.mode == "uniform" else anchor[rows]
            return u, v

        everything = torch.arange(keys.numel(), device=keys.device)
        neg_src, neg_dst = draw(everything, 0)
        if self.exclude is None:
            return neg_src, neg_dst
        todo = everything
        for rnd in range(1, self.max_rounds + 1):
            hit = self._excluded(neg_src[todo], neg_dst[todo])
            todo = todo[hit]
            if todo.numel() == 0:
                break
            neg_src[todo], neg_dst[todo] = draw(todo, rnd)
        return neg_src, neg_dst

    def _excluded(self, u: Tensor, v: Tensor) -> Tensor:
        hit = self.exclude(u, v)
        if not isinstance(hit, Tensor) or hit.dtype != torch.bool or hit.shape != u.shape:
            got = f"{hit.dtype} {tuple(hit.shape)}" if isinstance(hit, Tensor) else type(hit).__name__
            raise ValueError(f"NegativeSampler: exclude(u, v) must return a bool tensor [{u.numel()}], got {got}")
        return hit

    def __repr__(self) -> str:
        return (f"NegativeSampler(num_nodes={self.num_nodes}, k={self.k}, mode={self.mode!r}, seed={self.seed}, "
                f"exclude={self.exclude is not None}, max_rounds={self.max_rounds})")


def edge_membership(edge_index: Tensor, num_nodes: int) -> Callable[[Tensor, Tensor], Tensor]:
    """``fn(u [M], v [M]) -> bool [M]``: whether ``u -> v`` is an edge of ``edge_index [2, E]``
    (one process; a sorted key table and a binary search)."""
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError("edge_membership: edge_index must be a [2, E] tensor")
    n = int(num_nodes)
    table = torch.unique(edge_index[0].long() * n + edge_index[1].long())  # sorted (E',)

    def member(u: Tensor, v: Tensor) -> Tensor:
        key = u.long() * n + v.long()  # (M,)
        if table.numel() == 0:
            return torch.zeros(key.shape, dtype=torch.bool, device=key.device)
        pos = torch.searchsorted(table, key).clamp_(max=table.numel() - 1)
        return table[pos] == key

    return member
