"""distgnn layers against their torch-geometric counterparts: same weights, same outputs, timings.

For each layer the PyG equivalent is built, the distgnn layer's weights are copied into it
(kernels transposed from Keras' ``[in, out]`` to torch's ``[out, in]``), the outputs and the
input gradients are checked to agree (float32, max |diff| < 1e-4 on the output; the run fails
otherwise), then forward+backward is timed (``x`` requires grad, as for a hidden layer;
``loss = out.sum()``), distgnn and PyG interleaved (see ``benchmarks/_common.py``).

=============  ==========================================  ===============================================
distgnn        torch-geometric                              notes
=============  ==========================================  ===============================================
GCNConv        GCNConv                                      PyG default ``cached=False``: PyG renormalises
                                                            the graph (adds loops, degrees) on every call;
                                                            distgnn caches it on the Graph object
GraphSageConv  SAGEConv(aggr='mean', normalize=True)        L2 norm after the bias on both sides;
                                                            kernel ``[2F, C]`` = [lin_r ; lin_l]
GATConv        GATConv(heads=8, out 8, concat)              attention dropout 0 on both sides (distgnn's
                                                            default is 0.5, which would make outputs random)
GINConv        GINConv(Seq(Linear, ReLU, [BatchNorm1d,]     trainable eps; hidden 64; ``[BN]`` row: batch
               Linear), train_eps=True)                     norm with distgnn's eps (1e-3) / momentum (0.01)
APPNPConv      Linear + APPNP(K=5, alpha=0.1)               PyG's APPNP only propagates; ``cached=False``
ChebConv       ChebConv(K=3, normalization='sym')           ``lambda_max=2.0`` passed explicitly
AGNNConv       AGNNConv(requires_grad=True)                 both add self-loops; trainable beta
ARMAConv       ARMAConv(num_stacks=2, num_layers=3,         sym(A) on both; PyG shares V, b with step 0
               shared_weights=True, dropout=0)              too: tied in distgnn (see build_pair)
CrystalConv    CGConv(dim=8, batch_norm=False)              distgnn activation='softplus'; edge feats [E, 8]
ECCConv        NNConv(nn=Linear(8, F*C), aggr='add')        16->16 (per-edge kernels [E, F*C])
EdgeConv       EdgeConv(Seq(Linear, ReLU, Linear), 'add')   dx may differ at ReLU kinks (rounding)
GatedGraphConv GatedGraphConv(num_layers=3, aggr='add')     same weights + GRUCell state dict
TAGConv        TAGConv(K=3, normalize=True)                 gcn_norm without self-loops = sym(A)
GINConvBatch   DenseGINConv(Seq(..), train_eps=True)        dense batches 64x32 and 16x256, no BN
=============  ==========================================  ===============================================

Both sides run in training mode. The graphs are undirected (on a directed graph PyG's ChebConv
takes degrees over edge sources, distgnn over targets, so they would legitimately differ).

distgnn is given a ``distgnn.graph.Graph`` built once per graph (as models use it: the normalised
adjacency and CSR views are cached on it). Extra GCNConv rows: distgnn given the plain
``edge_index`` tensor (the same tensor every call, so ``as_graph`` reuses its wrapper), given a
fresh ``edge_index`` tensor every call (nothing cached: the cold cost), and PyG with
``cached=True`` (not its default). GINConv runs twice: without batch norm (exact float32 check)
and with it (``--layers GINConv[BN]``; torch's float32 CPU ``batch_norm`` is itself ~1e-3 off on
100k rows, so the check there is done in float64 and distgnn's float32 output is compared with that).

On a machine shared with other jobs, ``--threads 1 --clock cpu`` gives far stabler ratios than
the default (wall clock, one thread per core).

Usage::

    python benchmarks/layers.py [--graphs cora,synthetic] [--repeats 5] [--layers GCNConv,...]
        [--threads N] [--clock wall|cpu] [--synthetic-generator uniform|sbm|rmat]
        [--dense-batches 64x32,16x256]

``--layers`` names single rows: ``GINConv`` is the row without batch norm, ``GINConv[BN]`` the
row with it (both run by default). ``--dense-batches`` picks the GINConvBatch batch sizes.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

from benchmarks._common import (  # noqa: E402
    BenchGraph,
    environment,
    format_table,
    fwd_bwd,
    load_cora,
    load_note,
    max_abs_diff,
    ms,
    synthetic_graph,
    time_interleaved,
    warn_if_busy,
)

import distgnn.layers as dl  # noqa: E402
from distgnn.graph import Graph  # noqa: E402

try:
    import torch_geometric.nn as pygnn
except ImportError:  # pragma: no cover - the bench extra
    sys.exit("torch-geometric is needed: pip install 'distgnn[bench]'")

TOL = 1e-4
LAYERS = ("GCNConv", "GraphSageConv", "GATConv", "GINConv", "APPNPConv", "ChebConv",
          "AGNNConv", "ARMAConv", "CrystalConv", "ECCConv", "EdgeConv", "GatedGraphConv", "TAGConv",
          "GINConvBatch")
BN_VARIANT = "GINConv[BN]"  # GINConv with mlp_batchnorm=True: a --layers name of its own
EDGE_FEATURE_LAYERS = ("CrystalConv", "ECCConv")  # given random edge features [E, EDGE_DIM]
EDGE_DIM = 8
# ECCConv builds one [F, C] kernel per edge ([E, F*C] floats, ~1 GB at 64->64 on 1M edges and as
# much again for its gradient), so it runs 16->16 (x = the first 16 input columns).
LAYER_CHANNELS = {"ECCConv": 16}
DENSE_LAYERS = ("GINConvBatch",)  # run on dense batches (DENSE_BATCHES), not on cora/synthetic
DENSE_BATCHES = ((64, 32, 0.2), (16, 256, 0.05))  # (B graphs, N nodes each, edge probability)
ARMA_STACKS, ARMA_LAYERS = 2, 3
EDGE_HIDDEN = 64
GGC_LAYERS = 3
TAG_K = 3
HEADS, HEAD_CHANNELS = 8, 8  # GAT: 8 heads of 8 channels, concatenated (64 outputs)
APPNP_K, APPNP_ALPHA = 5, 0.1  # the paper uses K=10; 5 keeps the run short (the ratio is per step)
CHEB_K = 3
GIN_HIDDEN = 64


@dataclass
class Pair:
    """A distgnn layer and the PyG layer holding identical weights.

    ``exact``: the float32 outputs must agree within ``TOL``. When ``False`` (a batch norm over
    many nodes: torch's float32 ``batch_norm`` on CPU is itself off by ~1e-3 there), the float64
    outputs must agree and distgnn's float32 output must be within ``TOL`` of the float64 one.
    """

    dg: nn.Module
    pyg: nn.Module
    graph: Graph
    edge_index: Tensor
    note: str = ""
    exact: bool = True
    dg_kw: dict = field(default_factory=dict)  # extra keyword inputs, e.g. edge features ``e``
    pyg_kw: dict = field(default_factory=dict)  # e.g. ``edge_attr`` (the same tensor)

    def run_dg(self, x: Tensor) -> Tensor:
        return self.dg(x, self.graph, **self.dg_kw)

    def run_pyg(self, x: Tensor) -> Tensor:
        return self.pyg(x, self.edge_index, **self.pyg_kw)

    def timed(self, x: Tensor) -> dict:
        return {
            "distgnn": fwd_bwd(self.run_dg, x, list(self.dg.parameters())),
            "pyg": fwd_bwd(self.run_pyg, x, list(self.pyg.parameters())),
        }

    def double(self) -> "Pair":
        return Pair(copy.deepcopy(self.dg).double(), copy.deepcopy(self.pyg).double(), _f64(self.graph),
                    _f64(self.edge_index), dg_kw={k: _f64(v) for k, v in self.dg_kw.items()},
                    pyg_kw={k: _f64(v) for k, v in self.pyg_kw.items()})


def _f64(t):
    """Float tensors (edge features, a dense adjacency) to float64; anything else unchanged."""
    return t.double() if isinstance(t, Tensor) and t.is_floating_point() else t


def _t(w: Tensor) -> Tensor:
    """Keras ``[in, out]`` -> torch ``[out, in]``."""
    return w.detach().t().contiguous()


def _copy(dst: Tensor, src: Tensor) -> None:
    if dst.shape != src.shape:
        raise AssertionError(f"weight copy: shape {tuple(src.shape)} into {tuple(dst.shape)}")
    with torch.no_grad():
        dst.copy_(src)


def _materialise(layer: nn.Module, x: Tensor, a) -> None:
    with torch.no_grad():
        layer(x, a)


def _materialise_e(layer: nn.Module, x: Tensor, a, e: Tensor) -> None:
    with torch.no_grad():
        layer(x, a, e=e)


class _Seq(nn.Module):
    """``Linear`` then a PyG propagation-only layer (APPNP)."""

    def __init__(self, lin: nn.Module, prop: nn.Module):
        super().__init__()
        self.lin, self.prop = lin, prop

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.prop(self.lin(x), edge_index)


class _Cheb(nn.Module):
    """PyG ChebConv with ``lambda_max=2`` (distgnn's default) passed explicitly."""

    def __init__(self, conv: nn.Module):
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.conv(x, edge_index, lambda_max=2.0)


def build_pair(name: str, f_in: int, f_out: int, x: Tensor, graph: Graph, edge_index: Tensor,
               batchnorm: bool = False, e: Tensor | None = None) -> Pair:
    """distgnn layer ``name`` (materialised on ``x``) and its PyG twin with copied weights."""
    torch.manual_seed(1)
    exact = True
    if name == "GCNConv":
        dg = dl.GCNConv(f_out)
        _materialise(dg, x, graph)
        pg = pygnn.GCNConv(f_in, f_out)  # cached=False, add_self_loops=True, normalize=True
        _copy(pg.lin.weight, _t(dg.kernel.kernel))
        _copy(pg.bias, dg.bias.detach())
        note = "PyG cached=False: renormalises every call"
    elif name == "GraphSageConv":
        dg = dl.GraphSageConv(f_out, aggregate="mean")
        _materialise(dg, x, graph)
        pg = pygnn.SAGEConv(f_in, f_out, aggr="mean", normalize=True, root_weight=True)
        k = dg.kernel.kernel.detach()  # (2F, C) over [x_i || mean_j x_j]
        _copy(pg.lin_r.weight, _t(k[:f_in]))
        _copy(pg.lin_l.weight, _t(k[f_in:]))
        _copy(pg.lin_l.bias, dg.kernel.bias.detach())
        note = "mean, normalize=True, root_weight=True"
    elif name == "GATConv":
        dg = dl.GATConv(HEAD_CHANNELS, attn_heads=HEADS, concat_heads=True, dropout_rate=0.0)
        _materialise(dg, x, graph)
        pg = pygnn.GATConv(f_in, HEAD_CHANNELS, heads=HEADS, concat=True, dropout=0.0)
        _copy(pg.lin.weight, _t(dg.kernel.detach().reshape(f_in, HEADS * HEAD_CHANNELS)))
        _copy(pg.att_src, dg.attn_kernel_neighs.detach().permute(2, 1, 0))  # (1, H, C): source j
        _copy(pg.att_dst, dg.attn_kernel_self.detach().permute(2, 1, 0))  # target i
        _copy(pg.bias, dg.bias.detach())
        note = f"{HEADS} heads x {HEAD_CHANNELS}, concat, attention dropout 0"
    elif name == "GINConv":
        dg = dl.GINConv(f_out, mlp_hidden=[GIN_HIDDEN], mlp_batchnorm=batchnorm)
        _materialise(dg, x, graph)
        mods = [nn.Linear(f_in, GIN_HIDDEN), nn.ReLU()]
        if batchnorm:
            bn = dg.mlp.norms[0]
            mods.append(nn.BatchNorm1d(GIN_HIDDEN, eps=bn.eps, momentum=bn.momentum))
        mods.append(nn.Linear(GIN_HIDDEN, f_out))
        seq = nn.Sequential(*mods)
        pg = pygnn.GINConv(seq, train_eps=True)  # resets seq: copy the weights after this
        _copy(seq[0].weight, _t(dg.mlp.dense[0].kernel))
        _copy(seq[0].bias, dg.mlp.dense[0].bias.detach())
        if batchnorm:
            for attr in ("weight", "bias", "running_mean", "running_var"):
                _copy(getattr(seq[2], attr), getattr(bn, attr).detach())
        _copy(seq[-1].weight, _t(dg.mlp.out.kernel))
        _copy(seq[-1].bias, dg.mlp.out.bias.detach())
        _copy(pg.eps, dg.eps.detach().reshape(pg.eps.shape))
        if batchnorm:
            note = f"MLP {f_in}-{GIN_HIDDEN}(ReLU, BatchNorm eps 1e-3)-{f_out}; checked in float64"
            exact = False
        else:
            note = f"MLP {f_in}-{GIN_HIDDEN}(ReLU)-{f_out}, mlp_batchnorm=False, trainable eps"
    elif name == "APPNPConv":
        dg = dl.APPNPConv(f_out, alpha=APPNP_ALPHA, propagations=APPNP_K)
        _materialise(dg, x, graph)
        lin = nn.Linear(f_in, f_out)
        _copy(lin.weight, _t(dg.mlp.out.kernel))
        _copy(lin.bias, dg.mlp.out.bias.detach())
        pg = _Seq(lin, pygnn.APPNP(K=APPNP_K, alpha=APPNP_ALPHA))  # cached=False
        note = f"K={APPNP_K}, alpha={APPNP_ALPHA}; PyG: Linear + APPNP, cached=False"
    elif name == "ChebConv":
        dg = dl.ChebConv(f_out, K=CHEB_K)
        _materialise(dg, x, graph)
        conv = pygnn.ChebConv(f_in, f_out, K=CHEB_K, normalization="sym")
        for k in range(CHEB_K):
            _copy(conv.lins[k].weight, _t(dg.kernel[k]))
        _copy(conv.bias, dg.bias.detach())
        pg = _Cheb(conv)
        note = f"K={CHEB_K}, sym, lambda_max=2"
    elif name == "AGNNConv":
        # Both add one self-loop per node and softmax beta * cos over N(i) u {i}; both normalise
        # with x / max(|x|, 1e-12). No weights besides the trainable scalar beta (init 1).
        dg = dl.AGNNConv(trainable=True)
        pg = pygnn.AGNNConv(requires_grad=True)
        _copy(pg.beta, dg.beta.detach().reshape(pg.beta.shape))
        note = "trainable beta, self-loops on both sides"
    elif name == "ARMAConv":
        # PyG: gcn_norm(add_self_loops=False) = sym(A), as distgnn. Layouts: init_weight [K, F, C]
        # = kernel_in; weight [T-1 or 1, K, C, C] = kernel_hidden; root_weight [T or 1, K, F, C] =
        # skip_kernel; bias [T or 1, K, 1, C]. Sharing differs: PyG's shared_weights uses ONE
        # root_weight / bias for all steps, step 0 included, while distgnn's share_weights gives
        # step 0 its own V / b (two sets). Configured equal by copying PyG's single V / b into
        # both of distgnn's sets (W^0 = init_weight and the shared W^1 match as they are).
        k_, t_ = ARMA_STACKS, ARMA_LAYERS
        dg = dl.ARMAConv(f_out, order=k_, iterations=t_, share_weights=True, dropout_rate=0.0)
        _materialise(dg, x, graph)
        pg = pygnn.ARMAConv(f_in, f_out, num_stacks=k_, num_layers=t_, shared_weights=True, dropout=0.0)
        _copy(pg.init_weight, dg.kernel_in.detach())
        _copy(pg.weight, dg.kernel_hidden.detach())
        with torch.no_grad():
            dg.skip_kernel[1].copy_(dg.skip_kernel[0])
            dg.bias.normal_(0, 0.1)  # zeros by default: make the bias check meaningful
            dg.bias[1].copy_(dg.bias[0])
        _copy(pg.root_weight, dg.skip_kernel[:1].detach())
        _copy(pg.bias, dg.bias[:1].detach().unsqueeze(2))
        note = f"K={k_} stacks, T={t_} steps, shared (V, b tied across all steps), dropout 0"
    elif name == "CrystalConv":
        # PyG CGConv: x_i + sum sigmoid(z W_f + b_f) * softplus(z W_s + b_s), z = [x_i, x_j, e]
        # (i target); distgnn's g = activation='softplus' (both beta 1, threshold 20); PyG's
        # batch_norm=False. Kernels [2F+S, F] = lin_f/lin_s weights transposed.
        dg = dl.CrystalConv(activation="softplus")
        _materialise_e(dg, x, graph, e)
        pg = pygnn.CGConv(f_in, dim=e.shape[1], aggr="add", batch_norm=False, bias=True)
        with torch.no_grad():
            dg.bias_f.normal_(0, 0.1)
            dg.bias_s.normal_(0, 0.1)
        _copy(pg.lin_f.weight, _t(dg.kernel_f))
        _copy(pg.lin_s.weight, _t(dg.kernel_s))
        _copy(pg.lin_f.bias, dg.bias_f.detach())
        _copy(pg.lin_s.bias, dg.bias_s.detach())
        note = f"activation=softplus, {e.shape[1]} edge features, PyG batch_norm=False"
    elif name == "ECCConv":
        # PyG NNConv(nn = Linear(S, F*C)), aggr add: nn(e).view(-1, F, C), the same row-major
        # [F, C] layout as distgnn's kernel_out; root = lin (no bias) + separate bias.
        dg = dl.ECCConv(f_out)
        _materialise_e(dg, x, graph, e)
        kn = nn.Linear(e.shape[1], f_in * f_out)
        pg = pygnn.NNConv(f_in, f_out, kn, aggr="add", root_weight=True, bias=True)  # resets kn
        with torch.no_grad():
            dg.kernel_out_bias.normal_(0, 0.1)
            dg.bias.normal_(0, 0.1)
        _copy(kn.weight, _t(dg.kernel_out))
        _copy(kn.bias, dg.kernel_out_bias.detach())
        _copy(pg.lin.weight, _t(dg.root_kernel))
        _copy(pg.bias, dg.bias.detach())
        note = f"{f_in}->{f_out}: per-edge kernels [E, {f_in}x{f_out}]; {e.shape[1]} edge features"
    elif name == "EdgeConv":
        # Same MLP on [x_i, x_j - x_i]: Linear(2F, H), ReLU, Linear(H, C); aggr add. distgnn splits
        # the first Linear per node (x_i (W_a - W_b) + x_j W_b), so a pre-activation within rounding
        # of 0 can sit on the other side of the ReLU: outputs agree to ~1e-5, but dL/dx can differ
        # by a full weight row at such kinks (0.3 seen on 1M edges); only the output is checked.
        dg = dl.EdgeConv(f_out, mlp_hidden=[EDGE_HIDDEN], aggregate="sum")
        _materialise(dg, x, graph)
        seq = nn.Sequential(nn.Linear(2 * f_in, EDGE_HIDDEN), nn.ReLU(), nn.Linear(EDGE_HIDDEN, f_out))
        pg = pygnn.EdgeConv(seq, aggr="add")  # resets seq: copy after this
        _copy(seq[0].weight, _t(dg.mlp.dense[0].kernel))
        _copy(seq[0].bias, dg.mlp.dense[0].bias.detach())
        _copy(seq[2].weight, _t(dg.mlp.out.kernel))
        _copy(seq[2].bias, dg.mlp.out.bias.detach())
        note = f"MLP {2 * f_in}-{EDGE_HIDDEN}(ReLU)-{f_out} per edge, sum"
    elif name == "GatedGraphConv":
        # Same: weight [L, C, C] per step, one torch.nn.GRUCell shared by the steps, zero padding.
        dg = dl.GatedGraphConv(f_out, n_layers=GGC_LAYERS)
        pg = pygnn.GatedGraphConv(f_out, num_layers=GGC_LAYERS, aggr="add", bias=True)
        with torch.no_grad():
            dg.gru.bias_ih.normal_(0, 0.1)
            dg.gru.bias_hh.normal_(0, 0.1)
        _copy(pg.weight, dg.kernel.detach())
        pg.rnn.load_state_dict(dg.gru.state_dict())
        note = f"L={GGC_LAYERS} steps, GRUCell, sum"
    elif name == "TAGConv":
        # PyG: gcn_norm(add_self_loops=False) = sym(A) (in-degrees; the graphs are undirected);
        # lins[k] (no bias) = rows k*F..(k+1)*F of distgnn's stacked kernel; true powers on both.
        dg = dl.TAGConv(f_out, K=TAG_K)
        _materialise(dg, x, graph)
        pg = pygnn.TAGConv(f_in, f_out, K=TAG_K, bias=True, normalize=True)
        with torch.no_grad():
            dg.bias.normal_(0, 0.1)
        for k in range(TAG_K + 1):
            _copy(pg.lins[k].weight, _t(dg.kernel[k * f_in:(k + 1) * f_in]))
        _copy(pg.bias, dg.bias.detach())
        note = f"K={TAG_K}, sym(A) without self-loops"
    elif name == "GINConvBatch":
        # graph / edge_index are the dense adjacency [B, N, N]; DenseGINConv(add_loop=True):
        # nn((1 + eps) x + A x), the same as distgnn's sum aggregation.
        dg = dl.GINConvBatch(f_out, mlp_hidden=[GIN_HIDDEN], mlp_batchnorm=False)
        _materialise(dg, x, graph)
        seq = nn.Sequential(nn.Linear(f_in, GIN_HIDDEN), nn.ReLU(), nn.Linear(GIN_HIDDEN, f_out))
        pg = pygnn.DenseGINConv(seq, train_eps=True)  # resets seq
        _copy(seq[0].weight, _t(dg.mlp.dense[0].kernel))
        _copy(seq[0].bias, dg.mlp.dense[0].bias.detach())
        _copy(seq[2].weight, _t(dg.mlp.out.kernel))
        _copy(seq[2].bias, dg.mlp.out.bias.detach())
        _copy(pg.eps, dg.eps.detach().reshape(pg.eps.shape))
        note = f"dense; MLP {f_in}-{GIN_HIDDEN}(ReLU)-{f_out}, mlp_batchnorm=False, trainable eps"
    else:
        raise ValueError(f"unknown layer {name!r}; choose from {', '.join(LAYERS)}")
    kw = ({"e": e}, {"edge_attr": e}) if name in EDGE_FEATURE_LAYERS else ({}, {})
    return Pair(dg.train(), pg.train(), graph, edge_index, note, exact, *kw)


def _outputs(pair: Pair, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    xd, xp = x.detach().clone().requires_grad_(), x.detach().clone().requires_grad_()
    od, op = pair.run_dg(xd), pair.run_pyg(xp)
    r = torch.randn(od.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64).to(od.dtype)
    (od * r).sum().backward()
    (op * r).sum().backward()
    return od.detach(), op.detach(), xd.grad, xp.grad


def check(pair: Pair, x: Tensor, label: str) -> tuple[float, float, str | None]:
    """Max |diff| of the outputs and of the input gradients, and a failure message or ``None``.

    The gradients are those of ``(out * r).sum()`` for a fixed random ``r``: with ``out.sum()``
    a batch norm's input gradient is exactly zero in theory, so only rounding noise would be
    compared.
    """
    od, op, gd, gp = _outputs(pair, x)
    d_out, d_grad = max_abs_diff(od, op), max_abs_diff(gd, gp)
    print(f"  check {label}: float32 max|out diff| = {d_out:.2e}, max|dL/dx diff| = {d_grad:.2e} "
          f"(max|out| = {float(op.abs().max()):.2f})", flush=True)
    if pair.exact:
        return d_out, d_grad, None if d_out < TOL else f"{label}: outputs differ by {d_out:.3e} (tolerance {TOL:g})"
    od64, op64, _, _ = _outputs(pair.double(), x.double())
    d64, err_dg, err_pg = max_abs_diff(od64, op64), max_abs_diff(od, od64), max_abs_diff(op, op64)
    print(f"  check {label}: float64 max|out diff| = {d64:.2e}; float32 error vs float64: "
          f"distgnn {err_dg:.2e}, PyG {err_pg:.2e}", flush=True)
    ok = d64 < 1e-9 and err_dg < TOL
    return d_out, d_grad, None if ok else (
        f"{label}: float64 outputs differ by {d64:.3e}, distgnn float32 error {err_dg:.3e} (tolerance {TOL:g})")


def bench_graph(g: BenchGraph, layers: list[str], channels: int, repeats: int, clock: str) -> tuple[list, list]:
    torch.manual_seed(0)
    x = torch.randn(g.num_nodes, channels).requires_grad_()
    graph = Graph(g.edge_index, g.num_nodes)  # built once, shared by every distgnn layer
    # random edge features for CrystalConv / ECCConv, aligned with g.edge_index (`e` / `edge_attr`)
    e = torch.randn(g.num_edges, EDGE_DIM, generator=torch.Generator().manual_seed(3))
    rows, failures = [], []
    sparse = [n for n in layers if n not in DENSE_LAYERS]
    variants = [(n, False) for n in sparse if n != BN_VARIANT]
    variants += [("GINConv", True)] if BN_VARIANT in sparse else []
    x_full = x
    for name, bn in variants:
        row_name = BN_VARIANT if bn else name
        label = f"{row_name} on {g.name}"
        c = min(LAYER_CHANNELS.get(name, channels), channels)
        x = x_full if c == channels else x_full.detach()[:, :c].clone().requires_grad_()
        pair = build_pair(name, c, c, x.detach(), graph, g.edge_index, batchnorm=bn, e=e)
        d_out, d_grad, failure = check(pair, x, label)
        if failure:
            print(f"  MISMATCH: {failure}", file=sys.stderr, flush=True)
            failures.append(failure)
        cases = pair.timed(x)
        if name == "GCNConv":
            cases.update(_gcn_extra_cases(pair, x, repeats))
        t0 = time.perf_counter()
        t = time_interleaved(cases, repeats=repeats, warmup=1, clock=clock)
        print(f"  timed {label} in {time.perf_counter() - t0:.1f}s", flush=True)
        rows.append([row_name, g.name, ms(t["distgnn"]), ms(t["pyg"]), t["distgnn"] / t["pyg"], d_out, d_grad,
                     pair.note])
        if name == "GCNConv":
            rows.append([f"{name} [edge_index]", g.name, ms(t["dg_ei"]), ms(t["pyg"]), t["dg_ei"] / t["pyg"],
                         "", "", "plain edge_index, the same tensor every call"])
            rows.append([f"{name} [fresh edge_index]", g.name, ms(t["dg_fresh"]), ms(t["pyg"]),
                         t["dg_fresh"] / t["pyg"], "", "", "a new edge_index tensor every call: no cache"])
            rows.append([f"{name} [PyG cached=True]", g.name, ms(t["distgnn"]), ms(t["pyg_cached"]),
                         t["distgnn"] / t["pyg_cached"], "", "", "PyG caches its normalised graph too (not the default)"])
    return rows, failures


def dense_batch(b: int, n: int, p: float, channels: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``x [B, N, F]`` and a random symmetric 0/1 adjacency ``[B, N, N]`` (edge probability ``p``,
    no self-loops): a batch of padded-free small graphs, as fed to the dense (batch-mode) layers."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, channels, generator=gen).requires_grad_()
    upper = (torch.rand(b, n, n, generator=gen) < p).float().triu(1)
    return x, upper + upper.transpose(1, 2)


def bench_dense(layers: list[str], channels: int, repeats: int, clock: str,
                batches=DENSE_BATCHES) -> tuple[list, list]:
    """The batch-mode layers (GINConvBatch vs DenseGINConv) on dense ``batches`` (B, N, p)."""
    rows, failures = [], []
    for b, n, p in batches:
        x, adj = dense_batch(b, n, p, channels)
        gname = f"dense {b}x{n}"
        print(f"\n## {gname}: {b} graphs of {n} nodes, {int(adj.sum())} edges in all (p={p})", flush=True)
        for name in layers:
            label = f"{name} on {gname}"
            pair = build_pair(name, channels, channels, x.detach(), adj, adj)
            d_out, d_grad, failure = check(pair, x, label)
            if failure:
                print(f"  MISMATCH: {failure}", file=sys.stderr, flush=True)
                failures.append(failure)
            t0 = time.perf_counter()
            t = time_interleaved(pair.timed(x), repeats=repeats, warmup=1, clock=clock)
            print(f"  timed {label} in {time.perf_counter() - t0:.1f}s", flush=True)
            rows.append([name, gname, ms(t["distgnn"]), ms(t["pyg"]), t["distgnn"] / t["pyg"], d_out, d_grad,
                         pair.note])
    return rows, failures


def _gcn_extra_cases(pair: Pair, x: Tensor, repeats: int) -> dict:
    """The same distgnn GCNConv fed a plain edge_index: the same tensor every call (``as_graph``
    keeps its wrapper and caches) and a new tensor every call (validation, self-loops, degrees and
    the CSR views are rebuilt each time); and PyG's GCNConv with ``cached=True``."""
    layer, ei = pair.dg, pair.edge_index
    same = ei.clone()
    fresh = iter([ei.clone() for _ in range(repeats + 1)])  # warm-up + timed calls
    params = list(layer.parameters())
    pyg_cached = copy.deepcopy(pair.pyg)
    pyg_cached.cached = True
    return {
        "dg_ei": fwd_bwd(lambda x_: layer(x_, same), x, params),
        "dg_fresh": fwd_bwd(lambda x_: layer(x_, next(fresh)), x, params),
        "pyg_cached": fwd_bwd(lambda x_: pyg_cached(x_, ei), x, list(pyg_cached.parameters())),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--graphs", default="cora,synthetic", help="comma list of cora, synthetic")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds per case (median reported)")
    p.add_argument("--layers", default=",".join(LAYERS + (BN_VARIANT,)),
                   help=f"comma list of {', '.join(LAYERS + (BN_VARIANT,))}")
    p.add_argument("--dense-batches", default=",".join(f"{b}x{n}" for b, n, _ in DENSE_BATCHES),
                   help="comma list of BxN dense batches for GINConvBatch (of "
                        f"{', '.join(f'{b}x{n}' for b, n, _ in DENSE_BATCHES)})")
    p.add_argument("--channels", type=int, default=64, help="input = output channels")
    p.add_argument("--synthetic-nodes", type=int, default=100_000)
    p.add_argument("--synthetic-edges", type=int, default=1_000_000)
    p.add_argument("--synthetic-generator", default="uniform", choices=("uniform", "sbm", "rmat"))
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's choice, one per core)")
    p.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                   help="wall time, or this process's CPU time (stabler on a shared machine with --threads 1)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    layers = [s.strip() for s in args.layers.split(",") if s.strip()]
    bad = [s for s in layers if s not in LAYERS + (BN_VARIANT,)]
    known = {f"{b}x{n}": (b, n, q) for b, n, q in DENSE_BATCHES}
    batches = [s.strip() for s in args.dense_batches.split(",") if s.strip()]
    if any(s not in known for s in batches):
        p.error(f"unknown dense batch(es) {[s for s in batches if s not in known]}; use {', '.join(known)}")
    graphs = [s.strip() for s in args.graphs.split(",") if s.strip()]
    bad_g = [s for s in graphs if s not in ("cora", "synthetic")]
    if bad or bad_g:
        p.error(f"unknown layer(s) {bad} / graph(s) {bad_g}; layers: {', '.join(LAYERS + (BN_VARIANT,))}; "
                "graphs: cora, synthetic")

    print(f"# distgnn vs torch-geometric {__import__('torch_geometric').__version__}: {environment()}")
    warn_if_busy()
    print(f"# forward+backward, float32, {args.channels}->{args.channels} channels, median of "
          f"{args.repeats} interleaved runs after 1 warm-up ({args.clock} clock); ratio = distgnn / PyG (< 1: distgnn faster)")
    start = time.perf_counter()
    all_rows, failures = [], []
    for gname in graphs if any(n not in DENSE_LAYERS for n in layers) else []:
        if gname == "cora":
            g = load_cora()
        else:
            g = synthetic_graph(args.synthetic_nodes, args.synthetic_edges, args.synthetic_generator)
        print(f"\n## {g.name}: {g.num_nodes} nodes, {g.num_edges} edges ({g.source})", flush=True)
        rows, fails = bench_graph(g, layers, args.channels, args.repeats, args.clock)
        all_rows += rows
        failures += fails
    dense = [n for n in layers if n in DENSE_LAYERS]
    if dense:  # independent of --graphs: dense batches replace cora / synthetic
        rows, fails = bench_dense(dense, args.channels, args.repeats, args.clock, [known[s] for s in batches])
        all_rows += rows
        failures += fails

    print()
    headers = ["layer", "graph", "distgnn ms", "PyG ms", "ratio", "max|diff| out", "max|diff| dx", "notes"]
    print(format_table(headers, all_rows))
    print(f"\ntotal {time.perf_counter() - start:.0f}s; {load_note()}")
    if failures:
        print("\nFAILED: distgnn and PyG disagree:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
