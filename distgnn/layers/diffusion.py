"""DiffusionConv: diffusion convolution (Li et al., 2018)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..graph import GraphError
from ..ops import rw_norm
from .base import MessagePassing
from .modes import ALL_MODES, prepare
from .utils import Activation, Initializer, check_positive_int, get_activation, get_initializer


class DiffusionConv(MessagePassing):
    r"""Diffusion convolution of `Li et al. <https://arxiv.org/abs/1707.01926>`_ (DCRNN).

    Output channel ``q``:

    .. math::
        X'_{:,q} = \sigma\Big(\sum_{f=1}^{F} \sum_{k=0}^{K-1} \theta_{k,q}\, \hat A^k X_{:,f}\Big)
                 = \sigma\Big(\sum_{k=0}^{K-1} \theta_{k,q}\, \hat A^k (X \mathbf 1)\Big), \qquad
        \hat A = D^{-1} A

    node-wise: ``s^(0)_i = sum_f x_if``, ``s^(k)_i = sum_{j in N(i)} (a_ij / d_i) s^(k-1)_j``,
    ``x'_iq = act(sum_k theta_kq s^(k)_i)``. ``d`` are the in-degrees of ``A`` (weighted when
    ``edge_weight`` is given, of the whole graph on a partition); a node of degree 0 has a zero
    row in ``D^-1 A`` and ``A^0 = I``. Since ``A^k`` is linear the feature sum is taken first, so
    each of the ``K - 1`` hops propagates a single column (one halo exchange per hop). No bias.

    **Decision** (layers.md): ``A^k`` is the true matrix power of the row-normalised (random
    walk) adjacency, as documented. The Spektral reference code evaluates ``tf.math.polyval`` on
    the matrix, i.e. element-wise powers, with the constant term added to every entry instead of
    ``theta_0 I``. Other differences from the reference: it keeps ``K + 1`` coefficients per
    channel although its docs say ``K`` (here: ``K``, powers ``0 .. K-1``, as documented), and
    its ``preprocess`` builds the GCN filter instead of the documented ``D^-1 A``; here the layer
    normalises ``A`` itself (pass the raw adjacency). As in the reference, each channel's
    ``theta_{:,q}`` is initialised as its own Keras weight of shape ``[K]``.

    Args:
        channels: output size ``C``.
        K: number of diffusion terms (powers ``0 .. K-1``), ``K >= 1``.
        activation: ``None``, a name or a callable (default ``'tanh'``).
        kernel_initializer: Keras name or callable, applied to each column ``[K]`` of the kernel.
        in_channels: optional input size ``F``; when given, inputs of another width are rejected
            (the layer has no size-dependent parameters).

    Shapes:
        x ``[N, F]`` (single/disjoint), ``[B, N, F]`` (mixed, batch); a: edge_index ``[2, E]``,
        a graph, or dense ``[N, N]`` / ``[B, N, N]``; edge_weight ``[E]``; mask ``[B, N]``
        (batch). Output ``[N, C]`` / ``[B, N, C]``. Parameter: ``kernel [K, C]`` (``theta``).

    Modes: single, disjoint, mixed, batch.
    """

    MODES = ALL_MODES

    def __init__(
        self,
        channels: int,
        K: int = 6,
        activation: Activation = "tanh",
        kernel_initializer: Initializer = "glorot_uniform",
        *,
        in_channels: int | None = None,
    ):
        super().__init__(aggregate="sum")
        self.channels = check_positive_int(channels, "channels", "DiffusionConv")
        self.K = check_positive_int(K, "K", "DiffusionConv")
        self.in_channels = None if in_channels is None else check_positive_int(in_channels, "in_channels", "DiffusionConv")
        self._kernel_init = get_initializer(kernel_initializer, "DiffusionConv: kernel_initializer")
        self.kernel = nn.Parameter(torch.empty(self.K, self.channels))
        self.activation = get_activation(activation, channels, "DiffusionConv: activation")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for q in range(self.channels):  # one Keras weight [K] per output channel
                self._kernel_init(self.kernel[:, q])

    def forward(self, x: Tensor, a, edge_weight: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        inp = prepare("DiffusionConv", self.MODES, x, a, edge_weight=edge_weight, mask=mask)
        if self.in_channels is not None and inp.x.shape[-1] != self.in_channels:
            raise GraphError(f"DiffusionConv: x has {inp.x.shape[-1]} features but in_channels={self.in_channels}")
        s = inp.x.sum(-1, keepdim=True)  # (N, *, 1): X 1
        terms = [s]
        if self.K > 1:
            w = rw_norm(inp.graph, inp.edge_weight, dtype=inp.x.dtype)  # (E,)
            for _ in range(self.K - 1):
                s = self.propagate(s, inp.graph, edge_weight=w)  # (N, *, 1): D^-1 A s
                terms.append(s)
        out = torch.cat(terms, dim=-1) @ self.kernel  # (N, *, K) @ (K, C) -> (N, *, C)
        return inp.restore(self.activation(out))

    @staticmethod
    def preprocess(a):
        """``normalized_adjacency(a, symmetric=False)`` = ``rw(A)``, the matrix this layer builds
        internally (for inspection; do not feed it back in)."""
        from .preprocessing import normalized_adjacency

        return normalized_adjacency(a, symmetric=False)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, channels={self.channels}, K={self.K}"
