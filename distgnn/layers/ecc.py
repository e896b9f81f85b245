"""ECCConv (Simonovsky & Komodakis, 2017)."""
from __future__ import annotations

from typing import Callable, Sequence, Union

import torch
from torch import Tensor, nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from ..graph import GraphError
from .base import MessagePassing
from .modes import ALL_MODES, prepare
from .utils import Activation, Dense, Initializer, check_positive_int, get_activation, get_initializer


class ECCConv(LazyModuleMixin, MessagePassing):
    r"""Edge-conditioned convolution of `Simonovsky & Komodakis <https://arxiv.org/abs/1704.02901>`_.

    .. math::
        x'_i = \sigma\Big(x_i W_{root} + \sum_{j \to i} x_j\, \Theta(e_{ji}) + b\Big), \qquad
        X' = \sigma\Big(X W_{root} + \sum_{(j \to i)} \mathbb{1}_i\, x_j \Theta(e_{ji}) + b\Big)

    ``\Theta`` is the kernel network: one Dense + ReLU per entry of ``kernel_network``, then a
    Dense to ``F * C`` reshaped to ``[F, C]`` (row-major: entry ``(f, c)`` is output ``f * C + c``).
    ``kernel_network`` may instead be a module or callable mapping ``e [E, S]`` to ``[E, F * C]``,
    e.g. ``FeatureModulator(S, F * C)``; it then replaces the whole kernel network (the layer adds
    no Dense of its own, and ``use_bias`` only concerns ``b``).
    Every message ``x_j \Theta(e_{ji})`` is one batched product ``[E, *, F] x [E, F, C]``
    (``torch.bmm``), computed edge-wise in :meth:`message`. No ``W_{root}`` term when
    ``root=False``. Multi-edges each send a message; empty neighbourhoods contribute 0.

    ``activation`` is applied last (it is in the seed signature; the formula of the layer table
    omits it, and with ``None`` the two agree). ``use_bias`` also controls the biases of the kernel network,
    as in Spektral. Deviation from the Spektral reference code: none in the formula. Edge
    features are required, as in Spektral (a missing ``e`` is a clear error here, an unpacking
    error there); the sizes ``F`` and ``S`` can be given up front.

    Args:
        channels: output size ``C``.
        kernel_network: hidden sizes of the kernel network (default: none, a single Dense), or a
            module/callable ``e [E, S] -> [E, F * C]`` used as the whole kernel network.
        root: add the root term ``x_i W_{root}``.
        activation, use_bias, kernel_initializer, bias_initializer: as in GCNConv.
        in_channels: input size ``F``; in_edge_channels: edge feature size ``S``. Parameters whose
            shape they determine are created at construction, the rest at the first call.

    Shapes:
        x ``[N, F]`` (single/disjoint), ``[B, N, F]`` (mixed, batch); a: edge_index ``[2, E]``, a
        graph, dense ``[N, N]`` or ``[B, N, N]`` (batch); e ``[E, S]`` (``[N, N, S]`` with a dense
        ``a``, ``[B, N, N, S]`` in batch mode; shared by the samples in mixed mode); mask
        ``[B, N]`` (batch). Output ``[N, C]`` / ``[B, N, C]``. Parameters: ``root_kernel [F, C]``,
        ``kernel_network.{k}`` (Dense ``[S or h_{k-1}, h_k]``), ``kernel_out [h_last or S, F*C]``,
        ``kernel_out_bias [F*C]``, ``bias [C]``.

    Modes: single, disjoint, mixed, batch.
    """

    MODES = ALL_MODES
    cls_to_become = None

    def __init__(
        self,
        channels: int,
        kernel_network: Union[Sequence[int], nn.Module, Callable[[Tensor], Tensor], None] = None,
        root: bool = True,
        activation: Activation = None,
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        *,
        in_channels: int | None = None,
        in_edge_channels: int | None = None,
    ):
        super().__init__(aggregate="sum")
        self.channels = check_positive_int(channels, "channels", "ECCConv")
        # a module/callable is the whole kernel network: no hidden Dense, no kernel_out
        self.kernel_fn = kernel_network if callable(kernel_network) else None
        hidden = [] if self.kernel_fn is not None else list(kernel_network or [])
        for h in hidden:
            check_positive_int(h, "kernel_network entries", "ECCConv")
        if in_channels is not None:
            check_positive_int(in_channels, "in_channels", "ECCConv")
        if in_edge_channels is not None:
            check_positive_int(in_edge_channels, "in_edge_channels", "ECCConv")
        self.root = bool(root)
        self._kernel_init = get_initializer(kernel_initializer, "ECCConv: kernel_initializer")
        self._bias_init = get_initializer(bias_initializer, "ECCConv: bias_initializer")
        sizes = [in_edge_channels] + hidden
        self.kernel_network = nn.ModuleList(
            Dense(h, sizes[k], use_bias, kernel_initializer, bias_initializer) for k, h in enumerate(hidden)
        )
        c, f, h_last = channels, in_channels, sizes[-1]
        own_out = self.kernel_fn is None
        self.kernel_out = _param(None if f is None or h_last is None else (h_last, f * c)) if own_out else None
        self.kernel_out_bias = _param(None if f is None else (f * c,)) if use_bias and own_out else None
        self.root_kernel = _param(None if f is None else (f, c)) if self.root else None
        self.bias = nn.Parameter(torch.empty(c)) if use_bias else None
        self.activation = get_activation(activation, channels, "ECCConv: activation")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for dense in self.kernel_network:
            dense.reset_parameters()
        for kernel in (self.kernel_out, self.root_kernel):
            if kernel is not None and not isinstance(kernel, UninitializedParameter):
                self._kernel_init(kernel)
        for bias in (self.kernel_out_bias, self.bias):
            if bias is not None and not isinstance(bias, UninitializedParameter):
                self._bias_init(bias)

    def initialize_parameters(self, x: Tensor, a=None, e: Tensor | None = None, *args, **kwargs) -> None:
        _check_edge_features(e)
        f, c = x.shape[-1], self.channels
        h_last = self.kernel_network[-1].units if len(self.kernel_network) else e.shape[-1]
        todo = (
            (self.kernel_out, (h_last, f * c), self._kernel_init),
            (self.kernel_out_bias, (f * c,), self._bias_init),
            (self.root_kernel, (f, c), self._kernel_init),
        )
        with torch.no_grad():
            for p, shape, init in todo:
                if isinstance(p, UninitializedParameter):
                    p.materialize(shape)
                    init(p)

    def message(self, x_j: Tensor, theta: Tensor) -> Tensor:
        # x_j (E, F) or (E, B, F) in mixed mode; theta (E, F, C)
        if x_j.dim() == 2:
            return torch.bmm(x_j.unsqueeze(1), theta).squeeze(1)  # (E, C)
        return torch.bmm(x_j, theta)  # (E, B, C)

    def forward(self, x: Tensor, a, e: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        _check_edge_features(e)
        inp = prepare("ECCConv", self.MODES, x, a, e=e, mask=mask)
        f, c = inp.x.shape[-1], self.channels
        if self.kernel_fn is not None:
            theta = self._custom_kernels(inp.e, f)  # (E, F*C)
        else:
            theta = self._kernels(inp.e, f)  # (E, F*C)
        theta = theta.view(theta.shape[0], f, c)  # (E, F, C)
        out = self.propagate(inp.x, inp.graph, theta=theta)  # (N, *, C)
        if self.root_kernel is not None:
            out = out + inp.x @ self.root_kernel  # (N, *, C)
        if self.bias is not None:
            out = out + self.bias
        return inp.restore(self.activation(out))

    def _kernels(self, e: Tensor, f: int) -> Tensor:
        c = self.channels
        if self.kernel_out.shape[1] != f * c:
            raise GraphError(f"ECCConv: the layer was built for F={self.kernel_out.shape[1] // c} input features, got F={f}")
        s = self.kernel_network[0].in_features if len(self.kernel_network) else self.kernel_out.shape[0]
        if s is not None and e.shape[-1] != s:
            raise GraphError(f"ECCConv: the layer was built for S={s} edge features, got S={e.shape[-1]}")
        h = e.to(self.kernel_out.dtype)  # (E, S)
        for dense in self.kernel_network:
            h = torch.relu(dense(h))  # (E, h_k)
        theta = h @ self.kernel_out  # (E, F*C)
        if self.kernel_out_bias is not None:
            theta = theta + self.kernel_out_bias
        return theta

    def _custom_kernels(self, e: Tensor, f: int) -> Tensor:
        theta = self.kernel_fn(e)  # (E, F*C)
        want = (e.shape[0], f * self.channels)
        if not isinstance(theta, Tensor) or tuple(theta.shape) != want:
            got = tuple(theta.shape) if isinstance(theta, Tensor) else type(theta).__name__
            raise GraphError(
                f"ECCConv: the kernel network must map e [E, S] to [E, F*C] = {list(want)} "
                f"(F={f} input features, C={self.channels} channels), got {got}"
            )
        return theta

    def extra_repr(self) -> str:
        if self.kernel_fn is not None:
            f = None if self.root_kernel is None or self.has_uninitialized_params() else self.root_kernel.shape[0]
            return f"in_channels={f}, channels={self.channels}, kernel_network=<custom>, root={self.root}"
        f = None if self.has_uninitialized_params() else self.kernel_out.shape[1] // self.channels
        hidden = [d.units for d in self.kernel_network]
        return f"in_channels={f}, channels={self.channels}, kernel_network={hidden}, root={self.root}"


def _param(shape) -> nn.Parameter:
    return UninitializedParameter() if shape is None else nn.Parameter(torch.empty(shape))


def _check_edge_features(e) -> None:
    if e is None:
        raise GraphError("ECCConv needs edge features: call it as layer(x, a, e=e) with e [E, S]")
