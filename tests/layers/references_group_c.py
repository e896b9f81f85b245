"""Dense float64 references of XENetConv, XENetConvBatch, GINConvBatch and CensNetConv, written
from the formulas of ``shared/spec/layers.md`` (loops over edges, dense matrices; no call into the
implementations). Merged into ``tests.layers.references.CASES``.

Conventions the references pin down (documented in the layers):

- XENet: ``e_ij`` (reverse features) is the mean of the features of every edge ``i -> j``, zeros
  when there is none; dense inputs (batch-only layers) list the edges as the nonzeros of ``a`` and
  return ``E'`` dense ``[N, N, C_e]``.
- CensNet: each column of ``edge_index`` is one undirected edge; ``T`` has 2 at a self-loop's
  node; ``A = T T^T`` off the diagonal, ``A_e = T^T T - 2I``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from distgnn.layers.censnet import CensNetConv
from distgnn.layers.gin_batch import GINConvBatch
from distgnn.layers import XENetConv, XENetConvBatch
from tests.layers.references import Case, dense_apply, gcn_dense, mlp_dense


def _random_bias(t: Tensor) -> None:
    """Non-zero biases, so a misplaced bias cannot hide behind a zero initialisation."""
    torch.nn.init.uniform_(t, -0.5, 0.5)


def _edges_of_dense(a: Tensor) -> Tensor:
    dst, src = a.nonzero(as_tuple=True)
    return torch.stack([src, dst])


# -- XENet --------------------------------------------------------------------------------------------
def ref_xenet(layer: XENetConv, x: Tensor, a: Tensor, edge_index: Tensor | None, e: Tensor, **_):
    dense_out = edge_index is None  # batch-only layer: a and e are dense [N, N], [N, N, S]
    if dense_out:
        edge_index = _edges_of_dense(a)
        e = e[edge_index[1], edge_index[0]]
    n, m = x.shape[0], edge_index.shape[1]
    pairs = [(int(j), int(i)) for j, i in edge_index.t()]
    stacks = []
    for k, (j, i) in enumerate(pairs):
        rev = [r for r, (jj, ii) in enumerate(pairs) if (jj, ii) == (i, j)]
        e_ij = e[rev].mean(0) if rev else torch.zeros_like(e[k])
        h = torch.cat([x[i], x[j], e[k], e_ij])
        for t, d in enumerate(layer.stack):
            h = dense_apply(d, h)
            if t < len(layer.stack) - 1:
                h = torch.relu(h)
        alpha = layer.stack_act.alpha
        stacks.append(torch.where(h >= 0, h, alpha * h))  # PReLU, one slope per channel
    c = layer.stack_channels[-1]
    s = torch.stack(stacks) if stacks else torch.zeros(0, c, dtype=x.dtype)
    if layer.attention:
        g_in = torch.sigmoid(dense_apply(layer.att_in, s))
        g_out = torch.sigmoid(dense_apply(layer.att_out, s))
    else:
        g_in = g_out = torch.ones(m, 1, dtype=x.dtype)
    inc = torch.zeros(n, c, dtype=x.dtype)
    out = torch.zeros(n, c, dtype=x.dtype)
    n_in = torch.zeros(n, 1, dtype=x.dtype)
    n_out = torch.zeros(n, 1, dtype=x.dtype)
    for k, (j, i) in enumerate(pairs):
        inc[i] += g_in[k] * s[k]  # incoming edge of i
        out[j] += g_out[k] * s[k]  # outgoing edge of j
        n_in[i] += 1
        n_out[j] += 1
    if layer.aggr == "mean":
        inc, out = inc / n_in.clamp(min=1), out / n_out.clamp(min=1)
    xo = layer.node_activation(dense_apply(layer.node_model, torch.cat([x, inc, out], 1)))
    eo = layer.edge_activation(dense_apply(layer.edge_model, s))
    if dense_out:
        full = torch.zeros(n, n, eo.shape[1], dtype=x.dtype)
        full[edge_index[1], edge_index[0]] = eo
        eo = full
    return xo, eo


# -- GIN on dense batches ---------------------------------------------------------------------------
def ref_gin_batch(layer: GINConvBatch, x: Tensor, a: Tensor, **_) -> Tensor:
    return mlp_dense(layer.mlp, (1 + layer.eps) * x + a @ x, layer.training)


# -- CensNet ----------------------------------------------------------------------------------------
def incidence(edge_index: Tensor, n: int) -> Tensor:
    """``T [N, M]``: 1 at both ends of every column, 2 at the node of a self-loop."""
    t = torch.zeros(n, edge_index.shape[1], dtype=torch.float64)
    for m, (j, i) in enumerate(edge_index.t().tolist()):
        t[j, m] += 1
        t[i, m] += 1
    return t


def ref_censnet(layer: CensNetConv, x: Tensor, a: Tensor, edge_index: Tensor, e: Tensor, **_):
    t = incidence(edge_index, x.shape[0])
    a_und = t @ t.t()  # off-diagonal: edges between u and v; gcn_dense resets the diagonal to 1
    a_line = t.t() @ t - 2 * torch.eye(t.shape[1], dtype=t.dtype)
    pe = (e @ layer.p_e.kernel).flatten()
    pv = (x @ layer.p_v.kernel).flatten()
    m_node = (t @ torch.diag(pe) @ t.t()) * gcn_dense(a_und)
    m_edge = (t.t() @ torch.diag(pv) @ t) * gcn_dense(a_line)
    xo = m_node @ x @ layer.node_kernel.kernel
    eo = m_edge @ e @ layer.edge_kernel.kernel
    if layer.node_bias is not None:
        xo, eo = xo + layer.node_bias, eo + layer.edge_bias
    return layer.node_activation(xo), layer.edge_activation(eo)


CASES = {
    "XENetConv": Case(
        lambda: XENetConv([5, 6], 4, 3, node_activation="relu", edge_activation="tanh", bias_initializer=_random_bias),
        ref_xenet,
        {
            "no-attention": lambda: XENetConv(5, 4, 3, attention=False, bias_initializer=_random_bias),
            "mean-prelu": lambda: XENetConv(
                [6, 4, 5], 3, 2, aggregate="mean", node_activation="prelu", edge_activation="prelu", bias_initializer=_random_bias
            ),
            "no-bias": lambda: XENetConv(4, 3, 2, use_bias=False, node_activation="sigmoid"),
        },
        edge_dim=3,
        returns_edges=True,
    ),
    "XENetConvBatch": Case(
        lambda: XENetConvBatch([5, 6], 4, 3, edge_activation="relu", bias_initializer=_random_bias),
        ref_xenet,
        {"no-attention-mean": lambda: XENetConvBatch(5, 4, 3, attention=False, aggregate="mean", bias_initializer=_random_bias)},
        edge_dim=3,
        returns_edges=True,
    ),
    "GINConvBatch": Case(
        lambda: GINConvBatch(5, mlp_hidden=[6, 4], activation="relu", bias_initializer=_random_bias),
        ref_gin_batch,
        {"fixed-eps": lambda: GINConvBatch(5, epsilon=0.3, mlp_hidden=[6], mlp_batchnorm=False, bias_initializer=_random_bias)},
    ),
    "CensNetConv": Case(
        lambda: CensNetConv(5, 3, activation="relu", bias_initializer=_random_bias),
        ref_censnet,
        {
            "tanh": lambda: CensNetConv(4, 6, activation="tanh", bias_initializer=_random_bias),
            "no-bias": lambda: CensNetConv(3, 2, use_bias=False),
        },
        edge_dim=3,
        returns_edges=True,
    ),
}
