"""Conformance suite run for every registered layer (and its variants).

For each layer: the float64 dense reference of its formula, edge-permutation invariance and
node-relabelling equivariance, disjoint == each graph alone, mixed/batch == single per sample,
and partitioned == whole (outputs, input gradients, parameter gradients, batch-norm statistics)
on 2, 3 and 4 in-process parts — including a part with no edges and a part with no nodes — in
float32 and float64.
"""
from __future__ import annotations

import copy

import pytest
import torch

from distgnn.graph import GraphError, run_parts, split_graph
from distgnn.layers import REGISTRY
from tests.graphs import ASSIGNMENTS, TINY, TINY_PARAMS, E, dense, random_graph
from tests.layers.references import CASES

F_IN = 4
TOL = {torch.float64: dict(rtol=1e-9, atol=1e-10), torch.float32: dict(rtol=1e-4, atol=2e-5)}


def _case_params(modes=None):
    out = []
    for name, entry in REGISTRY.items():
        if modes is not None and not set(modes) & set(entry.modes):
            continue
        case = CASES[name]
        out.append(pytest.param(name, case.make, id=f"{name}"))
        for variant, make in case.variants.items():
            out.append(pytest.param(name, make, id=f"{name}-{variant}"))
    return out


def build(make, dtype=torch.float64, seed=0):
    """A materialised layer (lazy sizes resolved by one eval call) in training mode."""
    torch.manual_seed(seed)
    layer = make().to(dtype)
    layer.eval()
    with torch.no_grad():
        layer(torch.zeros(2, F_IN, dtype=dtype), E((0, 1)))
    layer.train()
    # move batch-norm running statistics away from their defaults so eval mode is not trivial
    with torch.no_grad():
        for name, buf in layer.named_buffers():
            if name.endswith("running_mean"):
                buf.uniform_(-0.5, 0.5)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return layer


def features(n, dtype=torch.float64, seed=1, batch=None):
    g = torch.Generator().manual_seed(seed)
    shape = (n, F_IN) if batch is None else (batch, n, F_IN)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


def assert_close(actual, expected, dtype, what=""):
    torch.testing.assert_close(actual, expected.to(actual.dtype), **TOL[dtype], msg=lambda m: f"{what}: {m}")


def test_every_registered_layer_has_a_reference():
    assert set(REGISTRY) == set(CASES), "add a Case to tests/layers/references.py for each registered layer"
    assert len(REGISTRY) >= 6


# -- dense reference -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("graph", TINY_PARAMS)
@pytest.mark.parametrize("name,make", _case_params())
def test_matches_dense_reference(name, make, graph, dtype):
    edge_index, n = TINY[graph]
    layer = build(make, dtype)
    x = features(n, dtype)
    out = layer(x, edge_index)
    ref_layer = copy.deepcopy(layer).double()
    expected = CASES[name].reference(ref_layer, x.double(), dense(edge_index, n))
    assert out.dtype == dtype
    assert_close(out, expected, dtype, f"{name} on {graph}")


# -- symmetries ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,make", _case_params())
def test_edge_permutation_invariance(name, make):
    edge_index, n = random_graph(seed=3)
    layer = build(make)
    x = features(n)
    perm = torch.randperm(edge_index.shape[1], generator=torch.Generator().manual_seed(5))
    assert_close(layer(x, edge_index[:, perm]), layer(x, edge_index), torch.float64)


@pytest.mark.parametrize("name,make", _case_params())
def test_node_relabelling_equivariance(name, make):
    edge_index, n = random_graph(seed=4)
    layer = build(make)
    x = features(n)
    p = torch.randperm(n, generator=torch.Generator().manual_seed(6))  # new node k = old node p[k]
    q = torch.empty_like(p)
    q[p] = torch.arange(n)
    out = layer(x, edge_index)
    assert_close(layer(x[p], q[edge_index]), out[p], torch.float64)


# -- modes -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,make", _case_params(["disjoint"]))
def test_disjoint_equals_each_graph_alone(name, make):
    (e1, n1), (e2, n2) = random_graph(seed=7), TINY["star"]
    layer = build(make).eval()  # batch norm: running statistics, so graphs are independent
    x1, x2 = features(n1, seed=8), features(n2, seed=9)
    both = layer(torch.cat([x1, x2]), torch.cat([e1, e2 + n1], 1))
    assert_close(both[:n1], layer(x1, e1), torch.float64, "first graph")
    assert_close(both[n1:], layer(x2, e2), torch.float64, "second graph")


@pytest.mark.parametrize("name,make", _case_params(["mixed"]))
def test_mixed_equals_single_per_sample(name, make):
    edge_index, n = random_graph(seed=10)
    layer = build(make).eval()
    x = features(n, seed=11, batch=3)  # (B, N, F)
    out = layer(x, edge_index)
    for b in range(3):
        assert_close(out[b], layer(x[b], edge_index), torch.float64, f"sample {b}")


@pytest.mark.parametrize("name,make", _case_params(["batch"]))
def test_batch_equals_single_per_sample_with_mask(name, make):
    layer = build(make).eval()
    n = 6
    graphs = [random_graph(n=n, e=12, seed=s, isolated=()) for s in (12, 13)]
    a = torch.stack([dense(ei, n) for ei, _ in graphs])  # (B, N, N)
    a[1, 2, 2] = 0.0
    x = features(n, seed=14, batch=2)
    mask = torch.ones(2, n, dtype=torch.bool)
    mask[1, 4:] = False  # the second sample has 4 real nodes
    out = layer(x, a, mask=mask)
    assert_close(out[0], layer(x[0], a[0]), torch.float64, "sample 0")
    assert_close(out[1, :4], layer(x[1, :4], a[1, :4, :4]), torch.float64, "sample 1 (real nodes)")
    assert torch.count_nonzero(out[1, 4:]) == 0, "masked nodes must output zero"


def test_dense_adjacency_equals_edge_index():
    edge_index, n = random_graph(seed=15)
    edge_index = torch.unique(edge_index, dim=1)  # dense weights of 1 = one edge each
    for name, make in [(p.values[0], p.values[1]) for p in _case_params()]:
        layer = build(make).eval()
        x = features(n)
        assert_close(layer(x, dense(edge_index, n)), layer(x, edge_index), torch.float64, name)


# -- partitioned == whole --------------------------------------------------------------------------
def _loss_weights(n, channels, dtype):
    return torch.randn(n, channels, generator=torch.Generator().manual_seed(21), dtype=torch.float64).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("split", list(ASSIGNMENTS))
@pytest.mark.parametrize("name,make", _case_params())
def test_partitioned_equals_whole(name, make, split, dtype):
    edge_index, n = random_graph(seed=16)
    snapshot = build(make, dtype)  # training mode, dropout off in every case
    layer = copy.deepcopy(snapshot)
    x = features(n, dtype).requires_grad_()
    params = [p for _, p in sorted(layer.named_parameters())]

    out = layer(x, edge_index)
    r = _loss_weights(n, out.shape[-1], dtype)
    loss = (out * r).sum()
    grads = torch.autograd.grad(loss, [x] + params)

    parts = split_graph(edge_index, ASSIGNMENTS[split], n, num_parts=int(ASSIGNMENTS[split].max()) + 1)
    replicas = [copy.deepcopy(snapshot) for _ in parts]
    outs = run_parts(parts, lambda p, g: replicas[p](x[g.node_ids], g))
    part_out = torch.empty_like(out)
    for g, o in zip(parts, outs):
        part_out[g.node_ids] = o.detach()
    assert_close(part_out, out, dtype, "outputs")

    part_loss = sum((o * r[g.node_ids]).sum() for g, o in zip(parts, outs))
    rep_params = [[p for _, p in sorted(rep.named_parameters())] for rep in replicas]
    flat = [p for ps in rep_params for p in ps]
    part_grads = torch.autograd.grad(part_loss, [x] + flat, allow_unused=True)
    assert_close(part_grads[0], grads[0], dtype, "input gradient")
    k = len(params)
    for i, (pname, _) in enumerate(sorted(layer.named_parameters())):
        summed = sum(
            (part_grads[1 + r_ * k + i] for r_ in range(len(parts)) if part_grads[1 + r_ * k + i] is not None),
            torch.zeros_like(params[i]),
        )  # gradient synchronisation = sum over replicas
        assert_close(summed, grads[1 + i], dtype, f"gradient of {pname}")
    for bname, buf in layer.named_buffers():
        for rep in replicas:
            assert_close(dict(rep.named_buffers())[bname], buf, dtype, f"buffer {bname}")


# -- errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(REGISTRY))
def test_unsupported_mode_is_a_clear_error(name):
    entry = REGISTRY[name]
    layer = build(CASES[name].make)
    if "batch" not in entry.modes:
        with pytest.raises(GraphError, match=f"{name} does not support batch mode"):
            layer(features(3, batch=2), torch.ones(2, 3, 3, dtype=torch.float64))
    with pytest.raises(GraphError, match=r"x must be \[N, F\] or \[B, N, F\]"):
        layer(torch.zeros(3, dtype=torch.float64), E((0, 1)))
    with pytest.raises(GraphError, match="refers to node 7 but the graph has 3 nodes"):
        layer(features(3), E((0, 7)))


@pytest.mark.parametrize("name", list(REGISTRY))
def test_bad_channels_is_a_clear_error(name):
    with pytest.raises(ValueError, match=rf"{name}: channels must be an int >= 1, got -2"):
        REGISTRY[name].cls(-2)


def test_wrong_edge_weight_length_is_a_clear_error():
    layer = build(CASES["GCNConv"].make)
    with pytest.raises(GraphError, match=r"edge_weight must be \[E\] with E=2"):
        layer(features(3), E((0, 1), (1, 2)), edge_weight=torch.ones(3, dtype=torch.float64))
