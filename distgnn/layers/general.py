"""GeneralConv (You et al., 2020)."""
from __future__ import annotations

from torch import Tensor, nn

from .base import MessagePassing
from .modes import prepare
from .utils import (
    Activation,
    Dense,
    GraphBatchNorm,
    Initializer,
    PReLU,
    check_positive_int,
    check_rate,
    dropout,
    get_activation,
)


class GeneralConv(MessagePassing):
    r"""The general convolution of the GNN design space of
    `You et al. <https://arxiv.org/abs/2011.08843>`_.

    .. math::
        h_j = \sigma\big(\mathrm{dropout}(\mathrm{BN}(x_j W + b))\big), \qquad
        x'_i = \mathrm{aggregate}_{j \to i}\ h_j, \qquad
        X' = A\, \sigma\big(\mathrm{dropout}(\mathrm{BN}(X W + b))\big) \ \text{(sum)}

    The transform is node-wise and runs before the aggregation; no self-loops are added and
    there is no skip connection, so a node without incoming edges outputs 0. ``BN`` is
    :class:`~distgnn.layers.utils.GraphBatchNorm`: in training mode it normalises with the batch
    statistics over ALL nodes of the whole graph (over every part of a partitioned graph, and
    over the samples too in mixed mode, as Keras does over all leading axes), in evaluation mode
    with the moving averages (Keras defaults: eps 1e-3, momentum 0.99). Dropout only in training.
    ``"prelu"`` (the default) has one trainable slope per channel, initialised to 0 as in Keras.

    Deviation from the Spektral reference code: ``aggregate`` accepts every reduction of
    :class:`~distgnn.layers.base.MessagePassing` and a callable. (Spektral applies dropout before
    the activation as here; with ReLU-like activations the order does not matter.)

    Args:
        channels: output size ``C`` (default 256).
        batch_norm: apply the batch norm.
        dropout: dropout rate in ``[0, 1)`` (training only).
        aggregate: ``'sum'`` (default), ``'mean'``, ``'max'``, ``'min'``, ``'prod'`` or a callable.
        activation: default ``"prelu"``; ``None``, a name, a module or a callable.
        use_bias, kernel_initializer, bias_initializer, in_channels: as in GCNConv.

    Shapes:
        x ``[N, F]`` or ``[B, N, F]`` (mixed); a: edge_index ``[2, E]``, a graph or dense
        ``[N, N]``. Output ``[N, C]`` / ``[B, N, C]``.

    Modes: single, disjoint, mixed.
    """

    MODES = ("single", "disjoint", "mixed")

    def __init__(
        self,
        channels: int = 256,
        batch_norm: bool = True,
        dropout: float = 0.0,
        aggregate="sum",
        activation: Activation = "prelu",
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        *,
        in_channels: int | None = None,
    ):
        super().__init__(aggregate=aggregate)
        self.channels = check_positive_int(channels, "channels", "GeneralConv")
        self.dropout_rate = check_rate(dropout, "dropout", "GeneralConv")
        if in_channels is not None:
            check_positive_int(in_channels, "in_channels", "GeneralConv")
        try:
            self.kernel = Dense(channels, in_channels, use_bias, kernel_initializer, bias_initializer)
        except ValueError as err:  # unknown initializer: name the layer
            raise ValueError(f"GeneralConv: {err}") from None
        self.batch_norm = GraphBatchNorm(channels) if batch_norm else None
        self.activation = get_activation(activation, channels, "GeneralConv: activation")

    def reset_parameters(self) -> None:
        self.kernel.reset_parameters()
        if self.batch_norm is not None:
            self.batch_norm.reset_parameters()
        if isinstance(self.activation, PReLU):
            nn.init.zeros_(self.activation.alpha)
        elif hasattr(self.activation, "reset_parameters"):
            self.activation.reset_parameters()

    def forward(self, x: Tensor, a) -> Tensor:
        inp = prepare("GeneralConv", self.MODES, x, a)
        h = self.kernel(inp.x)  # (N, *, C)
        if self.batch_norm is not None:
            h = self.batch_norm(h, inp.graph)  # whole-graph statistics
        h = self.activation(dropout(h, self.dropout_rate, self.training))  # (N, *, C)
        out = self.propagate(h, inp.graph)  # (N, *, C)
        return inp.restore(out)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.kernel.in_features}, channels={self.channels}, "
            f"batch_norm={self.batch_norm is not None}, dropout={self.dropout_rate}, aggregate={self.aggr!r}"
        )
