"""AGNNConv: attention-based graph neural network layer (Thekumparampil et al., 2018)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..graph import GraphError
from ..ops import add_self_loops, segment_softmax
from .base import MessagePassing
from .modes import prepare
from .sage import l2_normalize
from .utils import Activation, check_positive_int, get_activation


class AGNNConv(MessagePassing):
    r"""Attention-based propagation of `Thekumparampil et al. <https://arxiv.org/abs/1803.03735>`_.

    .. math::
        X' = \sigma(P X), \qquad
        P_{ij} = \frac{\exp\big(\beta \cos(x_i, x_j)\big)}
                      {\sum_{k \in N(i) \cup \{i\}} \exp\big(\beta \cos(x_i, x_k)\big)}, \qquad
        x'_i = \sigma\Big(\sum_{j \in N(i) \cup \{i\}} P_{ij}\, x_j\Big)

    ``beta`` is a trainable scalar initialised to 1 (``trainable=True``) or fixed to 1. The
    softmax is the stable segment softmax over the incoming edges of each node (a repeated edge
    counts once per copy). ``cos`` uses the Keras ``l2_normalize`` (``x / sqrt(max(|x|^2,
    1e-12))``), so a zero row has cosine 0 with everything. The output width equals the input
    width. With another ``aggregate`` the coefficients are still the softmax above and the
    weighted messages ``P_ij x_j`` are reduced with it (``'mean'`` divides by the number of edges
    including the self-loop).

    **Decision** (layers.md): remaining self-loops are added, as the documented formula says
    (``k in N(i) ∪ {i}``; exactly one loop per node, an existing loop is not doubled). The
    Spektral reference code forgets them and attends over ``N(i)`` only. Other differences from
    the reference: mixed mode is supported. As in the reference, only the pattern of the graph
    matters: there is no ``edge_weight`` argument and the values of a dense adjacency are ignored.

    Args:
        trainable: learn ``beta`` (a parameter) or keep it fixed to 1 (a buffer).
        aggregate: ``'sum'`` (default, the formula above), ``'mean'``, ``'max'``, ``'min'``,
            ``'prod'`` or a callable ``f(messages, index, num_nodes)``.
        activation: ``None``, a name or a callable, applied last.
        in_channels: optional input size ``F``; when given, inputs of another width are rejected
            (the layer has no size-dependent parameters).

    Shapes:
        x ``[N, F]`` (single/disjoint) or ``[B, N, F]`` (mixed); a: edge_index ``[2, E]``, a
        graph, or dense ``[N, N]``. Output ``[N, F]`` / ``[B, N, F]``. Parameter (or buffer)
        ``beta []``.

    Modes: single, disjoint, mixed.
    """

    MODES = ("single", "disjoint", "mixed")

    def __init__(
        self,
        trainable: bool = True,
        aggregate="sum",
        activation: Activation = None,
        *,
        in_channels: int | None = None,
    ):
        super().__init__(aggregate=aggregate)
        if not isinstance(trainable, bool):
            raise ValueError(f"AGNNConv: trainable must be a bool, got {trainable!r}")
        self.trainable = trainable
        self.in_channels = None if in_channels is None else check_positive_int(in_channels, "in_channels", "AGNNConv")
        if trainable:
            self.beta = nn.Parameter(torch.empty(()))
        else:
            self.register_buffer("beta", torch.empty(()))
        self.activation = get_activation(activation, in_channels, "AGNNConv: activation")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.beta.fill_(1.0)

    def forward(self, x: Tensor, a) -> Tensor:
        inp = prepare("AGNNConv", self.MODES, x, a)
        if self.in_channels is not None and inp.x.shape[-1] != self.in_channels:
            raise GraphError(f"AGNNConv: x has {inp.x.shape[-1]} features but in_channels={self.in_channels}")
        g = add_self_loops(inp.graph)[0]
        h = inp.x  # (N, *, F)
        hn = l2_normalize(h)  # (N, *, F)
        ev = self.lift(g, n_i=hn, n_j=hn)  # (E', *, F) each
        cos = (ev["n_i"] * ev["n_j"]).sum(-1)  # (E', *)
        alpha = segment_softmax(self.beta * cos, g.edge_index[1], g.num_nodes)  # (E', *)
        out = self.propagate(h, g, edge_weight=alpha)  # (N, *, F)
        return inp.restore(self.activation(out))

    def extra_repr(self) -> str:
        return f"trainable={self.trainable}, aggregate={self.aggr!r}"
