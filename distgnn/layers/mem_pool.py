"""MemPooling: memory-based soft-cluster pooling (Khasahmadi et al., 2020)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..graph import Graph, GraphError
from .modes import ALL_MODES
from .utils import check_positive_int

EPS = 1e-15  # clamp of S and P inside kl_loss, as in the reference


def _reduce(graph: Graph | None, t: Tensor) -> Tensor:
    """Sum of ``t`` over every part of ``graph`` (``t`` itself without a graph)."""
    return t if graph is None else graph.all_reduce(t)


def _global_max(graph: Graph | None, value: int, device: torch.device) -> int:
    """The largest ``value`` over all parts (one all-reduce of a slot per part)."""
    if graph is None or not getattr(graph, "is_partitioned", False):
        return value
    slots = torch.zeros(graph.num_parts, dtype=torch.float64, device=device)
    slots[graph.part] = float(value)
    return int(graph.all_reduce(slots).max().item())


def _check_count(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GraphError(f"MemPooling: {name} must be an int >= 1, got {value!r}")


def dense_positions(batch: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """Position of every node inside its graph and the node count of every graph.

    ``pos[n]`` = number of nodes ``m < n`` with ``batch[m] == batch[n]`` (the node order is kept
    within each graph; ``batch`` need not be sorted). Returns ``(pos [N], counts [batch_size])``.
    """
    counts = torch.bincount(batch, minlength=batch_size)  # (B,)
    order = torch.argsort(batch, stable=True)  # nodes grouped by graph, in node order
    starts = torch.cumsum(counts, 0) - counts  # (B,)
    pos = torch.empty_like(batch)
    pos[order] = torch.arange(batch.numel(), device=batch.device) - starts[batch[order]]
    return pos, counts


class MemPooling(nn.Module):
    r"""Memory-based pooling of `Khasahmadi et al. <https://arxiv.org/abs/2002.09518>`_: soft
    assignments of the nodes of each graph to ``K`` learned cluster centres ("memory keys").

    .. math::
        S^{(h)}_{ij} = \frac{(1 + \lVert x_i - k^{(h)}_j \rVert^2 / \tau)^{-\frac{1+\tau}{2}}}
                            {\sum_{k=1}^{K} (1 + \lVert x_i - k^{(h)}_k \rVert^2 / \tau)^{-\frac{1+\tau}{2}}},
        \qquad S = \mathrm{softmax}_K\Big(\sum_{h=1}^{H} w_h S^{(h)}\Big) \odot M,
        \qquad X' = \big(S^\top X\big) W

    for every graph of the batch: ``S^{(h)}`` is a Student-t kernel between node ``i`` and key
    ``j`` of head ``h`` normalised over the ``K`` keys, the heads are combined by a learned
    weighted sum without bias (the reference's 1x1 convolution over heads), ``M`` zeroes the rows
    of masked (padding) nodes, and the pooled features ``S^T X`` (a sum over the nodes of each
    graph) go through ``W`` (no bias).

    :meth:`kl_loss` is the auxiliary clustering loss ``KL(P || S)`` with the sharpened target
    ``P_ij = (S_ij^2 / sum_n S_nj) / sum_k (S_ik^2 / sum_n S_nk)``.

    **Partitioned graphs** (``graph=`` a :class:`~distgnn.graph.PartitionedGraph`): each part
    passes the rows of the nodes it owns; ``S`` is per node and needs nothing from other parts,
    while the sums over nodes (``S^T X`` here, ``sum_n S_nj`` and the KL sum in
    :meth:`kl_loss`) go through ``graph.all_reduce``. Every part then returns the same ``X'`` and
    ``kl_loss`` as the whole graph, and the ``S`` rows of its own nodes. A graph of the batch may
    have nodes on several parts. In the sparse form (``x [N, F]`` + ``batch``), ``batch`` holds
    global graph ids (the same numbering on every part) and ``batch_size`` defaults to the
    largest id over all parts plus one; the dense ``S`` of a part places each graph's owned nodes
    in their node order at positions ``0, 1, ...`` (so its row ``[b, p]`` is the ``p``-th owned
    node of graph ``b``, not the ``p``-th node of the whole graph). In the dense form (``x [B, N,
    F]``) the node dimension is the part's owned nodes (``N = graph.num_nodes``), e.g. ``B``
    samples over one node-partitioned graph. ``X'`` and ``kl_loss`` are replicated on every part:
    a loss computed from them on every part counts ``num_parts`` times when the parts' gradients
    are summed, so scale it by ``1 / num_parts`` (or compute it on one part only).

    Deviation from the spec (``layers.md``): none; the spec and the reference agree.

    Deviations from the reference (torch-geometric 2.8.1 ``MemPooling``), whose numbers this
    layer reproduces otherwise (``tests/layers/test_pyg_fixtures.py``):

    - ``||x - k||^2`` is computed as ``|x|^2 - 2 x.k + |k|^2`` (clamped at 0) for every size; the
      reference's ``cdist`` does so above 25 rows and subtracts directly below (rounding only).
      Its gradient is smooth where ``x == k`` (``cdist``'s square root is not).
    - ``batch`` need not be sorted: nodes keep their order within each graph (the reference
      requires sorted ``batch``). ``max_num_nodes`` smaller than a graph drops that graph's
      nodes beyond it, as in the reference; on a partitioned graph it must not drop any node
      (an error), since "beyond" would depend on the partition.
    - A graph with no node (``batch_size`` larger than the ids in ``batch``) gets ``X' = 0`` and
      adds 0 to :meth:`kl_loss` (the reference's loss is NaN there: ``0 / 0``).
    - Initialisation: keys ``U(-1, 1)`` as the reference; head weights ``U(-1/sqrt(H),
      1/sqrt(H))`` and ``W`` ``U(-1/sqrt(F), 1/sqrt(F))``, the distributions of torch's
      ``Conv2d`` / ``Linear`` defaults the reference uses.

    Args:
        in_channels: ``F``, the size of the node features.
        out_channels: ``F'``, the size of the pooled features.
        heads: ``H``, the number of heads (sets of keys).
        num_clusters: ``K``, clusters per head (rows of the pooled graph).
        tau: the temperature ``tau > 0`` of the Student-t kernel (default 1.0).

    Shapes:
        - sparse: x ``[N, F]``, batch ``[N]`` int64 graph ids in ``[0, B)`` (``None``: one graph);
          dense: x ``[B, N, F]``, mask ``[B, N]`` bool (``None``: every node is real).
        - output ``X' [B, K, F']`` and ``S [B, N_max, K]`` (sparse: ``N_max`` = ``max_num_nodes``
          or the largest graph; dense: ``N``).
        - parameters: ``k [H, K, F]`` (the keys), ``head_weight [H]`` (``w``), ``weight [F, F']``
          (``W``, Keras layout; the reference's ``lin.weight`` is its transpose).

    Modes: single (``x [N, F]``), disjoint (``x [N, F]`` + ``batch``), mixed (``x [B, N, F]``: B
    samples over the same nodes, e.g. one partitioned graph) and batch (``x [B, N, F]`` + ``mask``).
    """

    MODES = ALL_MODES

    def __init__(self, in_channels: int, out_channels: int, heads: int, num_clusters: int, tau: float = 1.0):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels", "MemPooling")
        self.out_channels = check_positive_int(out_channels, "out_channels", "MemPooling")
        self.heads = check_positive_int(heads, "heads", "MemPooling")
        self.num_clusters = check_positive_int(num_clusters, "num_clusters", "MemPooling")
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau > 0 or not math.isfinite(tau):
            raise ValueError(f"MemPooling: tau must be a finite number > 0, got {tau!r}")
        self.tau = float(tau)
        self.k = nn.Parameter(torch.empty(heads, num_clusters, in_channels))
        self.head_weight = nn.Parameter(torch.empty(heads))
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.k.uniform_(-1.0, 1.0)
            bound = 1.0 / math.sqrt(self.heads)
            self.head_weight.uniform_(-bound, bound)
            bound = 1.0 / math.sqrt(self.in_channels)
            self.weight.uniform_(-bound, bound)

    # -- the assignment and the pooled features ----------------------------------------------------
    def assignments(self, x: Tensor, mask: Tensor) -> Tensor:
        """``S [B, N, K]`` of dense ``x [B, N, F]`` with ``mask [B, N]`` (no sum over nodes)."""
        b, n, f = x.shape
        h, k = self.heads, self.num_clusters
        xf = x.reshape(b * n, f)  # (B*N, F)
        keys = self.k.reshape(h * k, f)  # (H*K, F)
        inv_tau = 1.0 / self.tau
        # 1 + |x - k|^2 / tau = (1 + |k|^2 / tau) - (2 / tau) x.k + |x|^2 / tau: one GEMM with its bias
        base = torch.addmm(keys.square().sum(1).mul(inv_tau).add(1.0), xf, keys.t(), alpha=-2.0 * inv_tau)
        base = (base + xf.square().sum(1, keepdim=True).mul(inv_tau)).clamp(min=1.0)  # (B*N, H*K); |x-k|^2 >= 0
        q = base.reciprocal() if self.tau == 1.0 else base.pow(-(1.0 + self.tau) / 2.0)  # (B*N, H*K)
        q = q.view(b * n, h, k)  # (B*N, H, K)
        # sum_h w_h q_h / sum_k q_hk: the per-head normalisation folded into the head weights
        coef = self.head_weight / q.sum(2)  # (B*N, H)
        logits = (q * coef.unsqueeze(2)).sum(1).view(b, n, k)  # (B, N, K)
        return logits.softmax(-1) * mask.unsqueeze(-1).to(logits.dtype)  # (B, N, K)

    def forward(
        self,
        x: Tensor,
        batch: Tensor | None = None,
        mask: Tensor | None = None,
        max_num_nodes: int | None = None,
        batch_size: int | None = None,
        *,
        graph: Graph | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``(X' [B, K, F'], S [B, N_max, K])``; see the class docstring for the arguments."""
        if graph is not None and not isinstance(graph, Graph):
            raise GraphError(f"MemPooling: graph must be a distgnn Graph or PartitionedGraph, got {type(graph).__name__}")
        if not isinstance(x, Tensor) or x.dim() not in (2, 3) or x.shape[-1] != self.in_channels:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise GraphError(f"MemPooling: x must be [N, F] or [B, N, F] with F={self.in_channels}, got {shape}")
        if x.dim() == 2:
            x, mask = self._to_dense(x, batch, mask, max_num_nodes, batch_size, graph)  # (B, N_max, F)
        else:
            mask = self._dense_mask(x, batch, mask, max_num_nodes, batch_size, graph)  # (B, N)
        s = self.assignments(x, mask)  # (B, N, K)
        pooled = _reduce(graph, s.transpose(1, 2) @ x)  # (B, K, F): sum over the nodes of all parts
        return pooled @ self.weight, s  # (B, K, F'), (B, N, K)

    @staticmethod
    def kl_loss(s: Tensor, graph: Graph | None = None) -> Tensor:
        r"""``KL(P || S)`` summed over nodes and clusters, averaged over the ``B`` graphs.

        ``P_ij = (S_ij^2 / sum_n S_nj) / sum_k (S_ik^2 / sum_n S_nk)``; rows of ``S`` that are all
        zero (padding) get denominator 1 (so ``P = 0`` there), and ``S`` and ``P`` are clamped at
        ``1e-15`` before the logarithms, as in the reference, so padding rows add exactly 0. A
        column sum of 0 (a graph without nodes) also counts as 1 (the reference gives NaN).
        With ``graph`` (a partitioned graph, ``s`` the rows a part got from :meth:`forward`), the
        sums over nodes are global: every part returns the whole graph's loss.

        Shapes: s ``[B, N, K]`` -> scalar.
        """
        if not isinstance(s, Tensor) or s.dim() != 3:
            shape = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
            raise GraphError(f"MemPooling.kl_loss: S must be [B, N, K] (the second output of forward), got {shape}")
        col = _reduce(graph, s.sum(1, keepdim=True))  # (B, 1, K): sum over all nodes
        col = torch.where(col == 0, torch.ones_like(col), col)
        p = s.square() / col  # (B, N, K)
        denom = p.sum(2, keepdim=True)  # (B, N, 1)
        denom = torch.where(s.sum(2, keepdim=True) == 0, torch.ones_like(denom), denom)
        p = (p / denom).clamp(min=EPS)
        terms = torch.xlogy(p, p) - p * s.clamp(min=EPS).log()  # (B, N, K)
        return _reduce(graph, terms.sum()) / s.shape[0]

    # -- inputs ----------------------------------------------------------------------------------
    def _to_dense(self, x, batch, mask, max_num_nodes, batch_size, graph) -> tuple[Tensor, Tensor]:
        """Sparse ``x [N, F]`` + ``batch [N]`` -> ``x [B, N_max, F]`` (zero padding), ``mask``."""
        if mask is not None:
            raise GraphError("MemPooling: mask is for dense x [B, N, F]; with x [N, F] pass batch instead")
        n = x.shape[0]
        if graph is not None and n != graph.num_nodes:
            raise GraphError(f"MemPooling: x has {n} rows but the graph owns {graph.num_nodes} nodes")
        if batch is None:
            batch = torch.zeros(n, dtype=torch.long, device=x.device)
        elif not isinstance(batch, Tensor) or batch.dim() != 1 or batch.shape[0] != n or batch.dtype != torch.long:
            shape = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
            raise GraphError(f"MemPooling: batch must be an int64 [N] tensor of graph ids with N={n}, got {shape}")
        if n and int(batch.min()) < 0:
            raise GraphError("MemPooling: batch contains a negative graph id")
        if batch_size is None:
            batch_size = _global_max(graph, int(batch.max()) + 1 if n else 1, x.device)
        _check_count(batch_size, "batch_size")
        if n and int(batch.max()) >= batch_size:
            raise GraphError(f"MemPooling: batch names graph {int(batch.max())} but batch_size is {batch_size}")
        pos, counts = dense_positions(batch, batch_size)
        largest = int(counts.max()) if n else 0
        if max_num_nodes is None:
            max_num_nodes = max(largest, 1)
        _check_count(max_num_nodes, "max_num_nodes")
        if graph is not None and graph.is_partitioned and largest > max_num_nodes:
            raise GraphError(
                f"MemPooling: max_num_nodes={max_num_nodes} would drop nodes of a graph with {largest} nodes on "
                f"part {graph.part}; on a partitioned graph pass max_num_nodes=None or a large enough value"
            )
        keep = pos < max_num_nodes  # the reference drops the nodes beyond max_num_nodes
        slot = batch[keep] * max_num_nodes + pos[keep]  # (N_kept,)
        dense = x.new_zeros(batch_size * max_num_nodes, x.shape[1]).index_copy(0, slot, x[keep])
        full = torch.zeros(batch_size * max_num_nodes, dtype=torch.bool, device=x.device)
        full[slot] = True
        return dense.view(batch_size, max_num_nodes, -1), full.view(batch_size, max_num_nodes)

    def _dense_mask(self, x, batch, mask, max_num_nodes, batch_size, graph) -> Tensor:
        b, n = x.shape[0], x.shape[1]
        if batch is not None:
            raise GraphError("MemPooling: batch is for sparse x [N, F]; with x [B, N, F] pass mask instead")
        if max_num_nodes is not None and max_num_nodes != n or batch_size is not None and batch_size != b:
            raise GraphError(
                f"MemPooling: with dense x [B, N, F] = {tuple(x.shape)} leave max_num_nodes and batch_size "
                f"as None (they are N and B)"
            )
        if graph is not None and n != graph.num_nodes:
            raise GraphError(f"MemPooling: x has {n} nodes per sample but the graph owns {graph.num_nodes} nodes")
        if mask is None:
            return torch.ones(b, n, dtype=torch.bool, device=x.device)
        if not isinstance(mask, Tensor) or tuple(mask.shape) != (b, n):
            shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise GraphError(f"MemPooling: mask must be [B, N] = {(b, n)}, got {shape}")
        return mask.to(torch.bool)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, heads={self.heads}, "
            f"num_clusters={self.num_clusters}, tau={self.tau}"
        )
