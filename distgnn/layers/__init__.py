"""The distgnn layer set (PyTorch). Every layer reads neighbours only through
:class:`~distgnn.layers.base.MessagePassing`, so it runs unchanged on a whole graph, on dense
batches and on one part of a partitioned graph.
"""
from .agnn import AGNNConv
from .appnp import APPNPConv
from .arma import ARMAConv
from .base import MessagePassing
from .censnet import CensNetConv
from .cheb import ChebConv
from .crystal import CrystalConv
from .diffusion import DiffusionConv
from .ecc import ECCConv
from .edge_conv import EdgeConv
from .equilibrium import EquilibriumAggregation
from .feature_modulator import FeatureModulator
from .gat import GATConv
from .gated_graph import GatedGraphConv
from .gcn import GCNConv
from .gcs import GCSConv
from .general import GeneralConv
from .gin import GINConv
from .gin_batch import GINConvBatch
from .gtv import GTVConv
from .mem_pool import MemPooling
from .modes import ALL_MODES, Inputs, prepare
from .registry import REGISTRY, LayerEntry, register
from .sage import GraphSageConv
from .tag import TAGConv
from .utils import MLP, Dense, GraphBatchNorm, get_activation, get_initializer
from .xenet import XENetConv
from .xenet_batch import XENetConvBatch, XENetDenseConv

for _cls in (GCNConv, GraphSageConv, GATConv, GINConv, APPNPConv, ChebConv,
             CrystalConv, ECCConv, EdgeConv, GatedGraphConv, GeneralConv,
             AGNNConv, ARMAConv, DiffusionConv, TAGConv, GCSConv, GTVConv,
             XENetConv, XENetConvBatch, GINConvBatch, CensNetConv):
    register(_cls)
register(FeatureModulator, node_level=False, kind="edge")
register(MemPooling, node_level=False, kind="pooling")
register(EquilibriumAggregation, node_level=False, kind="aggregation")
from ..equivariant import MessagePass  # noqa: E402  (distgnn.equivariant does not import distgnn.layers)

register(MessagePass, kind="equivariant")

__all__ = [
    "AGNNConv",
    "ALL_MODES",
    "APPNPConv",
    "ARMAConv",
    "CensNetConv",
    "ChebConv",
    "CrystalConv",
    "Dense",
    "DiffusionConv",
    "ECCConv",
    "EdgeConv",
    "EquilibriumAggregation",
    "FeatureModulator",
    "GATConv",
    "GatedGraphConv",
    "GCNConv",
    "GCSConv",
    "GeneralConv",
    "GINConv",
    "GINConvBatch",
    "GraphBatchNorm",
    "GraphSageConv",
    "GTVConv",
    "MemPooling",
    "Inputs",
    "LayerEntry",
    "MLP",
    "MessagePassing",
    "REGISTRY",
    "TAGConv",
    "XENetConv",
    "XENetConvBatch",
    "XENetDenseConv",
    "get_activation",
    "get_initializer",
    "prepare",
    "register",
]
