"""GCNConv (Kipf & Welling, 2017)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..ops import gcn_norm
from .base import MessagePassing
from .modes import ALL_MODES, prepare
from .utils import Activation, Dense, Initializer, check_positive_int, get_activation, get_initializer


class GCNConv(MessagePassing):
    r"""Graph convolution of `Kipf & Welling <https://arxiv.org/abs/1609.02907>`_.

    .. math::
        X' = \sigma\big(\hat D^{-1/2} (A + I) \hat D^{-1/2} X W + b\big), \qquad
        x'_i = \sigma\Big(\sum_{j \in N(i) \cup \{i\}} \frac{a_{ij}}{\sqrt{\hat d_i \hat d_j}} x_j W + b\Big)

    Remaining self-loops are added (one loop of weight 1 per node, existing loops not doubled);
    ``\hat d`` are the in-degrees of ``A + I`` (weighted when ``edge_weight`` is given), of the
    whole graph on a partition. The layer normalises ``A`` itself: pass the raw adjacency.

    Args:
        channels: output size ``C``.
        activation: ``None``, a name or a callable, applied last.
        use_bias: add a bias ``b [C]``.
        kernel_initializer, bias_initializer: Keras names or callables.
        in_channels: input size ``F``; inferred at the first call when ``None``.

    Shapes:
        x ``[N, F]`` (single/disjoint), ``[B, N, F]`` (mixed, batch); a: edge_index ``[2, E]``,
        a graph, or dense ``[N, N]`` / ``[B, N, N]``; edge_weight ``[E]``; mask ``[B, N]``
        (batch). Output ``[N, C]`` or ``[B, N, C]``.

    Modes: single, disjoint, mixed, batch.
    """

    MODES = ALL_MODES

    def __init__(
        self,
        channels: int,
        activation: Activation = None,
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        *,
        in_channels: int | None = None,
    ):
        super().__init__(aggregate="sum")
        self.channels = check_positive_int(channels, "channels", "GCNConv")
        self.kernel = Dense(channels, in_channels, use_bias=False, kernel_initializer=kernel_initializer)
        self.bias = nn.Parameter(torch.empty(channels)) if use_bias else None
        self._bias_init = get_initializer(bias_initializer, "GCNConv: bias_initializer")
        self.activation = get_activation(activation, channels, "GCNConv: activation")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.kernel.reset_parameters()
        if self.bias is not None:
            self._bias_init(self.bias)

    def forward(self, x: Tensor, a, edge_weight: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        inp = prepare("GCNConv", self.MODES, x, a, edge_weight=edge_weight, mask=mask)
        g, w = gcn_norm(inp.graph, inp.edge_weight, dtype=inp.x.dtype)
        h = self.kernel(inp.x)  # (N, *, C)
        h = self.propagate(h, g, edge_weight=w)  # (N, *, C)
        if self.bias is not None:
            h = h + self.bias
        return inp.restore(self.activation(h))

    @staticmethod
    def preprocess(a):
        """``gcn_filter(a)``: the matrix this layer builds internally (do not feed it back in)."""
        from .preprocessing import gcn_filter

        return gcn_filter(a)

    def extra_repr(self) -> str:
        return f"in_channels={self.kernel.in_features}, channels={self.channels}, use_bias={self.bias is not None}"
