"""GINConv (Xu et al., 2019)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .base import MessagePassing
from .modes import prepare
from .utils import MLP, Activation, Initializer, check_positive_int


class GINConv(MessagePassing):
    r"""Graph isomorphism network convolution of `Xu et al. <https://arxiv.org/abs/1810.00826>`_.

    .. math::
        x'_i = \mathrm{MLP}\Big((1 + \epsilon)\, x_i + \mathrm{aggregate}_{j \in N(i)} x_j\Big)

    The MLP has one block per entry of ``mlp_hidden`` (Dense, ``mlp_activation``, batch norm when
    ``mlp_batchnorm``), then a Dense to ``channels`` followed by ``activation``. The batch norm
    uses statistics over the whole graph, also on a partition (Keras defaults: eps 1e-3,
    momentum 0.99).

    Args:
        channels: output size ``C``.
        epsilon: ``None`` makes ``epsilon`` a trainable scalar initialised to 0; a number fixes it.
        mlp_hidden: hidden sizes of the MLP (default none).
        mlp_activation: activation of the hidden blocks.
        mlp_batchnorm: batch norm after each hidden block.
        aggregate: ``'sum'`` (default), ``'mean'``, ``'max'``, ``'min'``, ``'prod'`` or a callable.
        activation, use_bias, kernel_initializer, bias_initializer, in_channels: as in GCNConv.

    Shapes:
        x ``[N, F]`` or ``[B, N, F]`` (mixed); a: edge_index ``[2, E]``, a graph or dense
        ``[N, N]``. Output ``[N, C]`` / ``[B, N, C]``.

    Modes: single, disjoint, mixed (dense batches: ``GINConvBatch``).
    """

    MODES = ("single", "disjoint", "mixed")

    def __init__(
        self,
        channels: int,
        epsilon: float | None = None,
        mlp_hidden: Sequence[int] | None = None,
        mlp_activation: Activation = "relu",
        mlp_batchnorm: bool = True,
        aggregate="sum",
        activation: Activation = None,
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        *,
        in_channels: int | None = None,
    ):
        super().__init__(aggregate=aggregate)
        self.channels = check_positive_int(channels, "channels", "GINConv")
        for h in mlp_hidden or []:
            check_positive_int(h, "mlp_hidden entries", "GINConv")
        self.trainable_eps = epsilon is None
        if self.trainable_eps:
            self.eps = nn.Parameter(torch.zeros(()))
        else:
            self.register_buffer("eps", torch.tensor(float(epsilon)))
        self.mlp = MLP(
            mlp_hidden,
            channels,
            mlp_activation,
            activation,
            batchnorm=mlp_batchnorm,
            use_bias=use_bias,
            in_channels=in_channels,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
        )

    def reset_parameters(self) -> None:
        if self.trainable_eps:
            nn.init.zeros_(self.eps)

    def forward(self, x: Tensor, a, edge_weight: Tensor | None = None) -> Tensor:
        inp = prepare("GINConv", self.MODES, x, a, edge_weight=edge_weight)
        agg = self.propagate(inp.x, inp.graph, edge_weight=inp.edge_weight)  # (N, *, F)
        h = torch.mul(inp.x, 1.0 + self.eps).add_(agg)  # (N, *, F); in place on a fresh product
        return inp.restore(self.mlp(h, inp.graph))  # (N, *, C)

    def extra_repr(self) -> str:
        eps = "trainable" if self.trainable_eps else float(self.eps)
        return f"channels={self.channels}, epsilon={eps}, aggregate={self.aggr!r}"
