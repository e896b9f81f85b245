"""XENetConv, XENetConvBatch, GINConvBatch and CensNetConv: behaviour the conformance harness does
not cover (argument errors, the reverse-edge convention, batch-norm statistics over valid nodes,
explicit sizes, dense edge outputs, the undirected-edge convention of CensNet)."""
from __future__ import annotations

import copy

import pytest
import torch

from distgnn.graph import GraphError, run_parts, split_graph
from distgnn.layers import preprocessing as P
from distgnn.layers.censnet import CensNetConv
from distgnn.layers.gin_batch import GINConvBatch
from distgnn.layers import XENetConv, XENetConvBatch, XENetDenseConv
from tests.graphs import ASSIGNMENTS, TINY, E, dense, random_graph
from tests.layers.references import gcn_dense, mlp_dense
from tests.layers.references_group_c import incidence, ref_censnet, ref_xenet

D = torch.float64


def _randn(*shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=D)


# -- argument errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [XENetConv, XENetConvBatch])
def test_xenet_argument_errors(cls):
    name = cls.__name__
    with pytest.raises(ValueError, match=rf"{name}: aggregate must be 'sum' or 'mean', got 'max'"):
        cls(4, 3, 2, aggregate="max")
    with pytest.raises(ValueError, match=rf"{name}: stack_channels must be an int or a non-empty list"):
        cls([], 3, 2)
    with pytest.raises(ValueError, match=rf"{name}: stack_channels entries must be an int >= 1, got 0"):
        cls([4, 0], 3, 2)
    with pytest.raises(ValueError, match=rf"{name}: node_channels must be an int >= 1, got -1"):
        cls(4, -1, 2)
    with pytest.raises(ValueError, match=rf"{name}: edge_channels must be an int >= 1, got 0"):
        cls(4, 3, 0)
    with pytest.raises(ValueError, match=rf"{name}: node_activation: unknown activation 'nope'"):
        cls(4, 3, 2, node_activation="nope")


def test_missing_edge_features_are_a_clear_error():
    x, ei = torch.zeros(2, 3), E((0, 1))
    with pytest.raises(GraphError, match=r"XENetConv: edge features e are required"):
        XENetConv(4, 3, 2)(x, ei, None)
    with pytest.raises(GraphError, match=r"CensNetConv: edge features e are required"):
        CensNetConv(3, 2)(x, ei, None)
    with pytest.raises(GraphError, match=r"XENetConvBatch: edge features e \[B, N, N, S\] are required"):
        XENetConvBatch(4, 3, 2)(torch.zeros(1, 2, 3), torch.ones(1, 2, 2), None)
    with pytest.raises(GraphError, match=r"XENetConv: e must be \[E, S\] with E=1"):
        XENetConv(4, 3, 2)(x, ei, torch.zeros(2, 3))


def test_other_argument_errors():
    with pytest.raises(ValueError, match=r"GINConvBatch: channels must be an int >= 1, got -2"):
        GINConvBatch(-2)
    with pytest.raises(ValueError, match=r"GINConvBatch: mlp_hidden entries must be an int >= 1, got 0"):
        GINConvBatch(3, mlp_hidden=[0])
    with pytest.raises(ValueError, match=r"CensNetConv: node_channels must be an int >= 1, got 0"):
        CensNetConv(0, 3)
    with pytest.raises(ValueError, match=r"CensNetConv: edge_channels must be an int >= 1, got -1"):
        CensNetConv(3, -1)
    with pytest.raises(ValueError, match=r"CensNetConv: bias_initializer: unknown initializer 'nope'"):
        CensNetConv(3, 2, bias_initializer="nope")
    with pytest.raises(GraphError, match="GINConvBatch does not support single mode"):
        GINConvBatch(3)(torch.zeros(2, 3), E((0, 1)))
    with pytest.raises(GraphError, match="CensNetConv does not support mixed mode"):
        CensNetConv(3, 2)(torch.zeros(2, 2, 3), E((0, 1)), torch.zeros(1, 3))


def test_dense_alias():
    assert XENetDenseConv is XENetConvBatch


# -- XENet: the reverse edge --------------------------------------------------------------------------
def _xenet(cls=XENetConv, **kw):
    torch.manual_seed(0)
    layer = cls([5, 4], 3, 2, bias_initializer="random_normal", **kw).double()
    with torch.no_grad():  # PReLU slopes away from their 0 initialisation
        layer(torch.zeros(2, 3, dtype=D), E((0, 1), (1, 0)), torch.zeros(2, 2, dtype=D))
        layer.stack_act.alpha.uniform_(0.1, 0.5)
    return layer


def test_absent_reverse_edge_reads_zeros():
    layer = _xenet()
    x, e = _randn(3, 3, seed=1), _randn(2, 2, seed=2)
    # 0 -> 1 has no reverse edge; adding 1 -> 0 with zero features must not change its stack
    _, eo = layer(x, E((0, 1), (2, 1)), e)
    _, eo_zero = layer(x, E((0, 1), (2, 1), (1, 0)), torch.cat([e, torch.zeros(1, 2, dtype=D)]))
    _, eo_other = layer(x, E((0, 1), (2, 1), (1, 0)), torch.cat([e, torch.ones(1, 2, dtype=D)]))
    torch.testing.assert_close(eo_zero[:2], eo)
    assert not torch.allclose(eo_other[0], eo[0])  # a non-zero reverse edge is read
    torch.testing.assert_close(eo_other[1], eo[1])  # 2 -> 1 has no reverse in either graph


def test_parallel_reverse_edges_are_averaged_in_any_order():
    layer = _xenet()
    x = _randn(2, 3, seed=3)
    r1, r2, e01 = _randn(1, 2, seed=4), _randn(1, 2, seed=5), _randn(1, 2, seed=6)
    _, eo = layer(x, E((0, 1), (1, 0), (1, 0)), torch.cat([e01, r1, r2]))
    _, eo_swapped = layer(x, E((1, 0), (1, 0), (0, 1)), torch.cat([r2, r1, e01]))
    _, eo_mean = layer(x, E((0, 1), (1, 0)), torch.cat([e01, (r1 + r2) / 2]))
    torch.testing.assert_close(eo[0], eo_mean[0])
    torch.testing.assert_close(eo_swapped[2], eo[0])


@pytest.mark.parametrize("kw", [{}, {"attention": False, "aggregate": "mean"}], ids=["attention", "mean"])
def test_xenet_with_prelu_slopes_matches_reference(kw):
    layer = _xenet(**kw, node_activation="prelu")
    with torch.no_grad():
        layer.node_activation.alpha.uniform_(0.1, 0.5)
    ei, n = random_graph(seed=8)
    x, e = _randn(n, 3, seed=9), _randn(ei.shape[1], 2, seed=10)
    out = layer(x, ei, e)
    ref = ref_xenet(layer, x, dense(ei, n), edge_index=ei, e=e)
    for got, want in zip(out, ref):
        torch.testing.assert_close(got, want)


def test_reverse_edges_across_parts_with_halo_sources():
    """Every edge has its reverse on another part (a bipartite split of a symmetric graph)."""
    ei, n = random_graph(seed=11)
    ei = torch.cat([ei, ei.flip(0)], 1)
    layer = _xenet(aggregate="mean")
    x, e = _randn(n, 3, seed=12), _randn(ei.shape[1], 2, seed=13)
    out, eo = layer(x, ei, e)
    parts = split_graph(ei, ASSIGNMENTS["2-parts"], n)
    reps = [copy.deepcopy(layer) for _ in parts]
    res = run_parts(parts, lambda p, g: reps[p](x[g.node_ids], g, e[g.edge_ids]))
    for g, (o, eo_p) in zip(parts, res):
        torch.testing.assert_close(o, out[g.node_ids])
        torch.testing.assert_close(eo_p, eo[g.edge_ids])


def test_xenet_dense_input_gives_dense_edge_outputs():
    layer = _xenet()
    ei, n = random_graph(seed=14)
    ei = torch.unique(ei, dim=1)
    x, e = _randn(2, n, 3, seed=15), _randn(ei.shape[1], 2, seed=16)
    e_dense = torch.zeros(n, n, 2, dtype=D)
    e_dense[ei[1], ei[0]] = e
    out, eo = layer(x, ei, e)  # mixed mode: (B, N, C_n), (B, E, C_e)
    dout, deo = layer(x, dense(ei, n), e_dense)
    assert eo.shape == (2, ei.shape[1], 2) and deo.shape == (2, n, n, 2)
    torch.testing.assert_close(dout, out)
    torch.testing.assert_close(deo[:, ei[1], ei[0]], eo)
    assert torch.count_nonzero(deo.sum(-1).sum(0) * (dense(ei, n) == 0)) == 0


def test_xenet_batch_equals_sparse_layer_and_single_dense_graph():
    sparse = _xenet()
    batch = XENetConvBatch([5, 4], 3, 2).double()
    batch.load_state_dict(sparse.state_dict())
    ei, n = random_graph(n=6, e=12, seed=17, isolated=())
    ei = torch.unique(ei, dim=1)
    a = dense(ei, n)
    x, e = _randn(n, 3, seed=18), _randn(n, n, 2, seed=19)
    out, eo = sparse(x, ei, e[ei[1], ei[0]])
    bout, beo = batch(x[None], a[None], e[None])
    sout, seo = batch(x, a, e)  # a single dense graph is a batch of one
    torch.testing.assert_close(bout[0], out)
    torch.testing.assert_close(beo[0, ei[1], ei[0]], eo)
    torch.testing.assert_close(sout, bout[0])
    torch.testing.assert_close(seo, beo[0])


# -- GINConvBatch -----------------------------------------------------------------------------------------
def test_gin_batch_norm_statistics_over_valid_nodes():
    torch.manual_seed(0)
    layer = GINConvBatch(4, mlp_hidden=[5], epsilon=0.2, bias_initializer="random_normal").double()
    n = 5
    a = torch.stack([dense(random_graph(n=n, e=9, seed=s, isolated=())[0], n) for s in (20, 21)])
    a[1] *= 0.5  # weighted: A X uses the values
    x = _randn(2, n, 3, seed=22)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    x_pad = x.clone()
    x_pad[1, 3:] = 100.0  # padding must not leak into the statistics
    out = layer(x_pad, a, mask=mask)
    am = a.clone()
    am[1, 3:, :] = 0
    am[1, :, 3:] = 0
    h = (1.2 * x + am @ x)[mask]  # (8, F) the valid nodes of the batch
    ref_layer = copy.deepcopy(layer)
    expected = mlp_dense(ref_layer.mlp, h, training=True)
    torch.testing.assert_close(out[mask], expected)
    assert torch.count_nonzero(out[~mask]) == 0
    bn = layer.mlp.norms[0]
    hidden = torch.relu(h @ layer.mlp.dense[0].kernel + layer.mlp.dense[0].bias)
    torch.testing.assert_close(bn.running_mean, 0.01 * hidden.mean(0))  # from 0 with momentum 0.01


# -- CensNet ------------------------------------------------------------------------------------------------
def test_censnet_preprocess_follows_the_convention():
    ei = E((0, 1), (1, 2), (2, 2), (2, 0), (0, 1))  # a loop at 2 and two parallel edges {0, 1}
    lap, line_lap, t = CensNetConv.preprocess(ei, 3)
    assert t.tolist() == incidence(ei, 3).tolist()
    assert t[:, 2].tolist() == [0, 0, 2]
    torch.testing.assert_close(lap, gcn_dense(t @ t.t()))
    torch.testing.assert_close(line_lap, gcn_dense(t.t() @ t - 2 * torch.eye(5, dtype=D)))
    a = dense(ei, 3)
    a[1, 0] = 1.0  # dense: each nonzero is one edge (the duplicate collapses)
    lap_d, _, t_d = CensNetConv.preprocess(a)
    assert t_d.shape == (3, 4)
    # a simple graph given once per edge: exactly Spektral's preprocessing
    simple = E((0, 1), (0, 3), (1, 2))
    lap_s, line_s, t_s = CensNetConv.preprocess(simple, 4)
    torch.testing.assert_close(t_s, P.incidence_matrix(simple, num_nodes=4).to(D))
    torch.testing.assert_close(line_s, P.gcn_filter(P.line_graph(t_s)))
    torch.testing.assert_close(lap_s, P.gcn_filter(dense(torch.cat([simple, simple.flip(0)], 1), 4)))


def test_censnet_dense_and_batch_edge_outputs():
    torch.manual_seed(0)
    layer = CensNetConv(3, 2, activation="tanh", bias_initializer="random_normal").double()
    ei, n = random_graph(n=6, e=10, seed=23, isolated=())
    ei = torch.unique(ei, dim=1)
    x, e = _randn(n, 4, seed=24), _randn(ei.shape[1], 3, seed=25)
    e_dense = torch.zeros(n, n, 3, dtype=D)
    e_dense[ei[1], ei[0]] = e
    out, eo = layer(x, ei, e)
    dout, deo = layer(x, dense(ei, n), e_dense)
    bout, beo = layer(x[None], dense(ei, n)[None], e_dense[None])
    torch.testing.assert_close(dout, out)
    torch.testing.assert_close(deo[ei[1], ei[0]], eo)
    torch.testing.assert_close(bout[0], out)
    torch.testing.assert_close(beo[0], deo)
    assert deo.shape == (n, n, 2) and torch.count_nonzero(deo.sum(-1) * (dense(ei, n) == 0)) == 0


@pytest.mark.parametrize("graph", ["self-loop", "multi-edge", "star"])
def test_censnet_nonzero_slopes_on_loops_and_parallel_edges(graph):
    """Random ``p_v``, ``p_e`` of both signs on the graphs that exercise every special case."""
    torch.manual_seed(1)
    layer = CensNetConv(3, 2, bias_initializer="random_normal").double()
    ei, n = TINY[graph]
    x, e = _randn(n, 4, seed=26), _randn(ei.shape[1], 3, seed=27)
    out = layer(x, ei, e)
    for got, want in zip(out, ref_censnet(layer, x, dense(ei, n), edge_index=ei, e=e)):
        torch.testing.assert_close(got, want)


# -- explicit sizes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: XENetConv([5, 6], 4, 3, **kw),
        lambda **kw: XENetConvBatch(5, 4, 3, attention=False, **kw),
        lambda **kw: CensNetConv(5, 3, **kw),
    ],
    ids=["XENetConv", "XENetConvBatch", "CensNetConv"],
)
def test_explicit_sizes_equal_lazy(make):
    lazy = make()
    if isinstance(lazy, XENetConvBatch):
        lazy(torch.zeros(1, 2, 4), torch.ones(1, 2, 2), torch.zeros(1, 2, 2, 2))
    else:
        lazy(torch.zeros(2, 4), E((0, 1)), torch.zeros(1, 2))
    eager = make(in_channels=4, in_edge_channels=2)
    assert not any(isinstance(p, torch.nn.parameter.UninitializedParameter) for p in eager.parameters())
    assert {k: v.shape for k, v in eager.state_dict().items()} == {k: v.shape for k, v in lazy.state_dict().items()}
    assert "in_channels=4" in repr(eager)


def test_gin_batch_explicit_size_equals_lazy():
    lazy = GINConvBatch(5, mlp_hidden=[6])
    lazy(torch.zeros(1, 2, 4), torch.ones(1, 2, 2))
    eager = GINConvBatch(5, mlp_hidden=[6], in_channels=4)
    assert {k: v.shape for k, v in eager.state_dict().items()} == {k: v.shape for k, v in lazy.state_dict().items()}


def test_calling_without_edge_features_is_a_clear_error():
    with pytest.raises(GraphError, match=r"XENetConv: edge features e are required"):
        XENetConv(4, 3, 2)(torch.zeros(2, 3), E((0, 1)))
    with pytest.raises(GraphError, match=r"CensNetConv: edge features e are required"):
        CensNetConv(3, 2)(torch.zeros(2, 3), E((0, 1)))
