"""APPNPConv (Gasteiger et al., 2019)."""
from __future__ import annotations

from typing import Sequence

from torch import Tensor

from ..ops import gcn_norm
from .base import MessagePassing
from .modes import ALL_MODES, prepare
from .utils import MLP, Activation, Initializer, check_positive_int, check_rate, get_activation


class APPNPConv(MessagePassing):
    r"""Approximate personalised propagation of neural predictions
    (`Gasteiger et al. <https://arxiv.org/abs/1810.05997>`_).

    .. math::
        Z^{(0)} = \mathrm{MLP}(X), \qquad
        Z^{(k+1)} = (1 - \alpha)\, \hat D^{-1/2} (A + I) \hat D^{-1/2} Z^{(k)} + \alpha Z^{(0)},
        \qquad X' = \sigma(Z^{(K)})

    with ``K = propagations``. The MLP has, per entry of ``mlp_hidden``, dropout then a Dense with
    ``mlp_activation``; then a Dense to ``channels`` (no dropout before it unless hidden layers
    exist, as in the reference). On a partition every propagation step exchanges halo rows once.

    Args:
        channels: output size ``C``.
        alpha: teleport probability in ``[0, 1]``.
        propagations: number of propagation steps ``K``.
        mlp_hidden, mlp_activation, dropout_rate: the MLP.
        activation, use_bias, kernel_initializer, bias_initializer, in_channels: as in GCNConv.

    Shapes:
        as GCNConv. Modes: single, disjoint, mixed, batch.
    """

    MODES = ALL_MODES

    def __init__(
        self,
        channels: int,
        alpha: float = 0.2,
        propagations: int = 1,
        mlp_hidden: Sequence[int] | None = None,
        mlp_activation: Activation = "relu",
        dropout_rate: float = 0.0,
        activation: Activation = None,
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        *,
        in_channels: int | None = None,
    ):
        super().__init__(aggregate="sum")
        self.channels = check_positive_int(channels, "channels", "APPNPConv")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"APPNPConv: alpha must be in [0, 1], got {alpha!r}")
        self.alpha = float(alpha)
        self.propagations = check_positive_int(propagations, "propagations", "APPNPConv", minimum=0)
        self.dropout_rate = check_rate(dropout_rate, "dropout_rate", "APPNPConv")
        self.mlp = MLP(
            mlp_hidden,
            channels,
            mlp_activation,
            None,
            dropout=self.dropout_rate,
            use_bias=use_bias,
            in_channels=in_channels,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
        )
        self.activation = get_activation(activation, channels, "APPNPConv: activation")

    def forward(self, x: Tensor, a, edge_weight: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        inp = prepare("APPNPConv", self.MODES, x, a, edge_weight=edge_weight, mask=mask)
        g, w = gcn_norm(inp.graph, inp.edge_weight, dtype=inp.x.dtype)
        z0 = self.mlp(inp.x, g)  # (N, *, C)
        z = z0
        for _ in range(self.propagations):
            z = (1.0 - self.alpha) * self.propagate(z, g, edge_weight=w) + self.alpha * z0  # (N, *, C)
        return inp.restore(self.activation(z))

    @staticmethod
    def preprocess(a):
        """``gcn_filter(a)``: the propagation matrix this layer builds internally."""
        from .preprocessing import gcn_filter

        return gcn_filter(a)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, alpha={self.alpha}, propagations={self.propagations}"
