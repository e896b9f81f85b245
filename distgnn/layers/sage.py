"""GraphSageConv (Hamilton et al., 2017)."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import MessagePassing
from .modes import prepare
from .utils import Activation, Dense, Initializer, check_positive_int, get_activation


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Keras ``l2_normalize`` along the last dim: ``x / sqrt(max(sum(x^2), eps))``."""
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True).clamp(min=eps))


class GraphSageConv(MessagePassing):
    r"""GraphSAGE convolution of `Hamilton et al. <https://arxiv.org/abs/1706.02216>`_.

    .. math::
        x'_i = \sigma\Big(\mathrm{l2norm}\big([x_i \,\|\, \mathrm{aggregate}_{j \in N(i)} x_j] W + b\big)\Big)

    ``l2norm`` divides by ``sqrt(max(||.||^2, 1e-12))`` as Keras does; empty neighbourhoods
    aggregate to 0. No self-loops are added.

    Args:
        channels: output size ``C``.
        aggregate: ``'mean'`` (default), ``'sum'``, ``'max'``, ``'min'``, ``'prod'`` or a callable.
            (``aggregate_op`` is accepted as an alias, as in one place of the seed docs.)
        activation, use_bias, kernel_initializer, bias_initializer, in_channels: as in GCNConv.

    Shapes:
        x ``[N, F]`` or ``[B, N, F]`` (mixed); a: edge_index ``[2, E]``, a graph or dense
        ``[N, N]``. Output ``[N, C]`` / ``[B, N, C]``. The kernel is ``[2F, C]``.

    Modes: single, disjoint, mixed.
    """

    MODES = ("single", "disjoint", "mixed")

    def __init__(
        self,
        channels: int,
        aggregate="mean",
        activation: Activation = None,
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        *,
        aggregate_op=None,
        in_channels: int | None = None,
    ):
        super().__init__(aggregate=aggregate_op if aggregate_op is not None else aggregate)
        self.channels = check_positive_int(channels, "channels", "GraphSageConv")
        self.kernel = Dense(
            channels, None if in_channels is None else 2 * in_channels, use_bias, kernel_initializer, bias_initializer
        )
        self.activation = get_activation(activation, channels, "GraphSageConv: activation")

    def reset_parameters(self) -> None:
        self.kernel.reset_parameters()

    def forward(self, x: Tensor, a, edge_weight: Tensor | None = None) -> Tensor:
        inp = prepare("GraphSageConv", self.MODES, x, a, edge_weight=edge_weight)
        agg = self.propagate(inp.x, inp.graph, edge_weight=inp.edge_weight)  # (N, *, F)
        h = torch.cat([inp.x, agg], dim=-1)  # (N, *, 2F)
        h = l2_normalize(self.kernel(h))  # (N, *, C)
        return inp.restore(self.activation(h))

    def extra_repr(self) -> str:
        f = self.kernel.in_features
        return f"in_channels={None if f is None else f // 2}, channels={self.channels}, aggregate={self.aggr!r}"
