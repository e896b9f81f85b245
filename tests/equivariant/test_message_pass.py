"""MessagePass: the per-edge formula, O(3) equivariance, neighbour-list formats, batch dims,
distgnn graphs, partitioned == whole, gradcheck/gradgradcheck, errors."""
from __future__ import annotations

import itertools

import pytest
import torch

from distgnn.equivariant import MessagePass, dense_to_sparse_indices, edge_vectors, so3, sparse_to_dense_indices
from distgnn.equivariant.dense import parity_mask
from distgnn.equivariant.so3 import IrrepsError
from distgnn.graph import Graph, GraphError, run_parts, split_graph

from tests.equivariant.common import (
    DT,
    cloud,
    edge_basis,
    features,
    gen,
    make_layer,
    radius_edges,
    reference_message_pass,
)

CONFIGS = [
    # (L, P, Lb, fused, bias, pseudo, cartesian)
    (0, 1, 1, False, False, True, True),
    (1, 1, 1, False, True, True, True),
    (1, 2, 2, True, False, True, False),
    (2, 1, 2, False, False, False, True),
    (2, 2, 1, True, True, False, True),
    (2, 2, 2, False, True, True, False),
    (3, 1, 2, True, False, True, True),
]
IDS = [f"L{c[0]}-P{c[1]}-Lb{c[2]}-{'fused' if c[3] else 'tensor'}-{'bias' if c[4] else 'nobias'}-"
       f"{'pseudo' if c[5] else 'proper'}-{'cart' if c[6] else 'std'}" for c in CONFIGS]


def system(L, P, Lb, cartesian=True, n=7, f=3, seed=0):
    pos = cloud(n, seed)
    dst, src = radius_edges(pos)
    x = features(n, P, L, f, seed + 1)
    b = edge_basis(pos, dst, src, Lb, cartesian_order=cartesian)
    return pos, dst, src, x, b


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_equals_the_per_edge_formula(cfg):
    L, P, Lb, fused, bias, pseudo, cartesian = cfg
    pos, dst, src, x, b = system(L, P, Lb, cartesian)
    mp = make_layer(x, b, use_fused_tensor=fused, use_basis_bias=bias, include_pseudotensors=pseudo, cartesian_order=cartesian)
    w = torch.rand(dst.numel(), 1, 1, 1, generator=gen(9), dtype=DT)  # broadcastable to [E, P, D, F], as in e3x
    for weights, wref in ((None, None), (w, w)):
        out = mp(x, b, weights, dst_idx=dst, src_idx=src, indices_are_sorted=True)
        ref = reference_message_pass(mp, x, b, dst, src, x.shape[0], wref)
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    assert dst.numel() > x.shape[0] and out.abs().max() > 0.1


@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_rotation_and_reflection_equivariance(cfg, reflect):
    """Rotating/reflecting the positions and transforming the features transforms every output
    degree and parity exactly as its irrep should (float64 precision)."""
    L, P, Lb, fused, bias, pseudo, cartesian = cfg
    pos, dst, src, x, b = system(L, P, Lb, cartesian, n=8, seed=3)
    mp = make_layer(x, b, use_fused_tensor=fused, use_basis_bias=bias, include_pseudotensors=pseudo, cartesian_order=cartesian)
    q = so3.random_orthogonal(gen(17), reflect=reflect)
    out = mp(x, b, dst_idx=dst, src_idx=src)
    pos_q = pos @ q.T
    b_q = edge_basis(pos_q, dst, src, Lb, cartesian_order=cartesian)
    out_q = mp(so3.transform_features(x, q, cartesian), b_q, dst_idx=dst, src_idx=src)
    torch.testing.assert_close(out_q, so3.transform_features(out, q, cartesian), rtol=1e-11, atol=1e-11)
    pb, lb, p, l_in, p3, l3, _ = mp.product.layout
    reachable = parity_mask(pb, lb, p, l_in, p3, l3, triangle=True).sum(dim=(0, 1, 2, 3))
    for c, l in itertools.product(range(p3), range(l3 + 1)):
        block = out[:, c, l * l : (l + 1) ** 2].abs().max()
        assert (block > 1e-6) if reachable[c, l] else (block < 1e-12), (c, l)


def test_dense_and_sparse_lists_agree_values_and_gradients():
    pos, dst, src, x, b = system(2, 2, 2)
    mp = make_layer(x, b, use_basis_bias=True)
    n = x.shape[0]
    adj = sparse_to_dense_indices(dst, src, pad_idx=n)  # (N, M) padded with N
    m = adj.shape[1]
    slot = torch.zeros(n, m, dtype=torch.long)
    count = torch.zeros(n, dtype=torch.long)
    for e in range(dst.numel()):  # position of every edge in its row
        slot[dst[e], count[dst[e]]] = e
        count[dst[e]] += 1
    valid = adj < n
    b_dense = torch.where(valid[..., None, None, None], b[slot], torch.full_like(b[slot], float("nan")))  # padding: garbage
    xs = x.clone().requires_grad_()
    bs = b.clone().requires_grad_()
    out_sparse = mp(xs, bs, dst_idx=dst, src_idx=src)
    xd = x.clone().requires_grad_()
    bd = b_dense.detach().clone().requires_grad_()
    out_dense = mp(xd, bd, adj_idx=adj)
    torch.testing.assert_close(out_dense, out_sparse, rtol=1e-12, atol=1e-12)
    out_where = mp(xd, bd, adj_idx=adj.clamp(max=n - 1), where=valid)  # explicit mask, padding pointing at node N-1
    torch.testing.assert_close(out_where, out_sparse, rtol=1e-12, atol=1e-12)
    g = torch.randn(out_sparse.shape, generator=gen(2), dtype=DT)
    (out_sparse * g).sum().backward()
    (out_dense * g).sum().backward()
    torch.testing.assert_close(xd.grad, xs.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(bd.grad[valid], bs.grad[slot[valid]], rtol=1e-12, atol=1e-12)
    assert bd.grad[~valid].abs().max() == 0  # no NaN leaks from the padding
    # dense -> sparse conversion round trip (e3x's helpers)
    d2, s2 = dense_to_sparse_indices(adj, pad_idx=n)
    torch.testing.assert_close(mp(x, b[slot[valid]], dst_idx=d2, src_idx=s2), out_sparse.detach(), rtol=1e-12, atol=1e-12)


def test_sorted_and_unsorted_lists_agree_and_edge_order_does_not_matter():
    pos, dst, src, x, b = system(1, 1, 2, n=9)
    mp = make_layer(x, b)
    ref = mp(x, b, dst_idx=dst, src_idx=src, indices_are_sorted=True)
    perm = torch.randperm(dst.numel(), generator=gen(4))
    shuffled = mp(x, b[perm], dst_idx=dst[perm], src_idx=src[perm])
    torch.testing.assert_close(shuffled, ref, rtol=1e-12, atol=1e-12)
    # padding entries (dst == num_segments / src == N) anywhere contribute nothing
    n = x.shape[0]
    d_pad = torch.cat([dst, torch.tensor([n, n, 2])])
    s_pad = torch.cat([src, torch.tensor([n, 1, n])])
    b_pad = torch.cat([b, torch.full_like(b[:3], 5.0)])
    torch.testing.assert_close(mp(x, b_pad, dst_idx=d_pad, src_idx=s_pad), ref, rtol=1e-12, atol=1e-12)
    # a node relabelling permutes the outputs
    relabel = torch.randperm(n, generator=gen(5))
    inv = torch.argsort(relabel)
    out_r = mp(x[relabel], b, dst_idx=inv[dst], src_idx=inv[src])
    torch.testing.assert_close(out_r, ref[relabel], rtol=1e-12, atol=1e-12)
    # more segments than nodes: the extra rows are zero; isolated nodes too
    more = mp(x, b, dst_idx=dst, src_idx=src, num_segments=n + 2)
    torch.testing.assert_close(more[:n], ref)
    assert more[n:].abs().max() == 0
    lonely = mp(x, b[dst != 0], dst_idx=dst[dst != 0], src_idx=src[dst != 0])
    assert lonely[0].abs().max() == 0
    empty = mp(x, b[:0], dst_idx=dst[:0], src_idx=src[:0])
    assert empty.shape == ref.shape and empty.abs().max() == 0


def test_high_degree_spread_uses_several_buckets():
    """Degrees from 1 to 40 (hub): neighbourhoods padded per power-of-two bucket, same numbers."""
    n = 45
    pos = cloud(n, 6, scale=3.0)
    dst = torch.cat([torch.zeros(40, dtype=torch.long), torch.arange(1, n).repeat_interleave(torch.arange(1, n) % 5 + 1)])
    src = torch.cat([torch.arange(1, 41), torch.randint(0, n, (int((torch.arange(1, n) % 5 + 1).sum()),), generator=gen(1))])
    x = features(n, 1, 1, 2, 2)
    b = edge_basis(pos, dst, src, 1)
    mp = make_layer(x, b)
    out = mp(x, b, dst_idx=dst, src_idx=src)
    from distgnn.equivariant.indices import NeighbourPlan

    plan = NeighbourPlan.from_edges(src, dst, n, n)
    assert len(plan.buckets) >= 4
    sub = torch.arange(0, n, 7)
    keep = torch.isin(dst, sub)
    ref = reference_message_pass(mp, x, b[keep], dst[keep], src[keep], n)
    torch.testing.assert_close(out[sub], ref[sub], rtol=1e-12, atol=1e-12)


def test_leading_dims_batched_and_shared_lists_and_graph_mixed_mode():
    pos, dst, src, x, b = system(1, 2, 1, n=6)
    mp = make_layer(x, b)
    xb = torch.stack([x, 2 * x.flip(0), -x])  # (B, N, P, D, F)
    # one shared graph and basis (mixed): per sample
    shared = mp(xb, b, dst_idx=dst, src_idx=src)
    for i in range(3):
        torch.testing.assert_close(shared[i], mp(xb[i], b, dst_idx=dst, src_idx=src), rtol=1e-12, atol=1e-12)
    # independent graphs (disjoint as leading dims), padded to one length
    pos2, dst2, src2, _, b2 = system(1, 2, 1, n=6, seed=8)
    e = max(dst.numel(), dst2.numel())
    pad = lambda t, v: torch.cat([t, t.new_full((e - t.numel(),), v)])  # noqa: E731
    padb = lambda t: torch.cat([t, torch.zeros((e - t.shape[0],) + t.shape[1:], dtype=DT)])  # noqa: E731
    d = torch.stack([pad(dst, 6), pad(dst2, 6)])
    s = torch.stack([pad(src, 6), pad(src2, 6)])
    bb = torch.stack([padb(b), padb(b2)])
    two = mp(xb[:2], bb, dst_idx=d, src_idx=s)
    torch.testing.assert_close(two[0], mp(xb[0], b, dst_idx=dst, src_idx=src), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(two[1], mp(xb[1], b2, dst_idx=dst2, src_idx=src2), rtol=1e-12, atol=1e-12)
    # a distgnn graph: single == sparse lists, mixed == per sample, per-sample basis
    g = Graph(torch.stack([src, dst]), 6)
    torch.testing.assert_close(mp(x, b, graph=g), mp(x, b, dst_idx=dst, src_idx=src), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mp(xb, b, graph=g), shared, rtol=1e-12, atol=1e-12)
    bs = torch.stack([b, b * 0.5, -b])
    mixed = mp(xb, bs, graph=torch.stack([src, dst]))
    torch.testing.assert_close(mixed[1], mp(xb[1], b * 0.5, graph=g), rtol=1e-12, atol=1e-12)
    # edge_vectors through the graph equals pos[src] - pos[dst]; batched positions too
    torch.testing.assert_close(edge_vectors(pos, g), pos[src] - pos[dst])
    torch.testing.assert_close(edge_vectors(torch.stack([pos, 2 * pos]), g)[1], 2 * (pos[src] - pos[dst]))


def test_weights_broadcast_like_e3x():
    pos, dst, src, x, b = system(1, 1, 1, n=6)
    mp = make_layer(x, b)
    e = dst.numel()
    w_full = torch.rand(e, 1, 4, 3, generator=gen(3), dtype=DT)
    out = mp(x, b, w_full, dst_idx=dst, src_idx=src)
    ref = reference_message_pass(mp, x, b, dst, src, 6, w_full)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    per_feature = torch.tensor([0.5, 2.0, -1.0], dtype=DT)  # no edge axis: scales every message
    torch.testing.assert_close(mp(x, b, per_feature, dst_idx=dst, src_idx=src), mp(x * per_feature, b, dst_idx=dst, src_idx=src))


def _partition_setup(seed=0):
    n = 12
    pos = cloud(n, seed, scale=1.5)
    dst, src = radius_edges(pos, 2.6)
    edge_index = torch.stack([src, dst])
    assignment = torch.tensor([0, 1, 2, 0, 1, 2, 2, 1, 0, 0, 1, 2])
    return n, pos, edge_index, assignment


@pytest.mark.parametrize("fused", [False, True], ids=["tensor", "fused"])
def test_partitioned_equals_whole_values_and_gradients(fused):
    """3 in-process parts: halo features AND halo positions cross the cut through the graph;
    outputs and gradients w.r.t. features, positions and parameters equal the whole graph's."""
    n, pos0, edge_index, assignment = _partition_setup()
    x0 = features(n, 2, 1, 3, 4)
    g_whole = Graph(edge_index, n)
    mp = MessagePass(max_degree=2, use_fused_tensor=fused, use_basis_bias=True).double()
    b0 = edge_basis(pos0, edge_index[1], edge_index[0], 2)
    mp(x0, b0, graph=g_whole)  # materialise before the threads share the module
    for p in mp.parameters():
        p.data.add_(0.1 * torch.randn(p.shape, generator=gen(5), dtype=DT))
    weight = torch.randn(n, 2, 9, 3, generator=gen(6), dtype=DT)

    def run(x_rows, pos_rows, g):  # positions of halo sources come through the graph too
        return mp(x_rows, edge_basis_from_vectors(edge_vectors(pos_rows, g)), graph=g)

    x = x0.clone().requires_grad_()
    pos = pos0.clone().requires_grad_()
    whole = run(x, pos, g_whole)
    (whole * weight).sum().backward()
    gx, gpos = x.grad.clone(), pos.grad.clone()
    gparams = [p.grad.clone() for p in mp.parameters()]
    mp.zero_grad()

    parts = split_graph(edge_index, assignment, n)
    assert all(p.num_halo > 0 for p in parts)
    x = x0.clone().requires_grad_()
    pos = pos0.clone().requires_grad_()
    outs = run_parts(parts, lambda p, g: run(x[g.node_ids], pos[g.node_ids], g))
    loss = sum((o * weight[g.node_ids]).sum() for o, g in zip(outs, parts))
    loss.backward()
    for o, g in zip(outs, parts):
        torch.testing.assert_close(o, whole[g.node_ids], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x.grad, gx, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(pos.grad, gpos, rtol=1e-11, atol=1e-11)
    for p, gp in zip(mp.parameters(), gparams):
        torch.testing.assert_close(p.grad, gp, rtol=1e-11, atol=1e-11)


def edge_basis_from_vectors(r, L=2):
    import functools

    from distgnn.equivariant import basis, radial

    from tests.equivariant.common import CUTOFF

    return basis(r, max_degree=L, num=4, radial_fn=radial.reciprocal_bernstein,
                 cutoff_fn=functools.partial(radial.smooth_cutoff, cutoff=CUTOFF))


def test_gradcheck_and_gradgradcheck_positions_and_features():
    """float64, first and second derivatives w.r.t. positions and features (and parameters)."""
    pos0 = cloud(4, 2, scale=0.9)
    dst, src = radius_edges(pos0)
    x0 = features(4, 1, 1, 2, 3)
    for fused in (False, True):
        mp = MessagePass(use_fused_tensor=fused, use_basis_bias=True).double()
        mp(x0, edge_basis(pos0, dst, src, 1, k=2), dst_idx=dst, src_idx=src)
        params = tuple(mp.parameters())

        def fn(pos, x, *w):
            b = edge_basis(pos, dst, src, 1, k=2)
            return mp(x, b, dst_idx=dst, src_idx=src)

        inputs = (pos0.clone().requires_grad_(), x0.clone().requires_grad_())
        assert torch.autograd.gradcheck(fn, inputs + params)
        assert torch.autograd.gradgradcheck(fn, inputs)  # second order through positions and features


def test_sizes_lazy_eager_and_state_dict():
    pos, dst, src, x, b = system(1, 1, 2, n=5)
    eager = MessagePass(in_features=3, in_parity=1, in_max_degree=1, num_basis=4, basis_max_degree=2).double()
    assert eager.filter.kernel.shape == (1, 3, 4, 3)
    assert eager.tensor.kernel.shape == (1, 3, 1, 2, 2, 3, 3)  # e3x's layout
    lazy = MessagePass().double()
    assert sum(1 for _ in lazy.parameters()) == 2 and lazy.filter.has_uninitialized_params()
    lazy.load_state_dict(eager.state_dict())
    torch.testing.assert_close(lazy(x, b, dst_idx=dst, src_idx=src), eager(x, b, dst_idx=dst, src_idx=src))
    fused = MessagePass(use_fused_tensor=True, max_degree=1).double()
    fused(x, b, dst_idx=dst, src_idx=src)
    assert sorted(n for n, _ in fused.named_parameters()) == sorted(
        ["filter.kernel"] + [f"fused_tensor.kernel_{k}" for k in ("e1", "o1", "e2", "o2", "eee", "ooe", "eoo", "oeo")])
    assert "MessagePass" in repr(fused) and "fused_tensor" in repr(fused)


def test_registered_as_an_equivariant_layer():
    from distgnn.layers import REGISTRY
    from distgnn.layers.registry import convolutions

    entry = REGISTRY["MessagePass"]
    assert entry.cls is MessagePass and entry.kind == "equivariant" and entry.modes == ("single", "disjoint", "mixed")
    assert "MessagePass" not in convolutions()  # its inputs are irreps: the conv conformance suite does not apply


def test_float32_inputs_promote_the_parameters():
    pos, dst, src, x, b = system(1, 1, 1, n=5)
    mp = make_layer(x, b)  # float64 parameters
    out32 = mp(x.float(), b.float(), dst_idx=dst, src_idx=src)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), mp(x, b, dst_idx=dst, src_idx=src), rtol=1e-5, atol=1e-5)
    from distgnn.equivariant import Dense, Tensor

    d, t = Dense(4).double(), Tensor().double()
    assert d(x.float()).dtype == torch.float32 and t(x.float(), x.float()).dtype == torch.float32


def test_errors_are_clear():
    pos, dst, src, x, b = system(1, 1, 1, n=5)
    mp = make_layer(x, b)
    adj = sparse_to_dense_indices(dst, src, pad_idx=5)
    with pytest.raises(ValueError, match=r"MessagePass: give exactly one neighbour list"):
        mp(x, b)
    with pytest.raises(ValueError, match=r"MessagePass: give exactly one neighbour list"):
        mp(x, b, adj_idx=adj, dst_idx=dst, src_idx=src)
    with pytest.raises(ValueError, match=r"a sparse neighbour list needs both src_idx and dst_idx"):
        mp(x, b, dst_idx=dst)
    with pytest.raises(IrrepsError, match=r"src_idx \(\d+,\) and dst_idx \(\d+,\) must have one equal shape"):
        mp(x, b, dst_idx=dst, src_idx=src[1:])
    with pytest.raises(ValueError, match=r"indices_are_sorted=True but dst_idx is not sorted"):
        mp(x, b.flip(0), dst_idx=dst.flip(0), src_idx=src.flip(0), indices_are_sorted=True)
    with pytest.raises(IndexError, match=r"src_idx entries must lie in \[0, N\] \(N=5 is padding\)"):
        mp(x, b, dst_idx=dst, src_idx=src + 3)
    with pytest.raises(IndexError, match=r"dst_idx entries must lie in \[0, num_segments\]"):
        mp(x, b, dst_idx=dst - 1, src_idx=src)
    with pytest.raises(IrrepsError, match=r"basis must be \[\.\.\., E, Pb, Db, K\] with one row per edge"):
        mp(x, b[1:], dst_idx=dst, src_idx=src)
    with pytest.raises(IrrepsError, match=r"basis must be \[\.\.\., N, M, Pb, Db, K\] matching adj_idx"):
        mp(x, b, adj_idx=adj)
    with pytest.raises(IrrepsError, match=r"adj_idx must be an integer \[\.\.\., N, M\] with N=5"):
        mp(x, b, adj_idx=adj[1:])
    with pytest.raises(IrrepsError, match=r"where must be a bool tensor shaped like adj_idx"):
        mp(x, torch.zeros(5, adj.shape[1], 1, 4, 4, dtype=DT), adj_idx=adj, where=(adj < 5).double())
    with pytest.raises(IrrepsError, match=r"weights with shape \(3, 1\) cannot be broadcast to the gathered inputs"):
        mp(x, b, torch.ones(3, 1, dtype=DT), dst_idx=dst, src_idx=src)
    with pytest.raises(IrrepsError, match=r"basis must have one row per edge of the graph"):
        mp(x, b[1:], graph=torch.stack([src, dst]))
    with pytest.raises(GraphError, match=r"the graph has 6 \(owned\) nodes but x has 5 rows"):
        mp(x, b, graph=Graph(torch.stack([src, dst]), 6))
    with pytest.raises(IrrepsError, match=r"MessagePass: inputs: axis -2 must have size \(L\+1\)\^2"):
        mp(x[:, :, :3], b, dst_idx=dst, src_idx=src)
    with pytest.raises(IrrepsError, match=r"MessagePass: inputs must be \[\.\.\., N, P, \(L\+1\)\^2, F\]"):
        mp(x[0], b, dst_idx=dst, src_idx=src)
    with pytest.raises(IrrepsError, match=r"Tensor: built for inputs"):
        mp(features(5, 2, 1, 3), b, dst_idx=dst, src_idx=src)
    with pytest.raises(IrrepsError, match=r"Tensor: the product of inputs with max degrees 1 and 1 has degree at most 2, got max_degree=3"):
        MessagePass(max_degree=3).double()(x, b, dst_idx=dst, src_idx=src)
