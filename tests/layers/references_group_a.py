"""Dense float64 references for AGNNConv, ARMAConv, DiffusionConv, TAGConv, GCSConv and GTVConv,
written from the formulas of ``shared/spec/layers.md`` (see ``references.py`` for the protocol).

``a [N, N]`` holds edge multiplicities: a repeated edge is two edges with the same per-edge
coefficient, so sums weight by ``a`` and max/min see the coefficient once.
"""
from __future__ import annotations

import torch
from torch import Tensor

from distgnn.layers.agnn import AGNNConv
from distgnn.layers.arma import ARMAConv
from distgnn.layers.diffusion import DiffusionConv
from distgnn.layers.gcs import GCSConv
from distgnn.layers.gtv import GTVConv
from distgnn.layers.tag import TAGConv
from tests.layers.references import Case, inv_pow, sym_dense, with_unit_diag


def _uniform(t: Tensor) -> None:
    """Non-zero biases, so a misplaced bias cannot hide behind a zero initialisation."""
    torch.nn.init.uniform_(t, -0.5, 0.5)


def _beta(layer: AGNNConv, value: float) -> AGNNConv:
    """Move beta away from its initial 1, so a dropped or misplaced beta shows."""
    with torch.no_grad():
        layer.beta.fill_(value)
    return layer


def edge_reduce(a: Tensor, coef: Tensor, x: Tensor, how: str) -> Tensor:
    """``out_i = reduce over the edges j -> i of coef_ij x_j``; ``a_ij`` = number of such edges.

    ``coef [N, N]`` is the per-edge coefficient (only read where ``a > 0``); 0 for no edge.
    """
    if how == "sum":
        return (a * coef) @ x
    if how == "mean":
        return ((a * coef) @ x) / a.sum(1, keepdim=True).clamp(min=1)
    out = torch.zeros(a.shape[0], x.shape[1], dtype=x.dtype)
    for i in range(a.shape[0]):
        nb = torch.nonzero(a[i] > 0).flatten()
        if nb.numel():
            msgs = coef[i, nb, None] * x[nb]  # (deg, F)
            out[i] = msgs.max(0).values if how == "max" else msgs.min(0).values
    return out


def sym_coef(a: Tensor) -> Tensor:
    """Per-edge coefficient of ``sym(A)``: ``1 / sqrt(d_i d_j)`` (degrees count multiplicities)."""
    d = inv_pow(a.sum(1), 0.5)
    return d[:, None] * d[None, :]


def ref_agnn(layer, x: Tensor, a: Tensor, **_) -> Tensor:
    a_hat = with_unit_diag(a)  # remaining self-loops (Decision)
    xn = x / torch.sqrt(torch.clamp((x * x).sum(1, keepdim=True), min=1e-12))
    score = layer.beta * (xn @ xn.t())  # (N, N): beta cos(x_i, x_j)
    ex = torch.exp(score - score.max(1, keepdim=True).values)
    coef = ex / (a_hat * ex).sum(1, keepdim=True)  # softmax over the edges into i (loop included)
    return layer.activation(edge_reduce(a_hat, coef, x, layer.aggr))


def ref_arma(layer, x: Tensor, a: Tensor, **_) -> Tensor:
    s_hat = sym_dense(a)
    stacks = []
    for k in range(layer.order):
        h = x
        for t in range(layer.iterations):
            s = min(t, 1) if layer.share_weights else t
            w = layer.kernel_in[k] if t == 0 else layer.kernel_hidden[s - 1, k]
            z = s_hat @ h @ w + x @ layer.skip_kernel[s, k]
            if layer.bias is not None:
                z = z + layer.bias[s, k]
            h = layer.gcn_activation(z)
        stacks.append(h)
    return layer.activation(torch.stack(stacks).mean(0))


def ref_diffusion(layer, x: Tensor, a: Tensor, **_) -> Tensor:
    rw = inv_pow(a.sum(1), 1.0)[:, None] * a  # D^-1 A
    n = a.shape[0]
    out = torch.zeros(n, layer.channels, dtype=x.dtype)
    for q in range(layer.channels):
        for f in range(x.shape[1]):
            for k in range(layer.K):
                out[:, q] += layer.kernel[k, q] * (torch.linalg.matrix_power(rw, k) @ x[:, f])
    return layer.activation(out)


def ref_tag(layer, x: Tensor, a: Tensor, **_) -> Tensor:
    f = x.shape[1]
    coef = sym_coef(a)
    h, out = x, x @ layer.kernel[:f]
    for k in range(1, layer.K + 1):
        h = edge_reduce(a, coef, h, layer.aggr)  # sym(A)^k X for sum
        out = out + h @ layer.kernel[k * f : (k + 1) * f]
    if layer.bias is not None:
        out = out + layer.bias
    return layer.activation(out)


def ref_gcs(layer, x: Tensor, a: Tensor, **_) -> Tensor:
    out = sym_dense(a) @ x @ layer.kernel_1.kernel + x @ layer.kernel_2.kernel
    if layer.bias is not None:
        out = out + layer.bias
    return layer.activation(out)


def ref_gtv(layer, x: Tensor, a: Tensor, **_) -> Tensor:
    xt = x @ layer.kernel.kernel  # (N, C)
    dist = (xt[:, None, :] - xt[None, :, :]).abs().sum(-1)  # (N, N): |x~_i - x~_j|_1
    gamma = a / torch.clamp(dist, min=layer.epsilon)
    lap = torch.diag(gamma.sum(1)) - gamma  # L_Gamma = D_Gamma - Gamma
    out = xt - layer.delta_coeff * lap @ xt
    if layer.bias is not None:
        out = out + layer.bias
    return layer.activation(out)


CASES: dict[str, Case] = {
    "AGNNConv": Case(
        lambda: _beta(AGNNConv(activation="tanh"), 1.7),
        ref_agnn,
        {
            "fixed-beta": lambda: AGNNConv(trainable=False),
            "mean": lambda: _beta(AGNNConv(aggregate="mean"), -0.6),
            "max": lambda: _beta(AGNNConv(aggregate="max", activation="relu"), 2.5),
        },
    ),
    "ARMAConv": Case(
        lambda: ARMAConv(5, activation="elu", bias_initializer=_uniform),
        ref_arma,
        {
            "order2-iter3": lambda: ARMAConv(5, order=2, iterations=3, gcn_activation="tanh", bias_initializer=_uniform),
            "shared": lambda: ARMAConv(5, order=2, iterations=3, share_weights=True, activation="relu", bias_initializer=_uniform),
            "narrow-no-bias": lambda: ARMAConv(1, order=3, iterations=2, use_bias=False, gcn_activation=None),
        },
    ),
    "DiffusionConv": Case(
        lambda: DiffusionConv(5),
        ref_diffusion,
        {"K1": lambda: DiffusionConv(3, K=1), "K3-linear": lambda: DiffusionConv(4, K=3, activation=None)},
    ),
    "TAGConv": Case(
        lambda: TAGConv(5, activation="relu", bias_initializer=_uniform),
        ref_tag,
        {
            "K1": lambda: TAGConv(5, K=1, bias_initializer=_uniform),
            "narrow": lambda: TAGConv(2, K=4, activation="tanh", bias_initializer=_uniform),
            "narrow-mean": lambda: TAGConv(3, K=2, aggregate="mean", use_bias=False),
            "max": lambda: TAGConv(5, K=2, aggregate="max"),
        },
    ),
    "GCSConv": Case(
        lambda: GCSConv(5, activation="relu", bias_initializer=_uniform),
        ref_gcs,
        {"narrow-no-bias": lambda: GCSConv(3, use_bias=False, activation="tanh")},
    ),
    "GTVConv": Case(
        lambda: GTVConv(5, activation="relu", bias_initializer=_uniform),
        ref_gtv,
        {"delta-eps": lambda: GTVConv(3, delta_coeff=0.4, epsilon=0.5, use_bias=False)},
    ),
}
