"""GTVConv: graph total variation convolution (Hansen & Bianchi, 2023)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..ops import remove_self_loops
from .base import MessagePassing, broadcast_edges
from .modes import prepare
from .utils import Activation, Dense, Initializer, check_positive_int, get_activation, get_initializer


class GTVConv(MessagePassing):
    r"""Graph total variation convolution of `Hansen & Bianchi
    <https://arxiv.org/abs/2211.06218>`_ (one gradient step on the GTV of ``X W``).

    .. math::
        \tilde X = X W, \quad
        \Gamma_{ij} = \frac{a_{ij}}{\max(\lVert \tilde x_i - \tilde x_j \rVert_1, \epsilon)}, \quad
        X' = \sigma\big((I - \delta L_\Gamma) \tilde X + b\big),\ L_\Gamma = D_\Gamma - \Gamma

    node-wise: :math:`x'_i = \sigma\big(\tilde x_i - \delta \sum_{j \in N(i)} \Gamma_{ij}
    (\tilde x_i - \tilde x_j) + b\big)`. ``a_ij`` are the edge weights (the values of a dense
    adjacency, 1 per edge otherwise; a repeated edge counts once per copy). A self-loop
    contributes ``x~_i - x~_i = 0`` and is skipped, which also keeps its ``1 / epsilon`` factor out
    of the backward pass. All edges of a node's neighbourhood are local to the part that owns the
    node, so on a partition only the rows ``x~_j`` are exchanged (once).

    Equal to the Spektral reference (same arguments and defaults, ``glorot_uniform`` kernel),
    except that the graph is given raw (edge list, graph or dense adjacency, as every layer here)
    and, in batch mode, edges to or from masked nodes are dropped before ``Gamma`` is computed
    (Spektral only zeroes the outputs of masked nodes), so padding never influences real nodes.

    Args:
        channels: output size ``C``.
        delta_coeff: step size ``delta`` of the gradient-descent step.
        epsilon: lower bound ``epsilon > 0`` of the L1 distances (numerical stability).
        activation, use_bias, kernel_initializer, bias_initializer, in_channels: as in GCNConv.

    Shapes:
        x ``[N, F]`` (single/disjoint) or ``[B, N, F]`` (batch); a: edge_index ``[2, E]``, a
        graph, or dense ``[N, N]`` / ``[B, N, N]``; edge_weight ``[E]``; mask ``[B, N]``
        (batch). Output ``[N, C]`` / ``[B, N, C]``. Parameters: ``kernel.kernel [F, C]``,
        ``bias [C]``.

    Modes: single, disjoint, batch.
    """

    MODES = ("single", "disjoint", "batch")

    def __init__(
        self,
        channels: int,
        delta_coeff: float = 1.0,
        epsilon: float = 0.001,
        activation: Activation = None,
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        *,
        in_channels: int | None = None,
    ):
        super().__init__(aggregate="sum")
        self.channels = check_positive_int(channels, "channels", "GTVConv")
        if in_channels is not None:
            check_positive_int(in_channels, "in_channels", "GTVConv")
        if isinstance(delta_coeff, bool) or not isinstance(delta_coeff, (int, float)):
            raise ValueError(f"GTVConv: delta_coeff must be a number, got {delta_coeff!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
            raise ValueError(f"GTVConv: epsilon must be a number > 0, got {epsilon!r}")
        self.delta_coeff = float(delta_coeff)
        self.epsilon = float(epsilon)
        get_initializer(kernel_initializer, "GTVConv: kernel_initializer")
        self.kernel = Dense(channels, in_channels, use_bias=False, kernel_initializer=kernel_initializer)
        self.bias = nn.Parameter(torch.empty(channels)) if use_bias else None
        self._bias_init = get_initializer(bias_initializer, "GTVConv: bias_initializer")
        self.activation = get_activation(activation, channels, "GTVConv: activation")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.kernel.reset_parameters()
        if self.bias is not None:
            self._bias_init(self.bias)

    def message(self, x_i: Tensor, x_j: Tensor, edge_weight: Tensor | None) -> Tensor:
        diff = x_i - x_j  # (E, C)
        dist = diff.abs().sum(-1, keepdim=True).clamp(min=self.epsilon)  # (E, 1)
        gamma = 1.0 / dist if edge_weight is None else broadcast_edges(edge_weight.to(diff.dtype), dist) / dist
        return gamma * diff  # (E, C): Gamma_ij (x~_i - x~_j)

    def forward(self, x: Tensor, a, edge_weight: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        inp = prepare("GTVConv", self.MODES, x, a, edge_weight=edge_weight, mask=mask)
        g, w = remove_self_loops(inp.graph, inp.edge_weight)
        h = self.kernel(inp.x)  # (N, C)
        h = h - self.delta_coeff * self.propagate(h, g, edge_weight=w)  # (N, C)
        if self.bias is not None:
            h = h + self.bias
        return inp.restore(self.activation(h))

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.kernel.in_features}, channels={self.channels}, "
            f"delta_coeff={self.delta_coeff}, epsilon={self.epsilon}"
        )
