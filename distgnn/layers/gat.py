"""GATConv (Veličković et al., 2018)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from ..ops import add_self_loops, segment_softmax
from .base import MessagePassing
from .modes import ALL_MODES, prepare
from .utils import Activation, Initializer, check_positive_int, check_rate, dropout, get_activation, get_initializer


class GATConv(LazyModuleMixin, MessagePassing):
    r"""Graph attention of `Veličković et al. <https://arxiv.org/abs/1710.10903>`_.

    .. math::
        h_i = x_i W^{(h)}, \quad
        e_{ij} = \mathrm{LeakyReLU}_{0.2}\big(a_{self}^{(h)} \cdot h_i + a_{neigh}^{(h)} \cdot h_j\big), \quad
        \alpha_{ij} = \mathrm{softmax}_{j \in N(i)}(e_{ij}), \quad
        x'_i = \sigma\Big(\big\Vert_h \sum_j \alpha^{(h)}_{ij} h^{(h)}_j + b\Big)

    per head ``h``; heads are concatenated (``concat_heads``) or averaged. The softmax runs over
    the incoming edges of each node, plus its self-loop when ``add_self_loops`` (remaining loops:
    one per node, never doubled). Dropout on ``alpha`` in training only. Edge weights and the
    values of a dense adjacency are ignored: only its pattern matters. A node without incoming
    edges (possible with ``add_self_loops=False``) outputs the bias.

    Args:
        channels: per-head output size ``C``.
        attn_heads: number of heads ``H``.
        concat_heads: concatenate (output ``H*C``) or average (output ``C``) the heads.
        dropout_rate: dropout on the attention coefficients (default 0.5).
        return_attn_coef: also return the coefficients.
        add_self_loops: include each node in its own neighbourhood.
        activation, use_bias, kernel_initializer, bias_initializer, in_channels: as in GCNConv;
        attn_kernel_initializer: initialiser of ``a_self``, ``a_neigh``.

    Shapes:
        x ``[N, F]`` or ``[B, N, F]``; output ``[N, H*C]`` (or ``[N, C]``), likewise with a leading
        ``B``. Parameters: ``kernel [F, H, C]``, ``attn_kernel_self``/``attn_kernel_neighs``
        ``[C, H, 1]``. With ``return_attn_coef`` the second output is ``(edge_index, alpha)``:
        the edges the softmax ran over (self-loops included, in the graph's local ids) and
        ``alpha [E', H]`` (``[E', B, H]`` in mixed mode); in batch mode a dense ``[B, N, N, H]``.

    Modes: single, disjoint, mixed, batch.
    """

    MODES = ALL_MODES
    cls_to_become = None

    def __init__(
        self,
        channels: int,
        attn_heads: int = 1,
        concat_heads: bool = True,
        dropout_rate: float = 0.5,
        return_attn_coef: bool = False,
        add_self_loops: bool = True,
        activation: Activation = None,
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        attn_kernel_initializer: Initializer = "glorot_uniform",
        *,
        in_channels: int | None = None,
    ):
        super().__init__(aggregate="sum")
        self.channels = check_positive_int(channels, "channels", "GATConv")
        self.attn_heads = check_positive_int(attn_heads, "attn_heads", "GATConv")
        self.concat_heads = bool(concat_heads)
        self.dropout_rate = check_rate(dropout_rate, "dropout_rate", "GATConv")
        self.return_attn_coef = bool(return_attn_coef)
        self.add_self_loops = bool(add_self_loops)
        self._kernel_init = get_initializer(kernel_initializer, "GATConv: kernel_initializer")
        self._bias_init = get_initializer(bias_initializer, "GATConv: bias_initializer")
        self._attn_init = get_initializer(attn_kernel_initializer, "GATConv: attn_kernel_initializer")
        h, c = self.attn_heads, self.channels
        if in_channels is None:
            self.kernel = UninitializedParameter()
        else:
            self.kernel = nn.Parameter(torch.empty(in_channels, h, c))
        self.attn_kernel_self = nn.Parameter(torch.empty(c, h, 1))
        self.attn_kernel_neighs = nn.Parameter(torch.empty(c, h, 1))
        out = h * c if self.concat_heads else c
        self.bias = nn.Parameter(torch.empty(out)) if use_bias else None
        self.activation = get_activation(activation, out, "GATConv: activation")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params():
            self._kernel_init(self.kernel)
        self._attn_init(self.attn_kernel_self)
        self._attn_init(self.attn_kernel_neighs)
        if self.bias is not None:
            self._bias_init(self.bias)

    def initialize_parameters(self, x: Tensor, *args, **kwargs) -> None:
        if self.has_uninitialized_params():
            with torch.no_grad():
                self.kernel.materialize((x.shape[-1], self.attn_heads, self.channels))
                self._kernel_init(self.kernel)

    def forward(self, x: Tensor, a, mask: Tensor | None = None):
        inp = prepare("GATConv", self.MODES, x, a, mask=mask)
        g = add_self_loops(inp.graph)[0] if self.add_self_loops else inp.graph
        f, heads, c = self.kernel.shape
        # a . (x W) = x . (W a): fold the attention vectors into the kernel, so that one matmul
        # gives every head's features and both attention scores
        a_self = (self.kernel * self.attn_kernel_self[..., 0].t()).sum(-1)  # (F, H)
        a_neigh = (self.kernel * self.attn_kernel_neighs[..., 0].t()).sum(-1)  # (F, H)
        proj = inp.x @ torch.cat([self.kernel.reshape(f, heads * c), a_self, a_neigh], 1)  # (N, *, H*C + 2H)
        h = proj[..., : heads * c].unflatten(-1, (heads, c))  # (N, *, H, C)
        s_self, s_neigh = proj[..., heads * c :].split(heads, -1)  # (N, *, H) each
        ev = self.lift(g, s_i=s_self, s_j=s_neigh)
        scores = F.leaky_relu(ev["s_i"] + ev["s_j"], 0.2)  # (E, *, H)
        alpha = segment_softmax(scores, g.edge_index[1], g.num_nodes)  # (E, *, H)
        alpha_used = dropout(alpha, self.dropout_rate, self.training)
        out = self.propagate(h, g, edge_weight=alpha_used)  # (N, *, H, C)
        out = out.flatten(-2) if self.concat_heads else out.mean(-2)  # (N, *, H*C) or (N, *, C)
        if self.bias is not None:
            out = out + self.bias
        out = inp.restore(self.activation(out))
        if not self.return_attn_coef:
            return out
        return out, self._attn_output(inp, g, alpha)

    def _attn_output(self, inp, g, alpha: Tensor):
        if inp.mode == "batch":
            b, n = inp.batch_shape
            dense = alpha.new_zeros(b * n, n, self.attn_heads)
            src, dst = g.edge_index
            dense[dst, src % n] = alpha
            if inp.mask is not None:  # masked nodes: zero rows, like their outputs
                dense = dense * inp.mask.view(-1, 1, 1).to(dense.dtype)
            return dense.view(b, n, n, self.attn_heads)
        return g.edge_index, alpha

    def extra_repr(self) -> str:
        f = None if self.has_uninitialized_params() else self.kernel.shape[0]
        return (
            f"in_channels={f}, channels={self.channels}, attn_heads={self.attn_heads}, "
            f"concat_heads={self.concat_heads}, dropout_rate={self.dropout_rate}, add_self_loops={self.add_self_loops}"
        )
