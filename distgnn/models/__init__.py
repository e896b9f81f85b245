"""Models: ready-made stacks (``gcn``, ``sage``, ``gat``), a stack of any registered node-level
convolution (:class:`LayerStack`) and :func:`model_builder`, which turns a CLI/API model spec into
``build(in_channels, out_channels) -> nn.Module``.

Every model is ``forward(x [N, F], graph, **inputs) -> [N, out_channels]`` and runs unchanged on a
whole graph or on one part of a partitioned graph; ``e=`` (edge features ``[E, S]`` in the graph's
edge order) is passed only to models whose forward takes ``e``.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import GATConv, GCNConv, GraphSageConv
from ..layers.utils import check_positive_int, check_rate, dropout


class _Stack(nn.Module):
    first_layer_weight_decay_only = False

    def __init__(self, num_layers: int, dropout: float, owner: str):
        super().__init__()
        self.num_layers = check_positive_int(num_layers, "num_layers", owner)
        self.dropout = check_rate(dropout, "dropout", owner)
        self.convs = nn.ModuleList()

    def forward(self, x: Tensor, graph) -> Tensor:
        for i, conv in enumerate(self.convs):
            x = dropout(x, self.dropout, self.training)
            x = conv(x, graph)  # (N, hidden) ... (N, classes)
            if i < len(self.convs) - 1:
                x = self.hidden_activation(x)
        return x

    def hidden_activation(self, x: Tensor) -> Tensor:
        return F.relu(x)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Optimizer groups: weight decay on every layer, or on the first only (Kipf & Welling)."""
        if not self.first_layer_weight_decay_only:
            return [{"params": list(self.parameters()), "weight_decay": weight_decay}]
        first = list(self.convs[0].parameters())
        rest = [p for conv in self.convs[1:] for p in conv.parameters()]
        return [{"params": first, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


class GCN(_Stack):
    """``num_layers`` GCNConv layers with ReLU and dropout (Kipf & Welling, 2017).

    As in the paper, weight decay applies to the first layer only (see :meth:`param_groups`).
    """

    first_layer_weight_decay_only = True

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 2, dropout: float = 0.5):
        super().__init__(num_layers, dropout, "GCN")
        sizes = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        for i in range(num_layers):
            self.convs.append(GCNConv(sizes[i + 1], in_channels=sizes[i]))


class GraphSAGE(_Stack):
    """``num_layers`` GraphSageConv layers (mean aggregation) with ReLU and dropout, then a
    linear classifier: GraphSageConv's outputs are L2-normalised, so class scores come from a
    final linear layer rather than from the last convolution."""

    def __init__(
        self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 2, dropout: float = 0.5, aggregate: str = "mean"
    ):
        super().__init__(num_layers, dropout, "GraphSAGE")
        sizes = [in_channels] + [hidden_channels] * num_layers
        for i in range(num_layers):
            self.convs.append(GraphSageConv(sizes[i + 1], aggregate=aggregate, in_channels=sizes[i]))
        self.head = nn.Linear(hidden_channels, out_channels)

    def forward(self, x: Tensor, graph) -> Tensor:
        for conv in self.convs:
            x = dropout(x, self.dropout, self.training)
            x = F.relu(conv(x, graph))  # (N, hidden)
        return self.head(x)  # (N, classes)


class GAT(_Stack):
    """Two-or-more GATConv layers as in Veličković et al. (2018): ``heads`` x ``hidden_channels``
    concatenated hidden layers with ELU, dropout on inputs and on attention, and an output layer
    of ``out_heads`` averaged heads."""

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_layers: int = 2,
        heads: int = 8,
        out_heads: int = 1,
        dropout: float = 0.6,
    ):
        super().__init__(num_layers, dropout, "GAT")
        f = in_channels
        for _ in range(num_layers - 1):
            self.convs.append(GATConv(hidden_channels, attn_heads=heads, dropout_rate=dropout, in_channels=f))
            f = hidden_channels * heads
        self.convs.append(GATConv(out_channels, attn_heads=out_heads, concat_heads=False, dropout_rate=dropout, in_channels=f))

    def hidden_activation(self, x: Tensor) -> Tensor:
        return F.elu(x)


MODELS = {"gcn": GCN, "sage": GraphSAGE, "gat": GAT}


def build_model(name: str, in_channels: int, out_channels: int, hidden_channels: int | None = None, **kwargs) -> nn.Module:
    """A model by name (``gcn``, ``sage``, ``gat``) with the usual hidden size (16 / 64 / 8)."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None
    hidden = hidden_channels or {"gcn": 16, "sage": 64, "gat": 8}[name]
    return cls(in_channels, hidden, out_channels, **kwargs)


from .builder import LayerStack, ModelError, layer_names, model_builder  # noqa: E402
from .link import DECODERS, DotDecoder, LinkModel, MLPDecoder, link_model_builder, make_decoder  # noqa: E402

__all__ = ["GAT", "GCN", "GraphSAGE", "LayerStack", "MODELS", "ModelError", "build_model", "layer_names", "model_builder",
           "DECODERS", "DotDecoder", "LinkModel", "MLPDecoder", "link_model_builder", "make_decoder"]
