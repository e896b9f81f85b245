"""TAGConv: topology adaptive graph convolution (Du et al., 2017)."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from ..graph import GraphError
from ..ops import sym_norm
from .base import MessagePassing
from .modes import prepare
from .utils import Activation, Initializer, check_positive_int, get_activation, get_initializer


class TAGConv(LazyModuleMixin, MessagePassing):
    r"""Topology adaptive graph convolution of `Du et al. <https://arxiv.org/abs/1710.10370>`_.

    .. math::
        X' = \sigma\Big(\sum_{k=0}^{K} \big(D^{-1/2} A D^{-1/2}\big)^k X W_k + b\Big), \qquad
        h^{(0)} = x_i,\ h^{(k)}_i = \sum_{j \in N(i)} \frac{a_{ij}}{\sqrt{d_i d_j}} h^{(k-1)}_j,\
        x'_i = \sigma\Big(\sum_{k=0}^{K} h^{(k)}_i W_k + b\Big)

    No self-loops are added; ``d`` are the in-degrees of ``A`` (weighted when ``edge_weight`` is
    given, of the whole graph on a partition). With another ``aggregate`` each hop reduces the
    weighted messages ``sym(A)_ij h_j`` with it (``'mean'`` divides by the number of incoming
    edges). With ``'sum'``/``'mean'`` (linear hops) and ``channels < F`` the layer evaluates the
    same polynomial as ``X W_0 + S(X W_1 + S(X W_2 + ...))`` (Horner), propagating ``C`` instead of
    ``F`` columns; each hop exchanges halo rows once on a partition.

    **Decision** (layers.md): true matrix powers ``sym(A)^k``, as documented; the Spektral
    reference code propagates ``X`` itself ``K`` times and so repeats the first power. Other
    differences from the reference: the layer normalises ``A`` itself (pass the raw adjacency),
    and mixed mode is supported. As in the reference, the kernel is one Keras dense kernel over
    the concatenation ``[X, S X, ..., S^K X]``, so ``W_k`` is its ``k``-th block of ``F`` rows.

    Args:
        channels: output size ``C``.
        K: number of hops (the polynomial has ``K + 1`` terms, ``K >= 1``).
        aggregate: ``'sum'`` (default), ``'mean'``, ``'max'``, ``'min'``, ``'prod'`` or a callable.
        activation, use_bias, kernel_initializer, bias_initializer, in_channels: as in GCNConv.

    Shapes:
        x ``[N, F]`` (single/disjoint) or ``[B, N, F]`` (mixed); a: edge_index ``[2, E]``, a
        graph, or dense ``[N, N]``; edge_weight ``[E]``. Output ``[N, C]`` / ``[B, N, C]``.
        Parameters: ``kernel [(K + 1) F, C]``, ``bias [C]``.

    Modes: single, disjoint, mixed.
    """

    MODES = ("single", "disjoint", "mixed")
    cls_to_become = None

    def __init__(
        self,
        channels: int,
        K: int = 3,
        aggregate="sum",
        activation: Activation = None,
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        *,
        in_channels: int | None = None,
    ):
        super().__init__(aggregate=aggregate)
        self.channels = check_positive_int(channels, "channels", "TAGConv")
        self.K = check_positive_int(K, "K", "TAGConv")
        self._kernel_init = get_initializer(kernel_initializer, "TAGConv: kernel_initializer")
        self._bias_init = get_initializer(bias_initializer, "TAGConv: bias_initializer")
        if in_channels is None:
            self.kernel = UninitializedParameter()
        else:
            in_channels = check_positive_int(in_channels, "in_channels", "TAGConv")
            self.kernel = nn.Parameter(torch.empty((self.K + 1) * in_channels, channels))
        self.bias = nn.Parameter(torch.empty(channels)) if use_bias else None
        self.activation = get_activation(activation, channels, "TAGConv: activation")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params():
            self._kernel_init(self.kernel)
        if self.bias is not None:
            self._bias_init(self.bias)

    def initialize_parameters(self, x: Tensor, *args, **kwargs) -> None:
        if self.has_uninitialized_params():
            with torch.no_grad():
                self.kernel.materialize(((self.K + 1) * x.shape[-1], self.channels))
                self._kernel_init(self.kernel)

    def forward(self, x: Tensor, a, edge_weight: Tensor | None = None) -> Tensor:
        inp = prepare("TAGConv", self.MODES, x, a, edge_weight=edge_weight)
        g = inp.graph
        w = sym_norm(g, inp.edge_weight, dtype=inp.x.dtype).to(inp.x.dtype)  # (E,)
        f, c = inp.x.shape[-1], self.channels
        if self.kernel.shape[0] != (self.K + 1) * f:
            raise GraphError(f"TAGConv: x has {f} features but the layer was built for {self.kernel.shape[0] // (self.K + 1)}")
        kernels = self.kernel.view(self.K + 1, f, c)  # W_k = kernels[k]
        if self.aggr in ("sum", "mean") and c < f:  # Horner: X W_0 + S (X W_1 + S (...))
            hw = (inp.x @ kernels.permute(1, 0, 2).reshape(f, (self.K + 1) * c)).unflatten(-1, (self.K + 1, c))
            out = hw[..., self.K, :]  # (N, *, C)
            for k in range(self.K - 1, -1, -1):
                out = self.propagate(out, g, edge_weight=w) + hw[..., k, :]  # (N, *, C)
        else:  # powers of S applied to X, then one product with the stacked kernel
            h, hops = inp.x, [inp.x]
            for _ in range(self.K):
                h = self.propagate(h, g, edge_weight=w)  # (N, *, F)
                hops.append(h)
            out = torch.cat(hops, dim=-1) @ self.kernel  # (N, *, C)
        if self.bias is not None:
            out = out + self.bias
        return inp.restore(self.activation(out))

    @staticmethod
    def preprocess(a):
        """``normalized_adjacency(a, symmetric=True)`` = ``sym(A)``, the matrix this layer builds
        internally (for inspection; do not feed it back in)."""
        from .preprocessing import normalized_adjacency

        return normalized_adjacency(a, symmetric=True)

    def extra_repr(self) -> str:
        f = None if self.has_uninitialized_params() else self.kernel.shape[0] // (self.K + 1)
        return f"in_channels={f}, channels={self.channels}, K={self.K}, aggregate={self.aggr!r}"
