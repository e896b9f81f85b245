"""GatedGraphConv (Li et al., 2016)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..graph import GraphError
from .base import MessagePassing
from .modes import prepare
from .utils import Activation, Initializer, check_positive_int, get_activation, get_initializer


class GatedGraphConv(MessagePassing):
    r"""Gated graph convolution of `Li et al. <https://arxiv.org/abs/1511.05493>`_.

    .. math::
        h^{(0)}_i = [x_i \,\|\, 0] \in \mathbb{R}^C, \qquad
        m^{(l)}_i = \sum_{j \to i} h^{(l-1)}_j W_l, \qquad
        h^{(l)}_i = \mathrm{GRU}\big(m^{(l)}_i, h^{(l-1)}_i\big), \qquad
        x'_i = \sigma\big(h^{(L)}_i\big)

    for ``l = 1 .. L = n_layers``; in matrix form ``M^{(l)} = A H^{(l-1)} W_l``. The input is
    zero-padded to ``channels`` (so ``F <= channels``, checked at every call). Each step is one
    neighbour exchange of ``H`` (one halo exchange on a partition).

    Computation: the GRU reads ``m`` only through its input projection ``m W_{ih}^T``, so each step
    computes ``(A H) (W_l W_{ih}^T)``: the ``[C, C]`` and ``[C, 3C]`` products are folded into one
    (a ``C x 3C`` matrix formed once per call), one ``[N, C] x [C, C]`` product less per step. The
    same function as ``gru(A H W_l, H)``, rounding aside.

    The GRU (one cell shared by all steps) is a ``torch.nn.GRUCell`` (its parameters and its
    formula, evaluated from the folded input gates above), input ``m``, state ``h``:

    .. math::
        r = \sigma(m W_{ir}^T + b_{ir} + h W_{hr}^T + b_{hr}), \quad
        z = \sigma(m W_{iz}^T + b_{iz} + h W_{hz}^T + b_{hz}), \\
        n = \tanh\big(m W_{in}^T + b_{in} + r \odot (h W_{hn}^T + b_{hn})\big), \quad
        h' = (1 - z) \odot n + z \odot h

    This is the same function as the Keras ``GRUCell`` with its TF2 default ``reset_after=True``
    (reset gate applied after the recurrent product, two bias vectors) that Spektral uses; only
    the storage differs (torch stacks the gates ``r, z, n`` as rows of ``weight_ih``/``weight_hh``
    ``[3C, C]``, Keras stacks ``z, r, h`` as columns of ``[C, 3C]``). The initialisation is the
    Keras one: ``kernel_initializer`` for ``W_l`` and the input weights, orthogonal recurrent
    weights, ``bias_initializer`` for both biases.

    Deviations from the Spektral reference code: none in the formula (Spektral pads with
    ``tf.pad`` and fails with an opaque error when ``F > channels``; here it is a clear error).

    Args:
        channels: state size ``C`` (also the output size); ``F <= C``.
        n_layers: number of propagation steps ``L``.
        activation: applied to the final state.
        use_bias: biases of the GRU.
        kernel_initializer, bias_initializer: Keras names or callables.
        in_channels: input size ``F`` (optional; no parameter depends on it, it is only checked).

    Shapes:
        x ``[N, F]`` or ``[B, N, F]`` (mixed); a: edge_index ``[2, E]``, a graph or dense
        ``[N, N]``. Output ``[N, C]`` / ``[B, N, C]``. Parameters: ``kernel [L, C, C]`` and the
        GRU cell's ``weight_ih``, ``weight_hh [3C, C]``, ``bias_ih``, ``bias_hh [3C]``.

    Modes: single, disjoint, mixed.
    """

    MODES = ("single", "disjoint", "mixed")

    def __init__(
        self,
        channels: int,
        n_layers: int,
        activation: Activation = None,
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        *,
        in_channels: int | None = None,
    ):
        super().__init__(aggregate="sum")
        self.channels = check_positive_int(channels, "channels", "GatedGraphConv")
        self.n_layers = check_positive_int(n_layers, "n_layers", "GatedGraphConv")
        if in_channels is not None:
            check_positive_int(in_channels, "in_channels", "GatedGraphConv")
            _check_width(in_channels, channels)
        self.in_channels = in_channels
        self._kernel_init = get_initializer(kernel_initializer, "GatedGraphConv: kernel_initializer")
        self._bias_init = get_initializer(bias_initializer, "GatedGraphConv: bias_initializer")
        self.kernel = nn.Parameter(torch.empty(n_layers, channels, channels))
        self.gru = nn.GRUCell(channels, channels, bias=use_bias)
        self.activation = get_activation(activation, channels, "GatedGraphConv: activation")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        c = self.channels
        self._kernel_init(self.kernel)
        with torch.no_grad():  # Keras layout [C, 3C] for the fans, stored transposed
            w = self.gru.weight_ih.new_empty(c, 3 * c)
            self._kernel_init(w)
            self.gru.weight_ih.copy_(w.t())
            nn.init.orthogonal_(w)
            self.gru.weight_hh.copy_(w.t())
        if self.gru.bias:
            self._bias_init(self.gru.bias_ih)
            self._bias_init(self.gru.bias_hh)

    def forward(self, x: Tensor, a) -> Tensor:
        inp = prepare("GatedGraphConv", self.MODES, x, a)
        f, c = inp.x.shape[-1], self.channels
        _check_width(f, c)
        if self.in_channels is not None and f != self.in_channels:
            raise GraphError(f"GatedGraphConv: built with in_channels={self.in_channels}, got F={f}")
        h = F.pad(inp.x, (0, c - f)) if f < c else inp.x  # (N, *, C)
        lead = h.shape[:-1]
        gru = self.gru
        # the GRU only sees m through m W_ih^T = (A H) (W_l W_ih^T): fold W_l into the input weights
        w_in = self.kernel @ gru.weight_ih.t()  # (L, C, 3C)
        for l in range(self.n_layers):
            agg = self.propagate(h, inp.graph).reshape(-1, c)  # (N', C): A H, N' = N * prod(*)
            # (N', 3C) input gates m W_ih^T + b_ih
            gates_in = agg @ w_in[l] if gru.bias_ih is None else torch.addmm(gru.bias_ih, agg, w_in[l])
            h = _gru_cell(gates_in, h.reshape(-1, c), gru).view(lead + (c,))  # (N, *, C)
        return inp.restore(self.activation(h))

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, channels={self.channels}, n_layers={self.n_layers}, use_bias={self.gru.bias}"


def _gru_cell(gates_in: Tensor, h: Tensor, gru: nn.GRUCell) -> Tensor:
    """``gru(m, h)`` given its input gates ``gates_in = m W_ih^T + b_ih [N, 3C]`` (not ``m``).

    The same operations as torch's own CPU GRU cell with precomputed input gates: in-place
    updates of the fresh gate products (``unsafe_chunk``), so no more tensors are allocated.
    """
    gates_h = F.linear(h, gru.weight_hh, gru.bias_hh)  # (N, 3C)
    i_r, i_z, i_n = gates_in.unsafe_chunk(3, 1)  # (N, C) each
    h_r, h_z, h_n = gates_h.unsafe_chunk(3, 1)
    r = h_r.add_(i_r).sigmoid_()  # reset gate
    z = h_z.add_(i_z).sigmoid_()  # update gate
    n = i_n.add(h_n.mul_(r)).tanh_()  # candidate state
    return (h - n).mul_(z).add_(n)  # (1 - z) n + z h


def _check_width(f: int, channels: int) -> None:
    if f > channels:
        raise ValueError(
            f"GatedGraphConv: the input has F={f} features but channels={channels}; the input is "
            f"zero-padded to channels, so use channels >= {f} (or reduce the input first)"
        )
