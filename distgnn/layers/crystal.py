"""CrystalConv (Xie & Grossman, 2018)."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from ..graph import GraphError
from .base import MessagePassing
from .modes import prepare
from .utils import Activation, Initializer, check_positive_int, get_activation, get_initializer


def _edges_like(t: Tensor, like: Tensor) -> Tensor:
    """View per-edge ``t [E, K]`` so it broadcasts against messages ``like [E, *, K]``."""
    return t.view((t.shape[0],) + (1,) * (like.dim() - 2) + (t.shape[-1],))


class CrystalConv(LazyModuleMixin, MessagePassing):
    r"""Crystal graph convolution of `Xie & Grossman <https://arxiv.org/abs/1710.10324>`_.

    .. math::
        x'_i = x_i + \mathrm{aggregate}_{j \to i}\ \sigma\big(z_{ij} W_f + b_f\big) \odot
        g\big(z_{ij} W_s + b_s\big), \qquad z_{ij} = [x_i \,\|\, x_j \,\|\, e_{ji}]

    with ``\sigma`` the logistic sigmoid and ``g`` = ``activation`` (identity when ``None``;
    ``"softplus"`` gives the CGCNN layer). The output has the input's width ``F``. Empty
    neighbourhoods aggregate to 0, so an isolated node keeps ``x_i``. Without edge features
    (``e=None``, as the Spektral code allows) ``z_{ij} = [x_i \| x_j]``, i.e. ``S = 0``.

    Computation: ``z W`` is split by rows, ``x_i W^{(i)} + x_j W^{(j)} + e_{ji} W^{(e)}``, so the
    node terms are projected once per node and only lifted to the edges; no ``[E, 2F + S]``
    tensor is built. The filter and core pre-activations are accumulated in place into their
    gathered target-side terms (the edge term with ``addmm_``), kept apart so that no ``[E, *, 2F]``
    tensor outlives the forward. This is the same function as the reference, not an approximation.

    Deviations from the Spektral reference code: none in the formula. ``aggregate`` also
    accepts a callable; the sizes ``F`` and ``S`` can be given up front (``in_channels``,
    ``in_edge_channels``); calling a built layer with another ``F`` or ``S`` is a clear error.

    Args:
        aggregate: ``'sum'`` (default), ``'mean'``, ``'max'``, ``'min'``, ``'prod'`` or a callable.
        activation: ``g`` above: ``None``, a name or a callable. ``"prelu"`` needs ``in_channels``
            (one slope per channel).
        use_bias: add the biases ``b_f``, ``b_s``.
        kernel_initializer, bias_initializer: Keras names or callables.
        in_channels: input size ``F``; in_edge_channels: edge feature size ``S`` (0: no edge
            features). The kernels are created at the first call unless both are given.

    Shapes:
        x ``[N, F]`` (single/disjoint) or ``[B, N, F]`` (mixed); a: edge_index ``[2, E]``, a graph,
        or dense ``[N, N]``; e (optional) ``[E, S]`` aligned with the edges (``[N, N, S]`` with a
        dense ``a``; shared by the samples in mixed mode). Output ``[N, F]`` / ``[B, N, F]``.
        Parameters: ``kernel_f``, ``kernel_s`` ``[2F + S, F]``, ``bias_f``, ``bias_s`` ``[F]``.

    Modes: single, disjoint, mixed.
    """

    MODES = ("single", "disjoint", "mixed")
    cls_to_become = None

    def __init__(
        self,
        aggregate="sum",
        activation: Activation = None,
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        *,
        in_channels: int | None = None,
        in_edge_channels: int | None = None,
    ):
        super().__init__(aggregate=aggregate)
        if in_channels is not None:
            check_positive_int(in_channels, "in_channels", "CrystalConv")
        if in_edge_channels is not None:
            check_positive_int(in_edge_channels, "in_edge_channels", "CrystalConv", minimum=0)
        self._kernel_init = get_initializer(kernel_initializer, "CrystalConv: kernel_initializer")
        self._bias_init = get_initializer(bias_initializer, "CrystalConv: bias_initializer")
        if in_channels is not None and in_edge_channels is not None:
            shape = (2 * in_channels + in_edge_channels, in_channels)
            self.kernel_f, self.kernel_s = nn.Parameter(torch.empty(shape)), nn.Parameter(torch.empty(shape))
        else:
            self.kernel_f, self.kernel_s = UninitializedParameter(), UninitializedParameter()
        if not use_bias:
            self.bias_f = self.bias_s = None
        elif in_channels is not None:
            self.bias_f, self.bias_s = nn.Parameter(torch.empty(in_channels)), nn.Parameter(torch.empty(in_channels))
        else:
            self.bias_f, self.bias_s = UninitializedParameter(), UninitializedParameter()
        self.activation = get_activation(activation, in_channels, "CrystalConv: activation")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for kernel in (self.kernel_f, self.kernel_s):
            if not isinstance(kernel, UninitializedParameter):
                self._kernel_init(kernel)
        for bias in (self.bias_f, self.bias_s):
            if bias is not None and not isinstance(bias, UninitializedParameter):
                self._bias_init(bias)

    def initialize_parameters(self, x: Tensor, a=None, e: Tensor | None = None, *args, **kwargs) -> None:
        if not self.has_uninitialized_params():  # built with in_channels: nothing to size, nothing to redraw
            return
        f, s = x.shape[-1], 0 if e is None else e.shape[-1]
        with torch.no_grad():
            for kernel in (self.kernel_f, self.kernel_s):
                if isinstance(kernel, UninitializedParameter):
                    kernel.materialize((2 * f + s, f))
            for bias in (self.bias_f, self.bias_s):
                if isinstance(bias, UninitializedParameter):
                    bias.materialize((f,))
            self.reset_parameters()

    def message(
        self, pf_i: Tensor, ps_i: Tensor, q_j: Tensor, e: Tensor | None, wf_e: Tensor, ws_e: Tensor
    ) -> Tensor:
        # pf_i, ps_i are fresh gathers (index_select), so the other terms are added to them in place:
        # on large graphs every [E, *, F] tensor allocated here costs a pass of page faults
        qf_j, qs_j = q_j.chunk(2, dim=-1)  # (E, *, F) each: one halo exchange for both halves
        gate = pf_i.add_(qf_j)  # (E, *, F) filter pre-activation
        core = ps_i.add_(qs_j)  # (E, *, F) core pre-activation
        if e is not None:
            e = e.to(wf_e.dtype)
            if gate.dim() == 2:  # e W_e added in place, no [E, F] temporary
                gate = gate.addmm_(e, wf_e)
                core = core.addmm_(e, ws_e)
            else:  # mixed mode: one edge term shared by the samples
                gate = gate.add_(_edges_like(e @ wf_e, gate))
                core = core.add_(_edges_like(e @ ws_e, core))
        return torch.sigmoid(gate) * self.activation(core)  # (E, *, F)

    def update(self, embeddings: Tensor, x: Tensor) -> Tensor:
        return x + embeddings

    def forward(self, x: Tensor, a, e: Tensor | None = None) -> Tensor:
        inp = prepare("CrystalConv", self.MODES, x, a, e=e)
        f, s = inp.x.shape[-1], 0 if inp.e is None else inp.e.shape[-1]
        if self.kernel_f.shape != (2 * f + s, f):
            raise GraphError(
                f"CrystalConv: the kernels are [{self.kernel_f.shape[0]}, {self.kernel_f.shape[1]}] = "
                f"[2F + S, F] but x has F={f} and e has S={s}"
            )
        w = torch.cat([self.kernel_f[: 2 * f], self.kernel_s[: 2 * f]], dim=1)  # (2F, 2F): [filter | core]
        p = inp.x @ w[:f]  # (N, *, 2F) target-side terms
        if self.bias_f is not None:
            p = p + torch.cat([self.bias_f, self.bias_s])
        q = inp.x @ w[f:]  # (N, *, 2F) source-side terms
        out = self.propagate(
            inp.x, inp.graph, inp.e, pf=p[..., :f], ps=p[..., f:], q=q, wf_e=self.kernel_f[2 * f :],
            ws_e=self.kernel_s[2 * f :],
        )  # (N, *, F)
        return inp.restore(out)

    def extra_repr(self) -> str:
        if self.has_uninitialized_params():
            f = s = None
        else:
            f = self.kernel_f.shape[1]
            s = self.kernel_f.shape[0] - 2 * f
        return f"in_channels={f}, in_edge_channels={s}, aggregate={self.aggr!r}, use_bias={self.bias_f is not None}"
