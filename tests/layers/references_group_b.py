"""Dense float64 references of CrystalConv, ECCConv, EdgeConv, GatedGraphConv and GeneralConv,
written from the formulas of ``shared/spec/layers.md`` (loops over edges; no call into the
implementations). Merged into ``tests.layers.references.CASES``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from distgnn.layers.crystal import CrystalConv
from distgnn.layers.ecc import ECCConv
from distgnn.layers.edge_conv import EdgeConv
from distgnn.layers.gated_graph import GatedGraphConv
from distgnn.layers.general import GeneralConv
from distgnn.layers.utils import PReLU
from tests.layers.references import Case, dense_apply, dense_reduce, mlp_dense


def _uniform(t: Tensor) -> None:
    """Non-zero biases, so a misplaced bias cannot hide behind a zero initialisation."""
    torch.nn.init.uniform_(t, -0.5, 0.5)


def edge_reduce(msgs: Tensor, dst: Tensor, n: int, how: str) -> Tensor:
    """``out_i = reduce_{k : dst_k = i} msgs_k``; 0 when node ``i`` has no incoming edge."""
    out = torch.zeros((n,) + tuple(msgs.shape[1:]), dtype=msgs.dtype)
    for i in range(n):
        rows = msgs[dst == i]
        if rows.shape[0] == 0:
            continue
        if how == "sum":
            out[i] = rows.sum(0)
        elif how == "mean":
            out[i] = rows.mean(0)
        elif how == "max":
            out[i] = rows.max(0).values
        elif how == "min":
            out[i] = rows.min(0).values
        elif how == "prod":
            out[i] = rows.prod(0)
        else:
            raise AssertionError(how)
    return out


def _edges(edge_index: Tensor):
    return [(int(j), int(i)) for j, i in edge_index.t()]


def ref_crystal(layer: CrystalConv, x: Tensor, a: Tensor, edge_index: Tensor, e: Tensor, **_) -> Tensor:
    n, f = x.shape
    msgs = torch.zeros(edge_index.shape[1], f, dtype=x.dtype)
    for k, (j, i) in enumerate(_edges(edge_index)):
        z = torch.cat([x[i], x[j], e[k]])  # [x_i || x_j || e_ji]
        gate = z @ layer.kernel_f + (layer.bias_f if layer.bias_f is not None else 0.0)
        core = z @ layer.kernel_s + (layer.bias_s if layer.bias_s is not None else 0.0)
        msgs[k] = torch.sigmoid(gate) * layer.activation(core)
    return x + edge_reduce(msgs, edge_index[1], n, layer.aggr)


def ref_ecc(layer: ECCConv, x: Tensor, a: Tensor, edge_index: Tensor, e: Tensor, **_) -> Tensor:
    n, f = x.shape
    c = layer.channels
    msgs = torch.zeros(edge_index.shape[1], c, dtype=x.dtype)
    for k, (j, i) in enumerate(_edges(edge_index)):
        h = e[k]
        for d in layer.kernel_network:  # hidden layers: Dense + ReLU
            h = torch.relu(dense_apply(d, h))
        theta = h @ layer.kernel_out
        if layer.kernel_out_bias is not None:
            theta = theta + layer.kernel_out_bias
        msgs[k] = x[j] @ theta.reshape(f, c)  # x_j Theta(e_ji)
    out = edge_reduce(msgs, edge_index[1], n, "sum")
    if layer.root:
        out = out + x @ layer.root_kernel
    if layer.bias is not None:
        out = out + layer.bias
    return layer.activation(out)


def ref_edge_conv(layer: EdgeConv, x: Tensor, a: Tensor, edge_index: Tensor, **_) -> Tensor:
    n = x.shape[0]
    msgs = torch.zeros(edge_index.shape[1], layer.channels, dtype=x.dtype)
    for k, (j, i) in enumerate(_edges(edge_index)):
        z = torch.cat([x[i], x[j] - x[i]])[None]  # (1, 2F)
        msgs[k] = mlp_dense(layer.mlp, z, training=False)[0]  # no batch norm in EdgeConv
    return edge_reduce(msgs, edge_index[1], n, layer.aggr)


def ref_gated(layer: GatedGraphConv, x: Tensor, a: Tensor, **_) -> Tensor:
    n, f = x.shape
    c = layer.channels
    h = torch.cat([x, torch.zeros(n, c - f, dtype=x.dtype)], 1)
    gru = layer.gru
    w_ir, w_iz, w_in = gru.weight_ih.split(c)
    w_hr, w_hz, w_hn = gru.weight_hh.split(c)
    if gru.bias:
        b_ir, b_iz, b_in = gru.bias_ih.split(c)
        b_hr, b_hz, b_hn = gru.bias_hh.split(c)
    else:
        b_ir = b_iz = b_in = b_hr = b_hz = b_hn = torch.zeros(c, dtype=x.dtype)
    for l in range(layer.n_layers):
        m = a @ (h @ layer.kernel[l])  # m_i = sum_{j -> i} h_j W_l (multi-edges counted)
        r = torch.sigmoid(m @ w_ir.T + b_ir + h @ w_hr.T + b_hr)
        z = torch.sigmoid(m @ w_iz.T + b_iz + h @ w_hz.T + b_hz)
        cand = torch.tanh(m @ w_in.T + b_in + r * (h @ w_hn.T + b_hn))
        h = (1 - z) * cand + z * h
    return layer.activation(h)


def ref_general(layer: GeneralConv, x: Tensor, a: Tensor, **_) -> Tensor:
    h = dense_apply(layer.kernel, x)
    bn = layer.batch_norm
    if bn is not None:
        if layer.training:
            mean, var = h.mean(0), h.var(0, unbiased=False)
        else:
            mean, var = bn.running_mean, bn.running_var
        h = (h - mean) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias
    if isinstance(layer.activation, PReLU):  # one slope per channel
        h = torch.where(h >= 0, h, layer.activation.alpha * h)
    else:
        h = layer.activation(h)
    return dense_reduce(a, h, layer.aggr)


def _with_slopes(layer: GeneralConv) -> GeneralConv:
    """PReLU slopes start at 0 (= ReLU); draw them so the reference sees a real PReLU."""
    with torch.no_grad():
        layer.activation.alpha.uniform_(-0.5, 0.5)
    return layer


CASES = {
    "CrystalConv": Case(
        lambda: CrystalConv(activation="softplus", bias_initializer=_uniform),
        ref_crystal,
        {
            "mean": lambda: CrystalConv(aggregate="mean", activation="tanh", bias_initializer=_uniform),
            "max": lambda: CrystalConv(aggregate="max", bias_initializer=_uniform),
            "min-no-bias-eager": lambda: CrystalConv(aggregate="min", use_bias=False, in_channels=4, in_edge_channels=3),
        },
        edge_dim=3,
    ),
    "ECCConv": Case(
        lambda: ECCConv(5, kernel_network=[6, 3], activation="tanh", bias_initializer=_uniform),
        ref_ecc,
        {
            "no-root-no-bias": lambda: ECCConv(5, kernel_network=[4], root=False, use_bias=False),
            "single-dense": lambda: ECCConv(3, bias_initializer=_uniform),
            "eager": lambda: ECCConv(2, kernel_network=[3], in_channels=4, in_edge_channels=2),
        },
        edge_dim=2,
    ),
    "EdgeConv": Case(
        lambda: EdgeConv(5, mlp_hidden=[6, 4], activation="relu", bias_initializer=_uniform),
        ref_edge_conv,
        {
            "max-tanh": lambda: EdgeConv(5, mlp_hidden=[6], mlp_activation="tanh", aggregate="max", bias_initializer=_uniform),
            "mean-single-dense": lambda: EdgeConv(5, aggregate="mean", activation="sigmoid", bias_initializer=_uniform),
            "min-no-bias": lambda: EdgeConv(3, mlp_hidden=[4], aggregate="min", use_bias=False, in_channels=4),
        },
    ),
    "GatedGraphConv": Case(
        lambda: GatedGraphConv(6, n_layers=3, activation="tanh", bias_initializer=_uniform),
        ref_gated,
        {
            "no-padding-one-layer": lambda: GatedGraphConv(4, n_layers=1, bias_initializer=_uniform),
            "no-bias": lambda: GatedGraphConv(5, n_layers=2, use_bias=False, in_channels=4),
        },
    ),
    "GeneralConv": Case(
        lambda: _with_slopes(GeneralConv(5, bias_initializer=_uniform)),
        ref_general,
        {
            "mean-no-bn-relu": lambda: GeneralConv(5, batch_norm=False, aggregate="mean", activation="relu"),
            "max-elu": lambda: GeneralConv(4, aggregate="max", activation="elu", bias_initializer=_uniform),
            "min-no-bias": lambda: _with_slopes(GeneralConv(3, aggregate="min", use_bias=False)),
        },
    ),
}
