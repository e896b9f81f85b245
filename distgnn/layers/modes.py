"""Data modes, turned into one internal layout so every layer is written once.

=========  ===================================  =============================================
mode       user input                           internal (node dimension first)
=========  ===================================  =============================================
single     ``x [N, F]``, ``a`` = edge_index      ``x [N, F]``, the graph
           ``[2, E]``, a graph, or a dense
           ``[N, N]`` / sparse COO adjacency
disjoint   as single, plus ``batch [N]``        as single (node layers ignore ``batch``)
mixed      ``x [B, N, F]``, one graph as above  ``x [N, B, F]``, the graph
batch      ``x [B, N, F]``, dense ``a [B, N,    ``x [B*N, F]``, the block-diagonal graph of the
           N]``, optional ``mask [B, N]``       nonzeros of ``a`` (masked nodes dropped)
=========  ===================================  =============================================

In a dense adjacency ``a[..., i, j] != 0`` is an edge ``j -> i`` with weight ``a[..., i, j]``.
In batch mode the outputs of masked nodes are zero.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..graph import Graph, GraphError, as_graph

ALL_MODES = ("single", "disjoint", "mixed", "batch")


@dataclass
class Inputs:
    """A layer's inputs in the internal layout (see the module docstring)."""

    x: Tensor
    graph: Graph
    edge_weight: Tensor | None
    e: Tensor | None
    mode: str
    batch_shape: tuple[int, int] | None = None  # (B, N) in batch mode
    mask: Tensor | None = None  # [B*N] bool in batch mode

    def restore(self, h: Tensor) -> Tensor:
        """Node outputs back to the user's layout: ``[N, *]``, ``[B, N, *]``."""
        if self.mode == "mixed":
            return h.transpose(0, 1)
        if self.mode == "batch":
            b, n = self.batch_shape
            if self.mask is not None:
                h = h * self.mask.view((-1,) + (1,) * (h.dim() - 1)).to(h.dtype)
            return h.reshape((b, n) + tuple(h.shape[1:]))
        return h


def _mode_error(layer: str, mode: str, modes) -> GraphError:
    return GraphError(f"{layer} does not support {mode} mode (supported: {', '.join(modes)})")


def prepare(
    layer: str,
    modes,
    x: Tensor,
    a,
    *,
    e: Tensor | None = None,
    edge_weight: Tensor | None = None,
    mask: Tensor | None = None,
) -> Inputs:
    """Validate a layer's inputs and bring them to the internal layout.

    Args:
        layer: the layer's class name, for error messages; modes: the modes it supports.
        x: node features ``[N, F]`` or ``[B, N, F]``.
        a: ``edge_index [2, E]``, a :class:`~distgnn.graph.Graph`, or a dense ``[N, N]`` /
            ``[B, N, N]`` (or sparse COO ``[N, N]``) adjacency.
        e: edge features aligned with the edges (``[E, S]``; ``[B, N, N, S]`` in batch mode).
        edge_weight: ``[E]`` edge weights (sparse inputs only; a dense ``a`` carries its weights).
        mask: ``[B, N]`` node mask (batch mode).
    """
    if not isinstance(x, Tensor) or x.dim() not in (2, 3):
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise GraphError(f"{layer}: x must be [N, F] or [B, N, F], got {shape}")
    if isinstance(a, Tensor) and a.is_floating_point() and a.layout == torch.strided:
        return _prepare_dense(layer, modes, x, a, e, edge_weight, mask)
    if isinstance(a, Tensor) and a.is_sparse:
        a = a.coalesce()
        if a.dim() != 2:
            raise GraphError(f"{layer}: a sparse adjacency must be [N, N], got {tuple(a.shape)}")
        if edge_weight is not None:
            raise GraphError(f"{layer}: edge_weight is taken from the values of a sparse adjacency")
        dst, src = a.indices()
        edge_weight = a.values()
        a = Graph(torch.stack([src, dst]), a.shape[0])
    if mask is not None:
        raise GraphError(f"{layer}: mask is only used in batch mode (x [B, N, F] with dense a [B, N, N])")
    if x.dim() == 2:
        mode, xi, n = "single", x, x.shape[0]
    else:
        mode, xi, n = "mixed", x.transpose(0, 1), x.shape[1]  # (N, B, F)
    if mode not in modes:
        raise _mode_error(layer, mode, modes)
    graph = as_graph(a, n)
    _check_edge_tensor(layer, "edge_weight", edge_weight, graph.num_edges, dim=1)
    _check_edge_tensor(layer, "e", e, graph.num_edges, dim=2)
    return Inputs(xi, graph, edge_weight, e, mode)


def _check_edge_tensor(layer: str, name: str, t: Tensor | None, num_edges: int, dim: int) -> None:
    if t is None:
        return
    if not isinstance(t, Tensor) or t.dim() != dim or t.shape[0] != num_edges:
        want = "[E]" if dim == 1 else "[E, S]"
        shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise GraphError(f"{layer}: {name} must be {want} with E={num_edges} (one row per edge), got {shape}")


def _prepare_dense(layer, modes, x, a, e, edge_weight, mask) -> Inputs:
    if edge_weight is not None:
        raise GraphError(f"{layer}: edge_weight is taken from the values of a dense adjacency")
    if a.dim() == 2:
        if mask is not None:
            raise GraphError(f"{layer}: mask is only used in batch mode (dense a [B, N, N])")
        graph, w = Graph.from_dense(a)
        if e is not None:
            if e.dim() != 3 or e.shape[:2] != a.shape:
                raise GraphError(f"{layer}: with a dense a [N, N], e must be [N, N, S], got {tuple(e.shape)}")
            dst, src = graph.edge_index[1], graph.edge_index[0]
            e = e[dst, src]
        if x.dim() == 2:
            mode, xi = "single", x
        else:
            mode, xi = "mixed", x.transpose(0, 1)
        if mode not in modes:
            raise _mode_error(layer, mode, modes)
        if xi.shape[0] != graph.num_nodes:
            raise GraphError(f"{layer}: x has {xi.shape[0]} nodes but a is {tuple(a.shape)}")
        return Inputs(xi, graph, w, e, mode)
    if a.dim() != 3:
        raise GraphError(f"{layer}: a dense adjacency must be [N, N] or [B, N, N], got {tuple(a.shape)}")
    if "batch" not in modes:
        raise _mode_error(layer, "batch", modes)
    b, n = a.shape[0], a.shape[1]
    if a.shape[2] != n or x.dim() != 3 or x.shape[:2] != (b, n):
        raise GraphError(f"{layer}: batch mode needs x [B, N, F] and a [B, N, N], got {tuple(x.shape)} and {tuple(a.shape)}")
    flat_mask = None
    if mask is not None:
        if mask.shape != (b, n):
            raise GraphError(f"{layer}: mask must be [B, N] = {(b, n)}, got {tuple(mask.shape)}")
        mask = mask.to(torch.bool)
        a = a * (mask.unsqueeze(2) & mask.unsqueeze(1)).to(a.dtype)
        flat_mask = mask.reshape(-1)
    bi, di, si = a.nonzero(as_tuple=True)
    w = a[bi, di, si]
    edge_index = torch.stack([bi * n + si, bi * n + di])
    if e is not None:
        if e.dim() != 4 or e.shape[:3] != a.shape:
            raise GraphError(f"{layer}: in batch mode e must be [B, N, N, S], got {tuple(e.shape)}")
        e = e[bi, di, si]
    graph = Graph(edge_index, b * n, validate=False)
    return Inputs(x.reshape(b * n, x.shape[-1]), graph, w, e, "batch", (b, n), flat_mask)
