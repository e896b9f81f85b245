"""Segment reductions over dimension 0 with native torch kernels.

``scatter(src, index, dim_size, reduce)`` reduces the rows of ``src [E, *]`` into ``dim_size``
segments given by ``index [E]``: ``out[i] = reduce_{e : index[e] = i} src[e]``. Every reduction
gives 0 for an empty segment (a node with no incoming edge aggregates to 0).

Backends: ``index_add_`` for sum/mean and ``scatter_reduce`` for max/min/prod. torch-scatter is not
used: on CPU its sum/mean call the same kernels and its max is slower
(``benchmarks/ops.py`` measures it when installed).
"""
from __future__ import annotations

from typing import Callable, Union

import torch
from torch import Tensor

REDUCTIONS = ("sum", "mean", "max", "min", "prod")
Reduce = Union[str, Callable[[Tensor, Tensor, int], Tensor]]


def _expand_index(index: Tensor, like: Tensor) -> Tensor:
    """``index [E]`` broadcast to ``like``'s shape, for ``scatter_reduce`` along dim 0."""
    return index.view((-1,) + (1,) * (like.dim() - 1)).expand_as(like)


def scatter_sum(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    out = src.new_zeros((dim_size,) + tuple(src.shape[1:]))
    return out.index_add(0, index, src)  # (N, *)


def count(index: Tensor, dim_size: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Number of entries per segment, ``[dim_size]``."""
    return torch.bincount(index, minlength=dim_size).to(dtype)


def scatter_mean(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    total = scatter_sum(src, index, dim_size)  # (N, *)
    n = count(index, dim_size, src.dtype).clamp_(min=1)
    return total / n.view((-1,) + (1,) * (src.dim() - 1))


def _scatter_reduce(src: Tensor, index: Tensor, dim_size: int, how: str) -> Tensor:
    # include_self=False: the initial zeros only survive in empty segments, which is exactly
    # the "0 for an empty segment" rule.
    out = src.new_zeros((dim_size,) + tuple(src.shape[1:]))
    return out.scatter_reduce(0, _expand_index(index, src), src, how, include_self=False)


def scatter_max(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    return _scatter_reduce(src, index, dim_size, "amax")


def scatter_min(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    return _scatter_reduce(src, index, dim_size, "amin")


def scatter_prod(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    return _scatter_reduce(src, index, dim_size, "prod")


_FUNCS = {
    "sum": scatter_sum,
    "add": scatter_sum,
    "mean": scatter_mean,
    "max": scatter_max,
    "min": scatter_min,
    "prod": scatter_prod,
}


def check_reduce(reduce: Reduce, owner: str = "aggregate") -> Reduce:
    """Validate a reduction name or callable once, at construction time."""
    if callable(reduce):
        return reduce
    if reduce not in _FUNCS:
        raise ValueError(
            f"{owner} must be one of {', '.join(REDUCTIONS)} or a callable f(messages, index, n_nodes), "
            f"got {reduce!r}"
        )
    return "sum" if reduce == "add" else reduce


def scatter(src: Tensor, index: Tensor, dim_size: int, reduce: Reduce = "sum") -> Tensor:
    """Reduce ``src [E, *]`` into ``[dim_size, *]`` by ``index [E]``; empty segments give 0."""
    if callable(reduce):
        return reduce(src, index, dim_size)
    try:
        fn = _FUNCS[reduce]
    except KeyError:
        check_reduce(reduce)
        raise
    return fn(src, index, dim_size)


def segment_softmax(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    """Numerically stable softmax of ``src [E, *]`` within each segment of ``index``.

    ``out[e] = exp(src[e] - m) / sum_{e' : index[e'] = index[e]} exp(src[e'] - m)`` with ``m`` the
    segment maximum (detached: the result does not depend on it).
    """
    seg_max = scatter_max(src.detach(), index, dim_size)  # (N, *)
    z = (src - seg_max.index_select(0, index)).exp()  # (E, *)
    denom = scatter_sum(z, index, dim_size).index_select(0, index)  # (E, *)
    return z / denom
