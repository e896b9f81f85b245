"""Edge splits for link prediction: training edges, validation/test positives and fixed negatives.

The split of an edge is a pure function of its endpoints and a seed, so it can be computed chunk by
chunk while streaming an edge table (the partitioner does) and gives the same answer in one process
(:func:`split_links`):

* ``r = uniform(mix64(mix64(min(u, v) XOR stream(seed)) + (max(u, v) + 1) * GAMMA))`` in ``[0, 1)``
  (the counter-based generator of :mod:`distgnn.sampling.rng`);
* split ``0`` (train) when ``r < f_train``, ``1`` (val) when ``r < f_train + f_val``, else ``2``
  (test).

Both directions of an undirected pair (and duplicate edges) therefore always land in the same
split. The fractions are met in expectation (each pair is an independent draw), not exactly.

Every validation/test edge is a *positive* of its own query; ``k`` fixed negatives per positive
(:func:`eval_negatives`) keep its source and draw a destination uniformly over all ``N`` nodes,
keyed by ``(seed, query id, j)``, so evaluation is reproducible and independent of how the graph is
partitioned. Negatives are not filtered against the graph's edges (a random pair is an edge with
probability ``E / N²``); this keeps them streamable.

Training edges keep the input order and are renumbered ``0..E_train-1`` (their edge ids: a
partition's ``eid`` column and the key of their training negatives). Query ids number the
validation and test positives together, ``0, 1, ...`` in input order. The candidate table (:class:`LinkSplit`) lists, for each query in order, its positive then
its ``k`` negatives.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..sampling.rng import GAMMA, draw_bits, mix64_, node_keys
from .dataset import DataError, GraphData

__all__ = [
    "SPLIT_TRAIN",
    "SPLIT_VAL",
    "SPLIT_TEST",
    "SPLIT_NAMES",
    "LinkSplit",
    "edge_split_codes",
    "eval_negatives",
    "parse_edge_split",
    "split_codes_from_column",
    "split_links",
]

SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST = 0, 1, 2
SPLIT_NAMES = ("train", "val", "test")

# stream "hops" of the counter-based generator reserved for link splits (node sampling uses 0..L-1)
_SPLIT_STREAM = 1_000_001
_NEGATIVE_STREAM = 1_000_002


def _check_fractions(fractions: Sequence[float], where: str = "edge split") -> tuple[float, float, float]:
    try:
        f = tuple(float(v) for v in fractions)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be three numbers train,val,test such as 0.85,0.05,0.10, got {fractions!r}") from None
    if len(f) != 3 or any(not (0.0 <= v <= 1.0) for v in f):
        raise ValueError(f"{where} must be three fractions in [0, 1] (train,val,test such as 0.85,0.05,0.10), got "
                         f"{fractions!r}")
    if abs(sum(f) - 1.0) > 1e-6:
        raise ValueError(f"{where} fractions must sum to 1, got {fractions!r} (sum {sum(f):g})")
    return f


def parse_edge_split(text: str) -> tuple[float, float, float]:
    """``"0.85,0.05,0.10"`` -> ``(0.85, 0.05, 0.1)``: three fractions in ``[0, 1]`` summing to 1
    (within 1e-6); a one-line ``ValueError`` naming ``--edge-split`` otherwise."""
    parts = str(text).split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"--edge-split must be three numbers train,val,test such as 0.85,0.05,0.10, got {text!r}") from None
    return _check_fractions(values, "--edge-split")


def _as_long(a) -> Tensor:
    if isinstance(a, Tensor):
        return a.to(torch.long).reshape(-1)
    return torch.from_numpy(np.array(a, dtype=np.int64, copy=True).reshape(-1))  # writable


def _uniform(bits: Tensor) -> Tensor:
    """Floats uniform in ``[0, 1)`` from the low 52 bits of int64 bit patterns."""
    return (bits & ((1 << 52) - 1)).to(torch.float64).mul_(2.0**-52)


def edge_split_codes(src, dst, fractions: Sequence[float], seed: int) -> np.ndarray:
    """The split code (0 train, 1 val, 2 test) of every edge ``src[i] -> dst[i]``.

    Args:
        src, dst: ``[E]`` integer node ids (NumPy arrays or tensors; original ids).
        fractions: ``(train, val, test)`` summing to 1.
        seed: the split's seed.

    Returns:
        ``[E]`` int8 NumPy array; a pure function of ``(min(u, v), max(u, v), seed)`` per edge.
    """
    f = _check_fractions(fractions)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"edge split seed must be an int, got {seed!r}")
    u, v = _as_long(src), _as_long(dst)
    if u.shape != v.shape:
        raise ValueError(f"edge split: src and dst differ in length ({u.numel()} vs {v.numel()})")
    lo, hi = torch.minimum(u, v), torch.maximum(u, v)
    key = node_keys(lo, seed, _SPLIT_STREAM)  # (E,)
    key += (hi + 1) * GAMMA  # wraps modulo 2**64
    r = _uniform(mix64_(key))  # (E,) in [0, 1)
    codes = (r >= f[0]).to(torch.int8) + (r >= f[0] + f[1]).to(torch.int8)
    return codes.numpy()


def eval_negatives(src, dst, k: int, num_nodes: int, seed: int, *, query=None) -> tuple[np.ndarray, np.ndarray]:
    """``k`` fixed negatives per evaluation positive: ``(src, random node)``.

    Args:
        src, dst: ``[P]`` the positives (original ids; ``dst`` only fixes the length).
        k: negatives per positive (>= 0); num_nodes: ``N`` (destinations uniform in ``[0, N)``).
        seed: the split's seed.
        query: ``[P]`` the positives' query ids (default ``0..P-1``); negative ``j`` of query ``q``
            is keyed by ``(seed, q, j)``, so a chunk of positives streamed with its query ids gets
            the same negatives as the whole table.

    Returns:
        ``(neg_src, neg_dst)``, ``[P * k]`` int64 each; rows ``i*k .. i*k+k-1`` belong to positive ``i``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"--eval-negatives must be an int >= 0, got {k!r}")
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
        raise ValueError(f"eval negatives need num_nodes >= 1, got {num_nodes!r}")
    s, d = _as_long(src), _as_long(dst)
    if s.shape != d.shape:
        raise ValueError(f"eval negatives: src and dst differ in length ({s.numel()} vs {d.numel()})")
    q = torch.arange(s.numel(), dtype=torch.long) if query is None else _as_long(query)
    if q.shape != s.shape:
        raise ValueError(f"eval negatives: query has {q.numel()} ids for {s.numel()} positives")
    if k == 0 or s.numel() == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy()
    bits = draw_bits(node_keys(q, seed, _NEGATIVE_STREAM), k).t()  # (P, k)
    neg_dst = (_uniform(bits) * num_nodes).to(torch.long).reshape(-1)  # (P * k,)
    neg_src = s.repeat_interleave(k)  # (P * k,)
    return neg_src.numpy(), neg_dst.numpy()


def split_codes_from_column(values, where: str = "split column", first_row: int = 0) -> np.ndarray:
    """An edge table's split column as codes: ``train``/``val``/``test`` (strings, any case) or
    the integers ``0``/``1``/``2`` -> ``[E]`` int8; a one-line ``ValueError`` naming the first bad row
    (counted from ``first_row``)."""
    a = np.asarray(values)
    if a.dtype.kind in "iu":
        codes = a.astype(np.int64)
        bad = np.flatnonzero((codes < 0) | (codes > 2))
        if bad.size:
            raise ValueError(f"{where}: value {int(codes[bad[0]])} at row {first_row + int(bad[0])} is not 0 (train), 1 (val) or "
                             "2 (test)")
        return codes.astype(np.int8)
    if a.dtype.kind in "OUS":
        text = np.char.lower(a.astype(str))
        codes = np.full(len(text), -1, dtype=np.int8)
        for code, name in enumerate(SPLIT_NAMES):
            codes[text == name] = code
        bad = np.flatnonzero(codes < 0)
        if bad.size:
            raise ValueError(f"{where}: value {a[bad[0]]!r} at row {first_row + int(bad[0])} is not train, val or test")
        return codes
    raise ValueError(f"{where}: must hold train/val/test or 0/1/2, got {a.dtype} values")


@dataclass
class LinkSplit:
    """The evaluation side of a link split (the single-process view of a partition's
    ``link_edges.parquet`` files, in original node ids).

    Fields:
        train_edge_index ``[2, E_train]`` int64: the message-passing graph and the training
            positives (the input's training edges in input order).
        train_eid ``[E_train]`` int64: the training edges' ids, ``0..E_train-1`` in input order
            (the ``eid`` column a partition stores; the key of their training negatives).
        src, dst ``[M]`` int64: evaluation candidates, ``M = P * (1 + k)``: for each query its
            positive, then its ``k`` negatives.
        split ``[M]`` int8: 1 validation, 2 test (a negative takes its positive's split).
        label ``[M]`` int8: 1 positive, 0 negative.
        query ``[M]`` int64: the query id shared by a positive and its negatives.
        fractions, seed, eval_negatives: how the split was made.
    """

    train_edge_index: Tensor
    train_eid: Tensor
    src: Tensor
    dst: Tensor
    split: Tensor
    label: Tensor
    query: Tensor
    fractions: tuple[float, float, float] = (0.85, 0.05, 0.10)
    seed: int = 0
    eval_negatives: int = 1

    def counts(self) -> dict[str, int]:
        """Positive edges per split (``train``: training edges)."""
        pos = self.label == 1
        return {"train": int(self.train_eid.numel()), "val": int((pos & (self.split == SPLIT_VAL)).sum()),
                "test": int((pos & (self.split == SPLIT_TEST)).sum())}

    def candidates(self, split: int | str) -> dict[str, Tensor]:
        """The rows of one split (``1``/``"val"`` or ``2``/``"test"``): keys src, dst, label, query."""
        code = SPLIT_NAMES.index(split) if isinstance(split, str) else int(split)
        rows = self.split == code
        return {"src": self.src[rows], "dst": self.dst[rows], "label": self.label[rows], "query": self.query[rows]}

    def __repr__(self) -> str:
        c = self.counts()
        return (f"LinkSplit(train={c['train']}, val={c['val']}, test={c['test']}, "
                f"eval_negatives={self.eval_negatives}, seed={self.seed})")


def candidate_table(src: np.ndarray, dst: np.ndarray, codes: np.ndarray, query: np.ndarray, k: int,
                    num_nodes: int, seed: int) -> dict[str, np.ndarray]:
    """The candidate rows of evaluation positives (original ids): each positive then its ``k``
    negatives. ``src``/``dst``/``codes``/``query`` are ``[P]``; returns columns of ``[P * (1 + k)]``
    (src, dst, split, label, query). Shared by :func:`split_links` and the partitioner."""
    p = int(src.shape[0])
    neg_src, neg_dst = eval_negatives(src, dst, k, num_nodes, seed, query=query)
    out_src = np.empty((p, 1 + k), dtype=np.int64)
    out_dst = np.empty((p, 1 + k), dtype=np.int64)
    out_src[:, 0], out_dst[:, 0] = src, dst
    out_src[:, 1:], out_dst[:, 1:] = neg_src.reshape(p, k), neg_dst.reshape(p, k)
    label = np.zeros((p, 1 + k), dtype=np.int8)
    label[:, 0] = 1
    return {
        "src": out_src.reshape(-1),
        "dst": out_dst.reshape(-1),
        "split": np.repeat(np.asarray(codes, dtype=np.int8), 1 + k),
        "label": label.reshape(-1),
        "query": np.repeat(np.asarray(query, dtype=np.int64), 1 + k),
    }


def split_links(
    data: GraphData,
    fractions: Sequence[float] = (0.85, 0.05, 0.10),
    *,
    seed: int = 0,
    eval_negatives: int = 1,
    codes: np.ndarray | None = None,
) -> tuple[GraphData, LinkSplit]:
    """Split the edges of ``data`` for link prediction (see the module docstring).

    Args:
        data: the graph (original ids); its edge list order defines the original edge ids.
        fractions: ``(train, val, test)``, default ``(0.85, 0.05, 0.10)``.
        seed: the split's seed (default 0); eval_negatives: ``k`` fixed negatives per evaluation
            positive (default 1).
        codes: ``[E]`` split codes given with the data (0 train, 1 val, 2 test; e.g. an edge
            table's split column, :func:`split_codes_from_column`) instead of the hash; then
            ``fractions`` is not used (the negatives are still keyed by ``seed``).

    Returns:
        ``(train_data, split)``: ``data`` with ``edge_index`` (and ``edge_attr``) restricted to the
        training edges, and the :class:`LinkSplit`.

    Shapes:
        data.edge_index ``[2, E]`` -> train_data.edge_index ``[2, E_train]``;
        split.src/dst/split/label/query ``[P * (1 + k)]`` with ``P = E - E_train``.
    """
    if not isinstance(data, GraphData):
        raise DataError(f"split_links needs a GraphData, got {type(data).__name__}")
    src, dst = data.edge_index[0].numpy(), data.edge_index[1].numpy()
    if codes is None:
        f = _check_fractions(fractions)
        codes = edge_split_codes(src, dst, f, seed)  # (E,)
    else:
        codes = np.asarray(codes)
        if codes.shape != src.shape or codes.dtype.kind not in "iu" or (codes.size and not (
                codes.min() >= 0 and codes.max() <= 2)):
            raise DataError(f"split_links: codes must be [E] = [{src.size}] integers 0, 1 or 2 (0 train, 1 val, 2 "
                            "test)")
        codes = codes.astype(np.int8)
        share = np.bincount(codes, minlength=3) / max(codes.size, 1)
        f = tuple(round(float(v), 6) for v in share)
    train = codes == SPLIT_TRAIN
    evals = np.nonzero(~train)[0]  # (P,) original edge ids, ascending
    table = candidate_table(src[evals], dst[evals], codes[evals], np.arange(evals.size, dtype=np.int64),
                            eval_negatives, max(data.num_nodes, 1), seed)
    keep = torch.from_numpy(train)
    train_eid = torch.arange(int(train.sum()), dtype=torch.long)
    edge_attr = data.edge_attr[keep] if data.edge_attr is not None else None
    train_data = data.with_(edge_index=data.edge_index[:, keep], edge_attr=edge_attr)
    split = LinkSplit(
        train_edge_index=train_data.edge_index, train_eid=train_eid,
        **{name: torch.from_numpy(col) for name, col in table.items()},
        fractions=f, seed=seed, eval_negatives=eval_negatives,
    )
    return train_data, split
