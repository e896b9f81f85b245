"""Dense float64 references of every registered layer, written straight from the formulas of
``shared/spec/layers.md`` (not from the implementations), plus how the conformance suite builds
and calls each layer (:class:`Case`).

A reference is ``reference(layer, x, a, edge_index=..., e=...)``: the (materialised) layer,
``x [N, F]``, the dense adjacency ``a [N, N]`` with ``a[i, j]`` = number (or total weight) of edges
``j -> i``, the edge list it came from and, for layers with edge features, ``e [E, S]`` aligned
with it. It returns the expected output (a tuple when the layer returns one); layers in training
mode use batch statistics over all N nodes. Cases of later layer groups live in
``references_*.py`` files and are merged into :data:`CASES` at the bottom.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from distgnn import layers as L


def with_unit_diag(a: Tensor) -> Tensor:
    """Remaining self-loops: exactly one loop of weight 1 per node."""
    a = a.clone()
    a.fill_diagonal_(1.0)
    return a


def inv_pow(d: Tensor, p: float) -> Tensor:
    out = d.pow(-p)
    out[d == 0] = 0.0
    return out


def gcn_dense(a: Tensor) -> Tensor:
    a_hat = with_unit_diag(a)
    d = inv_pow(a_hat.sum(1), 0.5)
    return d[:, None] * a_hat * d[None, :]


def sym_dense(a: Tensor) -> Tensor:
    d = inv_pow(a.sum(1), 0.5)
    return d[:, None] * a * d[None, :]


def dense_reduce(a: Tensor, x: Tensor, how: str) -> Tensor:
    """``out_i = reduce_{j: A_ij > 0} x_j`` with multiplicities for sum/mean; 0 when no neighbour."""
    if how == "sum":
        return a @ x
    if how == "mean":
        return (a @ x) / a.sum(1, keepdim=True).clamp(min=1)
    out = torch.zeros(a.shape[0], x.shape[1], dtype=x.dtype)
    for i in range(a.shape[0]):
        nb = torch.nonzero(a[i] > 0).flatten()
        if nb.numel() == 0:
            continue
        rows = x[nb]
        if how == "max":
            out[i] = rows.max(0).values
        elif how == "min":
            out[i] = rows.min(0).values
        elif how == "prod":
            out[i] = torch.prod(rows ** a[i, nb].unsqueeze(1), 0)
    return out


def dense_apply(layer, x: Tensor) -> Tensor:
    return x @ layer.kernel + (layer.bias if layer.bias is not None else 0.0)


def mlp_dense(mlp: L.MLP, x: Tensor, training: bool) -> Tensor:
    for i, d in enumerate(mlp.dense):
        x = mlp.acts[i](dense_apply(d, x))
        if mlp.norms is not None:
            bn = mlp.norms[i]
            if training:
                mean, var = x.mean(0), x.var(0, unbiased=False)
            else:
                mean, var = bn.running_mean, bn.running_var
            x = (x - mean) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias
    return mlp.out_act(dense_apply(mlp.out, x))


# -- references ---------------------------------------------------------------------------------
def ref_gcn(layer: L.GCNConv, x: Tensor, a: Tensor, **_) -> Tensor:
    out = gcn_dense(a) @ x @ layer.kernel.kernel
    if layer.bias is not None:
        out = out + layer.bias
    return layer.activation(out)


def ref_sage(layer: L.GraphSageConv, x: Tensor, a: Tensor, **_) -> Tensor:
    h = torch.cat([x, dense_reduce(a, x, layer.aggr)], 1)
    h = dense_apply(layer.kernel, h)
    h = h / torch.sqrt(torch.clamp((h * h).sum(1, keepdim=True), min=1e-12))
    return layer.activation(h)


def ref_gat(layer: L.GATConv, x: Tensor, a: Tensor, **_) -> Tensor:
    n = x.shape[0]
    a_hat = with_unit_diag(a) if layer.add_self_loops else a
    outs = []
    for h in range(layer.attn_heads):
        hx = x @ layer.kernel[:, h, :]  # (N, C)
        s_self = hx @ layer.attn_kernel_self[:, h, 0]
        s_neigh = hx @ layer.attn_kernel_neighs[:, h, 0]
        e = F.leaky_relu(s_self[:, None] + s_neigh[None, :], 0.2)  # (N, N): e[i, j]
        alpha = torch.zeros(n, n, dtype=x.dtype)
        for i in range(n):  # softmax over the in-neighbours of i, multi-edges counted
            nb = a_hat[i] > 0
            if nb.any():
                w = a_hat[i, nb] * torch.exp(e[i, nb] - e[i, nb].max())
                alpha[i, nb] = w / w.sum()
        outs.append(alpha @ hx)
    out = torch.cat(outs, 1) if layer.concat_heads else torch.stack(outs, 0).mean(0)
    assert out.shape[0] == n
    if layer.bias is not None:
        out = out + layer.bias
    return layer.activation(out)


def ref_gin(layer: L.GINConv, x: Tensor, a: Tensor, **_) -> Tensor:
    h = (1 + layer.eps) * x + dense_reduce(a, x, layer.aggr)
    return mlp_dense(layer.mlp, h, layer.training)


def ref_appnp(layer: L.APPNPConv, x: Tensor, a: Tensor, **_) -> Tensor:
    z0 = mlp_dense(layer.mlp, x, layer.training)
    g, z = gcn_dense(a), z0
    for _ in range(layer.propagations):
        z = (1 - layer.alpha) * g @ z + layer.alpha * z0
    return layer.activation(z)


def ref_cheb(layer: L.ChebConv, x: Tensor, a: Tensor, **_) -> Tensor:
    n = a.shape[0]
    lam = float(layer.lambda_max)
    lap = (2.0 / lam) * (torch.eye(n, dtype=a.dtype) - sym_dense(a)) - torch.eye(n, dtype=a.dtype)
    ts = [x, lap @ x]
    for _ in range(2, layer.K):
        ts.append(2 * lap @ ts[-1] - ts[-2])
    out = sum(ts[k] @ layer.kernel[k] for k in range(layer.K))
    if layer.bias is not None:
        out = out + layer.bias
    return layer.activation(out)


@dataclass
class Case:
    """How the suite builds a layer, calls it, and what its dense reference is.

    edge_dim: ``S`` > 0 makes the suite pass edge features ``e`` (``[E, S]``; ``[B, N, N, S]`` in
        batch mode; ``[N, N, S]`` with a dense ``a``) as the keyword ``e``.
    num_edge_outputs: for layers returning ``(X', E')``: the suite compares ``E'`` too (aligned
        with the input edges) on partitions and under edge permutations.
    """

    make: Callable[[], torch.nn.Module]
    reference: Callable[..., Tensor]
    variants: dict[str, Callable[[], torch.nn.Module]] = field(default_factory=dict)
    edge_dim: int = 0
    returns_edges: bool = False


CASES: dict[str, Case] = {
    "GCNConv": Case(lambda: L.GCNConv(5, activation="relu"), ref_gcn),
    "GraphSageConv": Case(
        lambda: L.GraphSageConv(5),
        ref_sage,
        {agg: (lambda agg=agg: L.GraphSageConv(5, aggregate=agg)) for agg in ("sum", "max", "min", "prod")},
    ),
    "GATConv": Case(
        lambda: L.GATConv(3, attn_heads=2, dropout_rate=0.0, activation="elu"),
        ref_gat,
        {
            "mean-heads-no-loops": lambda: L.GATConv(3, attn_heads=2, concat_heads=False, dropout_rate=0.0, add_self_loops=False),
        },
    ),
    "GINConv": Case(
        lambda: L.GINConv(5, mlp_hidden=[6, 4], activation="relu"),
        ref_gin,
        {"fixed-eps-max": lambda: L.GINConv(5, epsilon=0.3, mlp_hidden=[6], mlp_batchnorm=False, aggregate="max")},
    ),
    "APPNPConv": Case(
        lambda: L.APPNPConv(5, alpha=0.1, propagations=4, mlp_hidden=[6], activation="tanh"),
        ref_appnp,
    ),
    "ChebConv": Case(
        lambda: L.ChebConv(5, K=4, activation="sigmoid"),
        ref_cheb,
        {"lambda-1.5": lambda: L.ChebConv(5, K=3, lambda_max=1.5), "K1": lambda: L.ChebConv(5, K=1)},
    ),
}


def _merge_groups() -> None:
    import importlib
    import pkgutil

    import tests.layers as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("references_"):
            group = importlib.import_module(f"tests.layers.{info.name}").CASES
            clash = set(group) & set(CASES)
            assert not clash, f"{info.name} redefines {clash}"
            CASES.update(group)


_merge_groups()
