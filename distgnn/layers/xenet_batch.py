"""XENetConvBatch (alias XENetDenseConv): XENetConv on dense batches."""
from __future__ import annotations

from torch import Tensor

from ..graph import GraphError
from .gin_batch import as_dense_batch
from .modes import prepare
from .xenet import XENetConv, restore_edges


class XENetConvBatch(XENetConv):
    r"""XENetConv on dense batches (the seed's ``XENetDenseConv`` is an alias of this class).

    Exactly :class:`XENetConv` on the graph of each sample: ``a[b, i, j] != 0`` is an edge
    ``j -> i`` with features ``e[b, i, j]`` (its reverse edge is ``a[b, j, i]``, features
    ``e[b, j, i]``, zeros when ``a[b, j, i] == 0``); the values of ``a`` are not used, only its
    pattern. Masked nodes lose their edges and output zeros.

    Computation: the batch is turned into one block-diagonal graph of the nonzeros of ``a`` (the
    shared :func:`~distgnn.layers.modes.prepare`), the sparse layer runs on it, and the outputs are
    returned dense. Memory is ``O(B N F + nnz(a) C)`` rather than ``O(B N^2 C)`` for the stacks.

    Args: as :class:`XENetConv`.

    Shapes:
        x ``[B, N, F]``; a ``[B, N, N]``; e ``[B, N, N, S]``; mask ``[B, N]`` (optional).
        Outputs ``X' [B, N, C_n]`` (zero rows for masked nodes) and ``E' [B, N, N, C_e]``
        (``E'[b, i, j]`` belongs to the edge ``j -> i``; zero where ``a[b, i, j] == 0`` or an end
        is masked). A single dense graph (``x [N, F]``, ``a [N, N]``, ``e [N, N, S]``) is treated
        as a batch of one and returned without the batch dimension.

    Modes: batch.
    """

    MODES = ("batch",)

    def forward(self, x: Tensor, a, e: Tensor | None = None, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        name = type(self).__name__
        x, a, e, mask, single = as_dense_batch(x, a, e, mask)
        inp = prepare(name, self.MODES, x, a, e=e, mask=mask)
        if inp.e is None:
            raise GraphError(f"{name}: edge features e [B, N, N, S] are required")
        h, eo = self.conv(inp.x, inp.graph, inp.e)
        h, eo = inp.restore(h), restore_edges(inp, eo, True)  # (B, N, C_n), (B, N, N, C_e)
        return (h[0], eo[0]) if single else (h, eo)


XENetDenseConv = XENetConvBatch
