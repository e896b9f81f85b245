"""GCSConv: a graph convolution with a trainable skip connection (Bianchi et al., 2021)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..ops import sym_norm
from .base import MessagePassing
from .modes import ALL_MODES, prepare
from .utils import Activation, Dense, Initializer, check_positive_int, get_activation, get_initializer


class GCSConv(MessagePassing):
    r"""Graph convolution with a skip connection, the building block of ARMA filters
    (`Bianchi et al. <https://arxiv.org/abs/1901.01343>`_).

    .. math::
        X' = \sigma\big(D^{-1/2} A D^{-1/2} X W_1 + X W_2 + b\big), \qquad
        x'_i = \sigma\Big(\sum_{j \in N(i)} \frac{a_{ij}}{\sqrt{d_i d_j}}\, x_j W_1 + x_i W_2 + b\Big)

    No self-loops are added (the skip term plays their role); ``d`` are the in-degrees of ``A``
    (weighted when ``edge_weight`` is given, of the whole graph on a partition) and a node of
    degree 0 only keeps its skip term.

    Deviation from the Spektral reference: the layer normalises ``A`` itself, so pass the raw
    adjacency (Spektral expects the output of ``GCSConv.preprocess``).

    Args:
        channels: output size ``C``.
        activation: ``None``, a name or a callable, applied last.
        use_bias: add a bias ``b [C]``.
        kernel_initializer, bias_initializer: Keras names or callables (``W_1``, ``W_2`` are
            initialised separately, as two Keras weights).
        in_channels: input size ``F``; inferred at the first call when ``None``.

    Shapes:
        x ``[N, F]`` (single/disjoint), ``[B, N, F]`` (mixed, batch); a: edge_index ``[2, E]``,
        a graph, or dense ``[N, N]`` / ``[B, N, N]``; edge_weight ``[E]``; mask ``[B, N]``
        (batch). Output ``[N, C]`` or ``[B, N, C]``. Parameters: ``kernel_1.kernel [F, C]``
        (``W_1``), ``kernel_2.kernel [F, C]`` (``W_2``), ``bias [C]``.

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
        self.channels = check_positive_int(channels, "channels", "GCSConv")
        if in_channels is not None:
            check_positive_int(in_channels, "in_channels", "GCSConv")
        get_initializer(kernel_initializer, "GCSConv: kernel_initializer")
        self.kernel_1 = Dense(channels, in_channels, use_bias=False, kernel_initializer=kernel_initializer)
        self.kernel_2 = Dense(channels, in_channels, use_bias=False, kernel_initializer=kernel_initializer)
        self.bias = nn.Parameter(torch.empty(channels)) if use_bias else None
        self._bias_init = get_initializer(bias_initializer, "GCSConv: bias_initializer")
        self.activation = get_activation(activation, channels, "GCSConv: activation")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.kernel_1.reset_parameters()
        self.kernel_2.reset_parameters()
        if self.bias is not None:
            self._bias_init(self.bias)

    def forward(self, x: Tensor, a, edge_weight: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        inp = prepare("GCSConv", self.MODES, x, a, edge_weight=edge_weight, mask=mask)
        w = sym_norm(inp.graph, inp.edge_weight, dtype=inp.x.dtype)  # (E,)
        if inp.x.shape[-1] < self.channels:  # propagate the narrower of X and X W_1
            h = self.kernel_1(self.propagate(inp.x, inp.graph, edge_weight=w))  # (N, *, C)
        else:
            h = self.propagate(self.kernel_1(inp.x), inp.graph, edge_weight=w)  # (N, *, C)
        h = h + self.kernel_2(inp.x)  # (N, *, C)
        if self.bias is not None:
            h = h + self.bias
        return inp.restore(self.activation(h))

    @staticmethod
    def preprocess(a):
        """``normalized_adjacency(a, symmetric=True)`` = ``sym(A)``, the matrix this layer builds
        internally (for inspection; do not feed it back in)."""
        from .preprocessing import normalized_adjacency

        return normalized_adjacency(a, symmetric=True)

    def extra_repr(self) -> str:
        return f"in_channels={self.kernel_1.in_features}, channels={self.channels}, use_bias={self.bias is not None}"
