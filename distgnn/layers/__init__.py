"""The distgnn layer set (PyTorch). Every layer reads neighbours only through
:class:`~distgnn.layers.base.MessagePassing`, so it runs unchanged on a whole graph, on dense
batches and on one part of a partitioned graph.
"""
from .appnp import APPNPConv
from .base import MessagePassing
from .cheb import ChebConv
from .gat import GATConv
from .gcn import GCNConv
from .gin import GINConv
from .modes import ALL_MODES, Inputs, prepare
from .registry import REGISTRY, LayerEntry, register
from .sage import GraphSageConv
from .utils import MLP, Dense, GraphBatchNorm, get_activation, get_initializer

for _cls in (GCNConv, GraphSageConv, GATConv, GINConv, APPNPConv, ChebConv):
    register(_cls)

__all__ = [
    "ALL_MODES",
    "APPNPConv",
    "ChebConv",
    "Dense",
    "GATConv",
    "GCNConv",
    "GINConv",
    "GraphBatchNorm",
    "GraphSageConv",
    "Inputs",
    "LayerEntry",
    "MLP",
    "MessagePassing",
    "REGISTRY",
    "get_activation",
    "get_initializer",
    "prepare",
    "register",
]
