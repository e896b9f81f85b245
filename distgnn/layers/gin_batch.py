"""GINConvBatch: GINConv on dense batches."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .gin import GINConv
from .modes import prepare
from .utils import Activation, Initializer, check_positive_int


def as_dense_batch(x, a, e: Tensor | None = None, mask: Tensor | None = None):
    """A single dense graph as a batch of one, for the batch-only layers.

    ``x [N, F]``, dense ``a [N, N]`` (``e [N, N, S]``, ``mask [N]``) become ``[1, ...]``; anything
    else is returned unchanged (and validated later by :func:`~distgnn.layers.modes.prepare`).
    Returns ``(x, a, e, mask, single)``; ``single`` says to drop the batch dimension afterwards.
    """
    dense = isinstance(a, Tensor) and a.is_floating_point() and a.layout == torch.strided
    if dense and isinstance(x, Tensor) and x.dim() == 2 and a.dim() == 2:
        e = None if e is None else e.unsqueeze(0)
        mask = None if mask is None else mask.unsqueeze(0)
        return x.unsqueeze(0), a.unsqueeze(0), e, mask, True
    return x, a, e, mask, False


def _plain_dense_batch(x, a, mask) -> bool:
    """``x [B, N, F]``, dense float ``a [B, N, N]`` and ``mask`` None or ``[B, N]``."""
    return (
        isinstance(x, Tensor)
        and isinstance(a, Tensor)
        and x.dim() == 3
        and a.dim() == 3
        and a.is_floating_point()
        and a.layout == torch.strided
        and a.shape == (x.shape[0], x.shape[1], x.shape[1])
        and (mask is None or (isinstance(mask, Tensor) and mask.shape == x.shape[:2]))
    )


class GINConvBatch(GINConv):
    r"""GINConv (`Xu et al. <https://arxiv.org/abs/1810.00826>`_) on dense batches.

    .. math::
        X'_b = \mathrm{MLP}\big((1 + \epsilon) X_b + A_b X_b\big)

    for every sample ``b``, with ``(A X)_i = \sum_j a_{ij} x_j`` (the values of ``a`` weight the
    neighbours, as in the dense product of the Spektral reference). The MLP is GINConv's: one
    block per entry of ``mlp_hidden`` (Dense, ``mlp_activation``, batch norm when
    ``mlp_batchnorm``), then a Dense to ``channels`` and ``activation``.

    Batch norm: the statistics (training mode) are taken over the VALID nodes of the whole batch,
    i.e. the nodes with ``mask == True`` in every sample (all ``B * N`` nodes when no mask is
    given, so pass a mask when samples are padded); masked nodes never enter the statistics and
    output zeros.

    ``aggregate``: ``'sum'`` (default) is ``A X`` above. Other reductions of
    :class:`~distgnn.layers.base.MessagePassing` reduce the weighted messages ``a_ij x_j`` over the
    nonzeros of row ``i`` (``'mean'`` divides by their number); with a 0/1 adjacency this is
    GINConv's aggregation.

    Args: as :class:`~distgnn.layers.gin.GINConv` (``channels``, ``epsilon``, ``mlp_hidden``,
    ``mlp_activation``, ``mlp_batchnorm``, ``aggregate``, ``activation``, ``use_bias``,
    ``kernel_initializer``, ``bias_initializer``, ``in_channels``).

    Shapes:
        x ``[B, N, F]``; a ``[B, N, N]`` (``a[b, i, j]``: edge ``j -> i``); mask ``[B, N]``
        (optional). Output ``[B, N, C]``, zero rows for masked nodes. A single dense graph
        (``x [N, F]``, ``a [N, N]``) is treated as a batch of one and returned as ``[N, C]``.

    Modes: batch (sparse graphs: :class:`~distgnn.layers.gin.GINConv`).
    """

    MODES = ("batch",)

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
        check_positive_int(channels, "channels", "GINConvBatch")
        for h in mlp_hidden or []:
            check_positive_int(h, "mlp_hidden entries", "GINConvBatch")
        super().__init__(
            channels,
            epsilon,
            mlp_hidden,
            mlp_activation,
            mlp_batchnorm,
            aggregate,
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            in_channels=in_channels,
        )

    def _mlp_on_valid(self, h: Tensor, valid: Tensor | None) -> Tensor:
        """The MLP on the valid rows only (batch norm over valid nodes); zeros elsewhere."""
        if valid is None:
            return self.mlp(h)  # (B*N, C)
        rows = valid.nonzero().flatten()  # (N_valid,)
        y = self.mlp(h.index_select(0, rows))  # (N_valid, C)
        return y.new_zeros((h.shape[0], y.shape[-1])).index_copy(0, rows, y)  # (B*N, C)

    def forward(self, x: Tensor, a: Tensor, mask: Tensor | None = None) -> Tensor:
        x, a, _, mask, single = as_dense_batch(x, a, None, mask)
        if self.aggr == "sum" and _plain_dense_batch(x, a, mask):
            # A X as one batched dense product: no edge list or CSR is built per call
            b, n, f = x.shape
            valid = None if mask is None else mask.to(torch.bool)
            a_used = a if valid is None else a * (valid.unsqueeze(2) & valid.unsqueeze(1)).to(a.dtype)
            # (1 + eps) X + A X: the product accumulates into the fresh (1 + eps) X (one pass less)
            h = torch.mul(x, 1.0 + self.eps).baddbmm_(a_used.to(x.dtype), x).reshape(b * n, f)  # (B*N, F)
            out = self._mlp_on_valid(h, None if valid is None else valid.reshape(-1))  # (B*N, C)
            out = out.reshape(b, n, out.shape[-1])  # (B, N, C)
            return out[0] if single else out
        inp = prepare("GINConvBatch", self.MODES, x, a, mask=mask)
        agg = self.propagate(inp.x, inp.graph, edge_weight=inp.edge_weight)  # (B*N, F)
        h = torch.mul(inp.x, 1.0 + self.eps).add_(agg)  # (B*N, F)
        out = inp.restore(self._mlp_on_valid(h, inp.mask))  # (B, N, C)
        return out[0] if single else out
