"""EdgeConv (Wang et al., 2019)."""
from __future__ import annotations

from typing import Sequence

from torch import Tensor

from ..graph import GraphError
from .base import MessagePassing
from .modes import prepare
from .utils import MLP, Activation, Dense, Initializer, check_positive_int, get_activation


class EdgeConv(MessagePassing):
    r"""Edge convolution of `Wang et al. <https://arxiv.org/abs/1801.07829>`_ (DGCNN).

    .. math::
        x'_i = \mathrm{aggregate}_{j \to i}\ \mathrm{MLP}\big([x_i \,\|\, x_j - x_i]\big)

    The MLP has one Dense + ``mlp_activation`` per entry of ``mlp_hidden``, then a Dense to
    ``channels`` followed by ``activation``: the activation is applied to every message, before
    the aggregation. No self-loops are added; empty neighbourhoods aggregate to 0.

    Computation: the first Dense (kernel ``[2F, H]`` split by rows into ``W_a``, ``W_b``) is
    evaluated per node, ``[x_i \| x_j - x_i] W = x_i (W_a - W_b) + x_j W_b``, and only the two
    ``[N, H]`` projections are lifted to the edges; the rest of the MLP runs per edge in
    :meth:`message`. Same function as the reference, without an ``[E, 2F]`` input tensor.

    Deviation from the Spektral reference code: ``aggregate`` accepts every reduction of
    :class:`~distgnn.layers.base.MessagePassing` and a callable.

    Args:
        channels: output size ``C``.
        mlp_hidden: hidden sizes of the MLP (default none: a single Dense).
        mlp_activation: activation of the hidden layers.
        aggregate: ``'sum'`` (default), ``'mean'``, ``'max'``, ``'min'``, ``'prod'`` or a callable.
        activation: applied to the last Dense's output (per message).
        use_bias, kernel_initializer, bias_initializer, in_channels: as in GCNConv.

    Shapes:
        x ``[N, F]`` or ``[B, N, F]`` (mixed); a: edge_index ``[2, E]``, a graph or dense
        ``[N, N]``. Output ``[N, C]`` / ``[B, N, C]``. The first kernel is ``[2F, h_0 or C]``.

    Modes: single, disjoint, mixed.
    """

    MODES = ("single", "disjoint", "mixed")

    def __init__(
        self,
        channels: int,
        mlp_hidden: Sequence[int] | None = None,
        mlp_activation: Activation = "relu",
        aggregate="sum",
        activation: Activation = None,
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        *,
        in_channels: int | None = None,
    ):
        super().__init__(aggregate=aggregate)
        self.channels = check_positive_int(channels, "channels", "EdgeConv")
        for h in mlp_hidden or []:
            check_positive_int(h, "mlp_hidden entries", "EdgeConv")
        if in_channels is not None:
            check_positive_int(in_channels, "in_channels", "EdgeConv")
        get_activation(mlp_activation, 1, "EdgeConv: mlp_activation")  # checked even when unused
        try:
            self.mlp = MLP(
                mlp_hidden,
                channels,
                mlp_activation,
                activation,
                use_bias=use_bias,
                in_channels=None if in_channels is None else 2 * in_channels,
                kernel_initializer=kernel_initializer,
                bias_initializer=bias_initializer,
            )
        except ValueError as err:  # unknown activation or initializer: name the layer
            raise ValueError(f"EdgeConv: {err}") from None

    def reset_parameters(self) -> None:
        for m in self.mlp.modules():
            if isinstance(m, Dense):
                m.reset_parameters()

    @property
    def _first(self) -> Dense:
        return self.mlp.dense[0] if len(self.mlp.dense) else self.mlp.out

    def message(self, u_i: Tensor, v_j: Tensor) -> Tensor:
        h = u_i + v_j  # (E, *, H): first Dense of the MLP on [x_i || x_j - x_i]
        mlp = self.mlp
        if not len(mlp.dense):
            return mlp.out_act(h)  # (E, *, C)
        h = mlp.acts[0](h)
        for dense, act in zip(mlp.dense[1:], mlp.acts[1:]):
            h = act(dense(h))  # (E, *, h_k)
        return mlp.out_act(mlp.out(h))  # (E, *, C)

    def forward(self, x: Tensor, a) -> Tensor:
        inp = prepare("EdgeConv", self.MODES, x, a)
        f, first = inp.x.shape[-1], self._first
        if first.has_uninitialized_params():
            first.initialize_parameters(inp.x.new_empty(0, 2 * f))
        w = first.kernel  # (2F, H)
        if w.shape[0] != 2 * f:
            raise GraphError(f"EdgeConv: the layer was built for F={w.shape[0] // 2} input features, got F={f}")
        u = inp.x @ (w[:f] - w[f:])  # (N, *, H) target-side term
        if first.bias is not None:
            u = u + first.bias
        v = inp.x @ w[f:]  # (N, *, H) source-side term
        out = self.propagate(inp.x, inp.graph, u=u, v=v)  # (N, *, C)
        return inp.restore(out)

    def extra_repr(self) -> str:
        f = self._first.in_features
        return f"in_channels={None if f is None else f // 2}, channels={self.channels}, aggregate={self.aggr!r}"
