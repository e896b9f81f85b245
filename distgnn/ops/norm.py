"""Self-loops and adjacency normalisations, computed through the graph contract.

Each function takes an ``edge_index [2, E]`` or a graph and optional edge weights ``[E]`` (aligned
with the graph's edges) and returns edge weights of the normalised matrix. Degrees are in-degrees
(row sums of ``A`` with ``A[i, j]`` the edge ``j -> i``) of the WHOLE graph, also on a partition:
source-side degrees of halo nodes come from their owners through ``gather_src``.

=====================  ===============================================================
``remove_self_loops``  drop loops; ``add_self_loops``: exactly one loop per node
``gcn_norm``           ``D̂^-1/2 (A + I) D̂^-1/2``, remaining self-loops added first
``sym_norm``           ``D^-1/2 A D^-1/2``, no loops added; zero-degree nodes give 0
``rw_norm``            ``D^-1 A`` (row-normalised random walk), no loops added
``scaled_laplacian``   ``L̃ = (2 / lambda_max) (I - sym(A)) - I``, loops appended
=====================  ===============================================================

Unweighted results are cached on the graph object (never on a layer).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..graph import Graph, as_graph


def _inv_pow(deg: Tensor, p: float) -> Tensor:
    out = deg.pow(-p)
    return out.masked_fill_(deg == 0, 0.0)


def _cat_edges(*weights: Tensor) -> Tensor:
    """``torch.cat`` of edge weights ``[E_k, *]`` along the edges, with every piece kept in the
    autograd graph even when it is empty: ``torch.cat``'s backward drops a 1-D empty input, so on
    a part with no edges the first derivative w.r.t. its (empty) weights would not depend on the
    halo exchange the other parts' do, and a second derivative would leave that part out of a
    collective the others make."""
    return torch.cat([w.unsqueeze(-1) for w in weights]).squeeze(-1)  # (sum E_k, *)


def _loop_free(g: Graph) -> tuple[Graph, Tensor]:
    """``(g without its self-loops, keep mask [E])``, cached on ``g``."""

    def build():
        keep = g.edge_index[0] != g.edge_index[1]  # on a partition, halo ids never equal owned ids
        return g.with_edges(g.edge_index[:, keep]), keep

    return g.cached("without_self_loops", build)


def remove_self_loops(graph: Tensor | Graph, edge_weight: Tensor | None = None, *, num_nodes: int | None = None):
    """Drop every self-loop. Returns ``(graph_without_loops, edge_weight_without_loops)``; the
    weights are ``None`` when ``edge_weight`` is ``None``. Edge order is kept."""
    g, keep = _loop_free(as_graph(graph, num_nodes))
    return g, (None if edge_weight is None else edge_weight[keep])


def add_self_loops(
    graph: Tensor | Graph, edge_weight: Tensor | None = None, fill_value: float = 1.0, *, num_nodes: int | None = None
):
    """Remaining self-loops: every (owned) node gets exactly one loop of weight ``fill_value``.

    Existing loops are dropped and replaced (never doubled). Returns ``(graph_with_loops,
    edge_weight_with_loops)``; the weights are ``None`` when ``edge_weight`` is ``None``. The new
    edges are the kept edges in their original order followed by the loops ``0 .. N-1``.
    """
    g = as_graph(graph, num_nodes)

    def build():  # the loop-free edges are not cached on the way (16 bytes per edge less held)
        hit = g._cache.get("without_self_loops")
        src, dst = g.edge_index
        keep = hit[1] if hit is not None else src != dst  # (E,) halo ids never equal owned ids
        loops = torch.arange(g.num_nodes, device=g.device)  # (N,)
        kept = int(keep.sum())
        edges = torch.empty((2, kept + g.num_nodes), dtype=g.edge_index.dtype, device=g.device)  # (2, E' + N)
        torch.masked_select(src, keep, out=edges[0, :kept])
        torch.masked_select(dst, keep, out=edges[1, :kept])
        edges[:, kept:] = loops
        return g.with_edges(edges), keep

    g2, keep = g.cached("remaining_self_loops", build)
    if edge_weight is None:
        return g2, None
    w = _cat_edges(edge_weight[keep], edge_weight.new_full((g.num_nodes,), fill_value))  # (E' + N,)
    return g2, w


def append_self_loops(graph: Tensor | Graph, *, num_nodes: int | None = None) -> Graph:
    """The graph with one extra loop per owned node appended (existing loops are kept)."""
    g = as_graph(graph, num_nodes)

    def build():
        loops = torch.arange(g.num_nodes, device=g.device)
        return g.with_edges(torch.cat([g.edge_index, torch.stack([loops, loops])], 1))

    return g.cached("appended_self_loops", build)


def _scaled(g: Graph, edge_weight: Tensor | None, dtype: torch.dtype, p_src: float, p_dst: float) -> Tensor:
    """``w_e * deg[dst]^-p_dst * deg[src]^-p_src`` with whole-graph in-degrees."""
    deg = g.in_degree(edge_weight, dtype=dtype)  # (N,)
    src, dst = g.edge_index
    w = _inv_pow(deg, p_dst).index_select(0, dst)  # (E,)
    if p_src:
        # gathered as [N, 1] rows: a 1-D empty halo would drop out of torch.cat's backward, and
        # with it this part from the halo exchanges of a second derivative (see _cat_edges)
        inv_src = g.gather_src(_inv_pow(deg, p_src).unsqueeze(-1)).squeeze(-1)  # (N_src,)
        w = w * inv_src.index_select(0, src)
    return w if edge_weight is None else w * edge_weight


def _cached_norm(g: Graph, name: str, edge_weight: Tensor | None, dtype: torch.dtype, build):
    if edge_weight is None:
        return g.cached((name, dtype), build)
    return build()


def gcn_norm(
    graph: Tensor | Graph,
    edge_weight: Tensor | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    num_nodes: int | None = None,
) -> tuple[Graph, Tensor]:
    """``gcn(A) = D̂^-1/2 (A + I) D̂^-1/2``. Returns ``(graph_with_loops, weights [E + N])``."""
    g, w = add_self_loops(graph, edge_weight, num_nodes=num_nodes)
    dtype = edge_weight.dtype if edge_weight is not None else dtype
    return g, _cached_norm(g, "gcn_norm", w, dtype, lambda: _scaled(g, w, dtype, 0.5, 0.5))


def sym_norm(
    graph: Tensor | Graph,
    edge_weight: Tensor | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    num_nodes: int | None = None,
) -> Tensor:
    """``sym(A) = D^-1/2 A D^-1/2`` as weights ``[E]`` (no loops added; degree 0 gives 0)."""
    g = as_graph(graph, num_nodes)
    dtype = edge_weight.dtype if edge_weight is not None else dtype
    return _cached_norm(g, "sym_norm", edge_weight, dtype, lambda: _scaled(g, edge_weight, dtype, 0.5, 0.5))


def rw_norm(
    graph: Tensor | Graph,
    edge_weight: Tensor | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    num_nodes: int | None = None,
) -> Tensor:
    """``rw(A) = D^-1 A`` (each target's incoming weights sum to 1) as weights ``[E]``."""
    g = as_graph(graph, num_nodes)
    dtype = edge_weight.dtype if edge_weight is not None else dtype
    return _cached_norm(g, "rw_norm", edge_weight, dtype, lambda: _scaled(g, edge_weight, dtype, 0.0, 1.0))


def scaled_laplacian(
    graph: Tensor | Graph,
    edge_weight: Tensor | None = None,
    lambda_max: float = 2.0,
    *,
    dtype: torch.dtype = torch.float32,
    num_nodes: int | None = None,
) -> tuple[Graph, Tensor]:
    """``L̃ = (2 / lambda_max) (I - sym(A)) - I``. Returns ``(graph_with_loops, weights [E + N])``.

    The graph is the original edges (weights ``-(2 / lambda_max) sym(A)``) followed by one appended
    loop per node (weight ``2 / lambda_max - 1``); an existing loop of ``A`` simply adds to it.
    """
    if not lambda_max > 0:
        raise ValueError(f"lambda_max must be positive, got {lambda_max}")
    g = as_graph(graph, num_nodes)
    sym = sym_norm(g, edge_weight, dtype=dtype)
    scale = 2.0 / float(lambda_max)
    diag = sym.new_full((g.num_nodes,), scale - 1.0)
    return append_self_loops(g), _cat_edges(-scale * sym, diag)  # (E + N,)


def estimate_lambda_max(
    graph: Tensor | Graph,
    edge_weight: Tensor | None = None,
    *,
    iterations: int = 100,
    dtype=torch.float64,
    num_nodes: int | None = None,
) -> float:
    """Largest eigenvalue of ``I - sym(A)`` by power iteration (works on a partition too).

    The start vector depends only on global node ids, so every partition of a graph gives the
    same estimate up to rounding.
    """
    from .sparse import spmm

    g = as_graph(graph, num_nodes)
    ids = getattr(g, "node_ids", None)
    ids = torch.arange(g.num_nodes, device=g.device) if ids is None else ids
    v = (ids.to(dtype) * 1.2345).cos() + 1.5  # (N,)
    sym = sym_norm(g, None if edge_weight is None else edge_weight.to(dtype), dtype=dtype)
    lam = torch.zeros((), dtype=dtype)
    for _ in range(iterations):
        lv = v - spmm(g.csr(), sym, g.gather_src(v))  # (I - sym) v
        norm = g.all_reduce((lv * lv).sum()).sqrt()
        if norm == 0:
            return 0.0
        lam = g.all_reduce((v * lv).sum()) / g.all_reduce((v * v).sum())
        v = lv / norm
    return float(lam)
