"""Tensor operations behind the layers: segment reductions, sparse products, degrees, norms."""
from .scatter import (
    REDUCTIONS,
    check_reduce,
    count,
    scatter,
    scatter_max,
    scatter_mean,
    scatter_min,
    scatter_prod,
    scatter_sum,
    segment_softmax,
)
from .sparse import CSR, spmm
from .norm import (
    add_self_loops,
    append_self_loops,
    estimate_lambda_max,
    gcn_norm,
    remove_self_loops,
    rw_norm,
    scaled_laplacian,
    sym_norm,
)


def degree(index, num_nodes: int, weight=None, dtype=None):
    """``[num_nodes]`` number (or weight sum) of entries of ``index [E]`` per node.

    ``degree(edge_index[1], N)`` is the in-degree, ``degree(edge_index[0], N)`` the out-degree.
    """
    import torch

    if weight is None:
        return torch.bincount(index, minlength=num_nodes).to(dtype or torch.float32)
    return weight.new_zeros(num_nodes).index_add(0, index, weight)


def in_degree(graph, edge_weight=None, dtype=None):
    """In-degree ``[N]`` of an ``edge_index`` or graph (whole-graph degrees on a partition)."""
    import torch

    from ..graph import as_graph

    return as_graph(graph).in_degree(edge_weight, dtype=dtype or torch.float32)


def out_degree(graph, edge_weight=None, dtype=None):
    """Out-degree ``[N]`` of an ``edge_index`` or graph (whole-graph degrees on a partition)."""
    import torch

    from ..graph import as_graph

    return as_graph(graph).out_degree(edge_weight, dtype=dtype or torch.float32)


__all__ = [
    "REDUCTIONS",
    "CSR",
    "add_self_loops",
    "append_self_loops",
    "check_reduce",
    "count",
    "degree",
    "estimate_lambda_max",
    "gcn_norm",
    "in_degree",
    "out_degree",
    "remove_self_loops",
    "rw_norm",
    "scaled_laplacian",
    "scatter",
    "scatter_max",
    "scatter_mean",
    "scatter_min",
    "scatter_prod",
    "scatter_sum",
    "segment_softmax",
    "spmm",
    "sym_norm",
]
