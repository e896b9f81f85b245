"""ChebConv (Defferrard et al., 2016)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..ops import estimate_lambda_max, scaled_laplacian
from .base import MessagePassing
from .modes import ALL_MODES, prepare
from .utils import Activation, Initializer, check_positive_int, get_activation, get_initializer
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter


class ChebConv(LazyModuleMixin, MessagePassing):
    r"""Chebyshev spectral convolution of `Defferrard et al. <https://arxiv.org/abs/1606.09375>`_.

    .. math::
        X' = \sigma\Big(\sum_{k=0}^{K-1} T_k W_k + b\Big), \quad T_0 = X,\ T_1 = \tilde L X,\
        T_k = 2 \tilde L T_{k-1} - T_{k-2}, \quad
        \tilde L = \tfrac{2}{\lambda_{max}} (I - D^{-1/2} A D^{-1/2}) - I

    The layer builds ``\tilde L`` itself from the graph (the seed's "list of polynomials" input is
    stale). ``K = 1`` is ``X W_0 + b``. ``lambda_max`` defaults to 2 (then ``\tilde L = -sym(A)``);
    ``lambda_max="estimate"`` runs a power iteration on every call (on a partition too).

    Args:
        channels: output size ``C``.
        K: order of the polynomial (number of kernels ``W_k [F, C]``).
        activation, use_bias, kernel_initializer, bias_initializer, in_channels: as in GCNConv.
        lambda_max: largest eigenvalue of the normalised Laplacian, or ``"estimate"``.

    Shapes:
        as GCNConv; the kernel is ``[K, F, C]``. Modes: single, disjoint, mixed, batch.
    """

    MODES = ALL_MODES
    cls_to_become = None

    def __init__(
        self,
        channels: int,
        K: int = 1,
        activation: Activation = None,
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        *,
        in_channels: int | None = None,
        lambda_max: float | str = 2.0,
    ):
        super().__init__(aggregate="sum")
        self.channels = check_positive_int(channels, "channels", "ChebConv")
        self.K = check_positive_int(K, "K", "ChebConv")
        if not (lambda_max == "estimate" or (isinstance(lambda_max, (int, float)) and lambda_max > 0)):
            raise ValueError(f"ChebConv: lambda_max must be a positive number or 'estimate', got {lambda_max!r}")
        self.lambda_max = lambda_max
        self._kernel_init = get_initializer(kernel_initializer, "ChebConv: kernel_initializer")
        self._bias_init = get_initializer(bias_initializer, "ChebConv: bias_initializer")
        if in_channels is None:
            self.kernel = UninitializedParameter()
        else:
            self.kernel = nn.Parameter(torch.empty(self.K, in_channels, channels))
        self.bias = nn.Parameter(torch.empty(channels)) if use_bias else None
        self.activation = get_activation(activation, channels, "ChebConv: activation")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params():
            self._kernel_init(self.kernel)
        if self.bias is not None:
            self._bias_init(self.bias)

    def initialize_parameters(self, x: Tensor, *args, **kwargs) -> None:
        if self.has_uninitialized_params():
            with torch.no_grad():
                self.kernel.materialize((self.K, x.shape[-1], self.channels))
                self._kernel_init(self.kernel)

    def forward(self, x: Tensor, a, edge_weight: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        inp = prepare("ChebConv", self.MODES, x, a, edge_weight=edge_weight, mask=mask)
        t0 = inp.x  # (N, *, F)
        out = t0 @ self.kernel[0]  # (N, *, C)
        if self.K > 1:
            lam = self.lambda_max
            if lam == "estimate":
                lam = estimate_lambda_max(inp.graph, inp.edge_weight)
            g, w = scaled_laplacian(inp.graph, inp.edge_weight, lam, dtype=t0.dtype)
            t1 = self.propagate(t0, g, edge_weight=w)  # (N, *, F)
            out = out + t1 @ self.kernel[1]
            for k in range(2, self.K):
                t2 = 2.0 * self.propagate(t1, g, edge_weight=w) - t0
                out = out + t2 @ self.kernel[k]
                t0, t1 = t1, t2
        if self.bias is not None:
            out = out + self.bias
        return inp.restore(self.activation(out))

    @staticmethod
    def preprocess(a, lambda_max: float = 2.0):
        """``rescale_laplacian(normalized_laplacian(a), lambda_max)``: the ``L̃`` this layer builds."""
        from .preprocessing import normalized_laplacian, rescale_laplacian

        return rescale_laplacian(normalized_laplacian(a), lambda_max)

    def extra_repr(self) -> str:
        f = None if self.has_uninitialized_params() else self.kernel.shape[1]
        return f"in_channels={f}, channels={self.channels}, K={self.K}"
