"""Adjacency preprocessing, on a dense matrix or an ``edge_index``.

Every function accepts either a dense adjacency ``a [N, N]`` (``a[i, j]``: weight of the edge
``j -> i``) and returns a dense matrix, or an ``edge_index [2, E]`` (with optional
``edge_weight [E]`` and ``num_nodes``) and returns ``(edge_index, edge_weight)`` of the result.
Degrees are in-degrees (row sums), as in the layers.

distgnn's layers normalise the adjacency themselves, so these are for inspection, for feeding
other code, and for porting Spektral pipelines; do not pass their output to a layer that
normalises again (``GCNConv`` on ``gcn_filter(a)`` would normalise twice).

=============================  =====================================================
``degree_matrix``              ``D = diag(sum_j a_ij)``
``normalized_adjacency``       ``D^-1/2 A D^-1/2`` (``symmetric``) or ``D^-1 A``
``gcn_filter``                 ``D̂^-1/2 (A + I) D̂^-1/2``, remaining self-loops
``normalized_laplacian``       ``I - normalized_adjacency(A)``
``rescale_laplacian``          ``(2 / lambda_max) L - I`` (``lambda_max`` estimated if None)
``incidence_matrix``           ``T [N, M]``, ``T[n, m] = 1`` if node n is an endpoint of edge m
``line_graph``                 ``T^T T - 2 I`` (edges adjacent when they share a node)
=============================  =====================================================
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import ops
from ..graph import Graph, GraphError, as_graph

SparseResult = tuple[Tensor, Tensor]


def _is_dense(a) -> bool:
    return isinstance(a, Tensor) and a.is_floating_point() and a.dim() == 2


def _check_square(a: Tensor, fn: str) -> None:
    if a.shape[0] != a.shape[1]:
        raise GraphError(f"{fn}: a dense adjacency must be square [N, N], got {tuple(a.shape)}")


def _sparse(a, edge_weight, num_nodes, fn: str) -> tuple[Graph, Tensor]:
    g = as_graph(a, num_nodes)
    w = torch.ones(g.num_edges, dtype=torch.float32) if edge_weight is None else edge_weight
    if w.shape != (g.num_edges,):
        raise GraphError(f"{fn}: edge_weight must be [E] with E={g.num_edges}, got {tuple(w.shape)}")
    return g, w


def _with_diagonal(g: Graph, w: Tensor, diag: Tensor) -> SparseResult:
    loops = torch.arange(g.num_nodes)
    return torch.cat([g.edge_index, torch.stack([loops, loops])], 1), torch.cat([w, diag])


def degree_matrix(a, edge_weight: Tensor | None = None, num_nodes: int | None = None):
    """``D = diag(sum_j a_ij)``: dense ``[N, N]``, or the diagonal as ``(loops, degrees)``."""
    if _is_dense(a):
        _check_square(a, "degree_matrix")
        return torch.diag(a.sum(1))
    g, w = _sparse(a, edge_weight, num_nodes, "degree_matrix")
    loops = torch.arange(g.num_nodes)
    return torch.stack([loops, loops]), g.in_degree(w)


def normalized_adjacency(a, symmetric: bool = True, edge_weight: Tensor | None = None, num_nodes: int | None = None):
    """``D^-1/2 A D^-1/2`` when ``symmetric``, else ``D^-1 A``; zero-degree rows stay zero."""
    if _is_dense(a):
        _check_square(a, "normalized_adjacency")
        d = a.sum(1)
        if symmetric:
            inv = torch.where(d > 0, d.pow(-0.5), torch.zeros_like(d))
            return inv[:, None] * a * inv[None, :]
        inv = torch.where(d > 0, 1.0 / d, torch.zeros_like(d))
        return inv[:, None] * a
    g, w = _sparse(a, edge_weight, num_nodes, "normalized_adjacency")
    norm = ops.sym_norm if symmetric else ops.rw_norm
    return g.edge_index, norm(g, w)


def gcn_filter(a, symmetric: bool = True, edge_weight: Tensor | None = None, num_nodes: int | None = None):
    """``D̂^-1/2 (A + I) D̂^-1/2`` (or ``D̂^-1 (A + I)``) with remaining self-loops of weight 1."""
    if _is_dense(a):
        _check_square(a, "gcn_filter")
        a_hat = a.clone()
        a_hat.fill_diagonal_(1.0)
        return normalized_adjacency(a_hat, symmetric)
    g, w = _sparse(a, edge_weight, num_nodes, "gcn_filter")
    if symmetric:
        g2, w2 = ops.gcn_norm(g, w)
        return g2.edge_index, w2
    g2, w2 = ops.add_self_loops(g, w)
    return g2.edge_index, ops.rw_norm(g2, w2)


def normalized_laplacian(a, symmetric: bool = True, edge_weight: Tensor | None = None, num_nodes: int | None = None):
    """``I - normalized_adjacency(A)``."""
    if _is_dense(a):
        return torch.eye(a.shape[0], dtype=a.dtype) - normalized_adjacency(a, symmetric)
    g, w = _sparse(a, edge_weight, num_nodes, "normalized_laplacian")
    _, nw = normalized_adjacency(g, symmetric, w)
    return _with_diagonal(g, -nw, torch.ones(g.num_nodes, dtype=nw.dtype))


def rescale_laplacian(lap, lambda_max: float | None = None, edge_weight: Tensor | None = None, num_nodes: int | None = None):
    """``(2 / lambda_max) L - I`` for a Laplacian ``L``; ``lambda_max=None`` estimates it
    (exact eigenvalues for a dense ``L``, power iteration for a sparse one)."""
    if _is_dense(lap):
        _check_square(lap, "rescale_laplacian")
        if lambda_max is None:
            lambda_max = float(torch.linalg.eigvals(lap.double()).real.max())
        _check_lambda(lambda_max)
        return (2.0 / lambda_max) * lap - torch.eye(lap.shape[0], dtype=lap.dtype)
    g, w = _sparse(lap, edge_weight, num_nodes, "rescale_laplacian")
    if lambda_max is None:
        lambda_max = _power_iteration(g, w)
    _check_lambda(lambda_max)
    return _with_diagonal(g, (2.0 / lambda_max) * w, -torch.ones(g.num_nodes, dtype=w.dtype))


def _check_lambda(lam: float) -> None:
    if not lam > 0:
        raise ValueError(f"rescale_laplacian: lambda_max must be positive, got {lam}")


def _power_iteration(g: Graph, w: Tensor, iterations: int = 200) -> float:
    v = torch.linspace(1.0, 2.0, g.num_nodes, dtype=torch.float64)
    lam = 0.0
    for _ in range(iterations):
        lv = ops.spmm(g.csr(), w.double(), v)
        norm = float(lv.norm())
        if norm == 0:
            return 0.0
        lam = float(v @ lv) / float(v @ v)
        v = lv / norm
    return lam


def _undirected_edges(a, num_nodes: int | None) -> tuple[Tensor, int]:
    """Each undirected edge once, as ``[2, M]`` with ``row 0 <= row 1``, sorted; loops dropped."""
    if _is_dense(a):
        _check_square(a, "incidence_matrix")
        n = a.shape[0]
        dst, src = (a + a.t()).nonzero(as_tuple=True)
        ei = torch.stack([src, dst])
    else:
        g = as_graph(a, num_nodes)
        n, ei = g.num_nodes, g.edge_index
    lo, hi = torch.minimum(ei[0], ei[1]), torch.maximum(ei[0], ei[1])
    keep = lo != hi
    pairs = torch.unique(torch.stack([lo[keep], hi[keep]]), dim=1)
    return pairs, n


def incidence_matrix(a, num_nodes: int | None = None) -> Tensor:
    """Node-edge incidence ``T [N, M]`` of the undirected graph of ``a`` (each edge once, sorted
    by (min, max) endpoint; self-loops and multi-edges dropped): ``T[n, m] = 1`` when node ``n``
    is an endpoint of edge ``m``. Dense output."""
    pairs, n = _undirected_edges(a, num_nodes)
    t = torch.zeros(n, pairs.shape[1])
    m = torch.arange(pairs.shape[1])
    t[pairs[0], m] = 1.0
    t[pairs[1], m] = 1.0
    return t


def line_graph(incidence: Tensor) -> Tensor:
    """``T^T T - 2 I`` for an incidence matrix ``T [N, M]``: ``[M, M]``, entry 1 when two edges share
    a node (2 if they share both, i.e. parallel edges)."""
    if incidence.dim() != 2:
        raise GraphError(f"line_graph: the incidence matrix must be [N, M], got {tuple(incidence.shape)}")
    return incidence.t() @ incidence - 2.0 * torch.eye(incidence.shape[1], dtype=incidence.dtype)
