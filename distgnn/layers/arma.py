"""ARMAConv: graph convolution with ARMA filters (Bianchi et al., 2021)."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from ..graph import GraphError
from ..ops import sym_norm
from .base import MessagePassing
from .modes import ALL_MODES, prepare
from .utils import (
    Activation,
    Initializer,
    check_positive_int,
    check_rate,
    dropout,
    get_activation,
    get_initializer,
)


def stacked_matmul(x: Tensor, kernels: Tensor) -> Tensor:
    """``x [*, F]`` times each of ``kernels [K, F, C]`` -> ``[*, K, C]`` in one GEMM."""
    k, f, c = kernels.shape
    return (x @ kernels.permute(1, 0, 2).reshape(f, k * c)).unflatten(-1, (k, c))


class ARMAConv(LazyModuleMixin, MessagePassing):
    r"""Graph convolution with ARMA filters of `Bianchi et al. <https://arxiv.org/abs/1901.01343>`_.

    ``K = order`` parallel stacks, each a recursion of ``T = iterations`` GCS steps:

    .. math::
        \bar X_k^{(0)} = X, \quad
        \bar X_k^{(t+1)} = \sigma_{gcn}\big(\hat A \bar X_k^{(t)} W_k^{(t)}
            + \mathrm{dropout}(X) V_k^{(t)} + b_k^{(t)}\big), \quad
        X' = \sigma\Big(\frac{1}{K} \sum_{k=1}^{K} \bar X_k^{(T)}\Big), \quad
        \hat A = D^{-1/2} A D^{-1/2}

    node-wise: ``h^(t+1)_{k,i} = gcn_act( sum_{j in N(i)} a_ij / sqrt(d_i d_j) h^(t)_{k,j} W_k^t
    + dropout(x_i) V_k^t + b_k^t )``. No self-loops are added; ``d`` are the in-degrees of ``A``
    (weighted when ``edge_weight`` is given, of the whole graph on a partition). With
    ``share_weights`` step 0 has its own weights and all later steps share one set (so at most two
    sets per stack). Dropout (training only) draws a fresh mask per step and stack. All stacks
    are propagated together, so each step exchanges halo rows once on a partition.

    **Decision** (layers.md): the propagation matrix is ``sym(A)`` (paper and code), not a rescaled
    Laplacian as one version of the Spektral docs says. Other differences from the Spektral
    reference: the layer normalises ``A`` itself (pass the raw adjacency); dropout is applied to
    ``X`` before the skip product, as documented, where the reference code drops entries of
    ``X V`` after it. As in the reference, every ``W``/``V`` matrix is initialised as its own Keras
    weight.

    Args:
        channels: output size ``C``.
        order: number of parallel stacks ``K``.
        iterations: number of steps ``T`` of each stack.
        share_weights: share the weights of steps ``1 .. T-1`` within a stack.
        gcn_activation: activation of every step (default ``'relu'``).
        dropout_rate: dropout on the skip input ``X`` (training only).
        activation, use_bias, kernel_initializer, bias_initializer, in_channels: as in GCNConv.

    Shapes:
        x ``[N, F]`` (single/disjoint), ``[B, N, F]`` (mixed, batch); a: edge_index ``[2, E]``,
        a graph, or dense ``[N, N]`` / ``[B, N, N]``; edge_weight ``[E]``; mask ``[B, N]``
        (batch). Output ``[N, C]`` / ``[B, N, C]``. With ``S`` weight sets per stack
        (``T``, or ``min(T, 2)`` when sharing): ``kernel_in [K, F, C]`` (``W^0``),
        ``kernel_hidden [S - 1, K, C, C]`` (``W^s``, ``s >= 1``; absent when ``S = 1``),
        ``skip_kernel [S, K, F, C]`` (``V^s``), ``bias [S, K, C]``.

    Modes: single, disjoint, mixed, batch.
    """

    MODES = ALL_MODES
    cls_to_become = None

    def __init__(
        self,
        channels: int,
        order: int = 1,
        iterations: int = 1,
        share_weights: bool = False,
        gcn_activation: Activation = "relu",
        dropout_rate: float = 0.0,
        activation: Activation = None,
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        *,
        in_channels: int | None = None,
    ):
        super().__init__(aggregate="sum")
        self.channels = check_positive_int(channels, "channels", "ARMAConv")
        self.order = check_positive_int(order, "order", "ARMAConv")
        self.iterations = check_positive_int(iterations, "iterations", "ARMAConv")
        if not isinstance(share_weights, bool):
            raise ValueError(f"ARMAConv: share_weights must be a bool, got {share_weights!r}")
        self.share_weights = share_weights
        self.dropout_rate = check_rate(dropout_rate, "dropout_rate", "ARMAConv")
        self._kernel_init = get_initializer(kernel_initializer, "ARMAConv: kernel_initializer")
        self._bias_init = get_initializer(bias_initializer, "ARMAConv: bias_initializer")
        k, c, s = self.order, self.channels, self.num_weight_sets
        if in_channels is None:
            self.kernel_in = UninitializedParameter()
            self.skip_kernel = UninitializedParameter()
        else:
            f = check_positive_int(in_channels, "in_channels", "ARMAConv")
            self.kernel_in = nn.Parameter(torch.empty(k, f, c))
            self.skip_kernel = nn.Parameter(torch.empty(s, k, f, c))
        self.kernel_hidden = nn.Parameter(torch.empty(s - 1, k, c, c)) if s > 1 else None
        self.bias = nn.Parameter(torch.empty(s, k, c)) if use_bias else None
        self.gcn_activation = get_activation(gcn_activation, channels, "ARMAConv: gcn_activation")
        self.activation = get_activation(activation, channels, "ARMAConv: activation")
        self.reset_parameters()

    @property
    def num_weight_sets(self) -> int:
        """Weight sets per stack: one per step, or two (step 0 and the rest) when sharing."""
        return min(self.iterations, 2) if self.share_weights else self.iterations

    def _init_matrices(self, t: Tensor) -> None:
        with torch.no_grad():
            for m in t.view(-1, t.shape[-2], t.shape[-1]):  # each [in, out] is one Keras weight
                self._kernel_init(m)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params():
            self._init_matrices(self.kernel_in)
            self._init_matrices(self.skip_kernel)
        if self.kernel_hidden is not None:
            self._init_matrices(self.kernel_hidden)
        if self.bias is not None:
            with torch.no_grad():
                for b in self.bias.view(-1, self.channels):
                    self._bias_init(b)

    def initialize_parameters(self, x: Tensor, *args, **kwargs) -> None:
        if self.has_uninitialized_params():
            f = x.shape[-1]
            self.kernel_in.materialize((self.order, f, self.channels))
            self.skip_kernel.materialize((self.num_weight_sets, self.order, f, self.channels))
            self._init_matrices(self.kernel_in)
            self._init_matrices(self.skip_kernel)

    def forward(self, x: Tensor, a, edge_weight: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        inp = prepare("ARMAConv", self.MODES, x, a, edge_weight=edge_weight, mask=mask)
        g, x = inp.graph, inp.x  # x: (N, *, F)
        f, k, c = x.shape[-1], self.order, self.channels
        if self.kernel_in.shape[1] != f:
            raise GraphError(f"ARMAConv: x has {f} features but the layer was built for {self.kernel_in.shape[1]}")
        w = sym_norm(g, inp.edge_weight, dtype=x.dtype)  # (E,)
        drop = self.training and self.dropout_rate > 0.0
        skips: dict[int, Tensor] = {}  # X V^s, computed once per weight set when no dropout
        out = x
        for t in range(self.iterations):
            s = min(t, 1) if self.share_weights else t
            if t == 0 and f <= k * c:  # propagate the narrower of X and [X W_k^0]_k
                h = stacked_matmul(self.propagate(x, g, edge_weight=w), self.kernel_in)  # (N, *, K, C)
            elif t == 0:
                h = self.propagate(stacked_matmul(x, self.kernel_in), g, edge_weight=w)  # (N, *, K, C)
            else:
                h = torch.einsum("...kc,kcd->...kd", out, self.kernel_hidden[s - 1])  # (N, *, K, C)
                h = self.propagate(h, g, edge_weight=w)  # (N, *, K, C)
            if drop:
                xd = dropout(x.unsqueeze(-2).expand(*x.shape[:-1], k, f), self.dropout_rate)  # (N, *, K, F)
                skip = torch.einsum("...kf,kfc->...kc", xd, self.skip_kernel[s])  # (N, *, K, C)
            else:
                if s not in skips:
                    skips[s] = stacked_matmul(x, self.skip_kernel[s])  # (N, *, K, C)
                skip = skips[s]
            h = h + skip
            if self.bias is not None:
                h = h + self.bias[s]
            out = self.gcn_activation(h)  # (N, *, K, C)
        return inp.restore(self.activation(out.mean(-2)))  # (N, *, C)

    @staticmethod
    def preprocess(a):
        """``normalized_adjacency(a, symmetric=True)`` = ``sym(A)``, the matrix this layer builds
        internally (for inspection; do not feed it back in)."""
        from .preprocessing import normalized_adjacency

        return normalized_adjacency(a, symmetric=True)

    def extra_repr(self) -> str:
        f = None if self.has_uninitialized_params() else self.kernel_in.shape[1]
        return (
            f"in_channels={f}, channels={self.channels}, order={self.order}, iterations={self.iterations}, "
            f"share_weights={self.share_weights}, dropout_rate={self.dropout_rate}"
        )
