"""distgnn: graph neural networks on graphs too large for one GPU.

``distgnn.layers`` is a complete GNN layer set for ordinary single-device use; the same layers
run on a partitioned graph (``distgnn.graph``) with halo exchange and give the same outputs and
gradients as on the whole graph.
"""
__version__ = "0.1.0"

from . import ops  # noqa: E402  (ops before graph users; ops imports graph lazily where needed)
from .graph import Graph, PartitionedGraph, as_graph, run_parts, split_graph  # noqa: E402

__all__ = ["Graph", "PartitionedGraph", "as_graph", "ops", "run_parts", "split_graph", "__version__"]
