"""Conformance suite run for every registered layer (and its variants).

For each layer: the float64 dense reference of its formula, edge-permutation invariance and
node-relabelling equivariance, disjoint == each graph alone, mixed/batch == single per sample,
and partitioned == whole (outputs, input gradients, parameter gradients, batch-norm statistics)
on 2, 3 and 4 in-process parts — including a part with no edges and a part with no nodes — in
float32 and float64. Layers with edge features get them; layers returning ``(X', E')`` have both
outputs checked. Second derivatives: gradgradcheck w.r.t. inputs and parameters on a graph with
duplicate, unsorted edges and a self-loop, and partitioned == whole for the gradient of squared
first-order gradients (batch norm in training mode included).
"""
from __future__ import annotations

import copy
import inspect

import pytest
import torch

from distgnn.graph import GraphError, run_parts, split_graph
from distgnn.layers.registry import convolutions
from tests.graphs import ASSIGNMENTS, TINY, TINY_PARAMS, E, dense, random_graph
from tests.layers.references import CASES

REGISTRY = convolutions()  # the conv layers: what this suite runs

F_IN = 4
TOL = {torch.float64: dict(rtol=1e-9, atol=1e-10), torch.float32: dict(rtol=1e-4, atol=2e-5)}


def _case_params(modes=None):
    out = []
    for name, entry in REGISTRY.items():
        if modes == ["batch-only"]:
            if "single" in entry.modes:
                continue
        elif modes is not None and not set(modes) & set(entry.modes):
            continue
        case = CASES[name]
        out.append(pytest.param(name, case.make, id=f"{name}"))
        for variant, make in case.variants.items():
            out.append(pytest.param(name, make, id=f"{name}-{variant}"))
    return out


def edge_features(name, num_edges, dtype=torch.float64, seed=2, shape=None):
    """Edge features for layers that take them (``None`` otherwise)."""
    s = CASES[name].edge_dim
    if not s:
        return None
    g = torch.Generator().manual_seed(seed)
    shape = (num_edges, s) if shape is None else tuple(shape) + (s,)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


def call(name, layer, x, a, e=None, **kw):
    """Run a layer; returns ``(node_output, edge_output_or_None)``."""
    if CASES[name].edge_dim:
        kw["e"] = e
    out = layer(x, a, **kw)
    if CASES[name].returns_edges:
        return out[0], out[1]
    return out, None


def build(name, make, dtype=torch.float64, seed=0):
    """A materialised layer (lazy sizes resolved by one eval call) in training mode."""
    torch.manual_seed(seed)
    layer = make().to(dtype)
    layer.eval()
    with torch.no_grad():
        if "single" in REGISTRY[name].modes:
            ei = E((0, 1), (1, 0))
            call(name, layer, torch.zeros(2, F_IN, dtype=dtype), ei, edge_features(name, 2, dtype))
        else:  # batch-only layers
            a = torch.ones(1, 2, 2, dtype=dtype)
            call(name, layer, torch.zeros(1, 2, F_IN, dtype=dtype), a, edge_features(name, 0, dtype, shape=(1, 2, 2)))
    layer.train()
    # move biases and batch-norm statistics away from their defaults: a misplaced bias, or eval
    # mode using the wrong statistics, must show
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed + 100)
        for pname, p in layer.named_parameters():
            if pname.split(".")[-1] == "bias" or pname.endswith("bias"):
                p.copy_(torch.rand(p.shape, generator=g, dtype=torch.float64).to(p.dtype) - 0.5)
        for bname, buf in layer.named_buffers():
            if bname.endswith("running_mean"):
                buf.uniform_(-0.5, 0.5)
            elif bname.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return layer


def features(n, dtype=torch.float64, seed=1, batch=None):
    g = torch.Generator().manual_seed(seed)
    shape = (n, F_IN) if batch is None else (batch, n, F_IN)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


def assert_close(actual, expected, dtype, what=""):
    if isinstance(expected, tuple):
        for i, (a_, e_) in enumerate(zip(actual, expected)):
            assert_close(a_, e_, dtype, f"{what} output {i}")
        return
    torch.testing.assert_close(actual, expected.to(actual.dtype), **TOL[dtype], msg=lambda m: f"{what}: {m}")


def test_every_registered_layer_has_a_reference():
    assert set(REGISTRY) == set(CASES), "add a Case to tests/layers/references*.py for each registered layer"
    assert len(REGISTRY) >= 6


# -- dense reference -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("graph", TINY_PARAMS)
@pytest.mark.parametrize("name,make", _case_params(["single"]))
def test_matches_dense_reference(name, make, graph, dtype):
    edge_index, n = TINY[graph]
    layer = build(name, make, dtype)
    x, e = features(n, dtype), edge_features(name, edge_index.shape[1], dtype)
    if CASES[name].edge_dim:
        out = layer(x, edge_index, e=e)
    else:
        out = layer(x, edge_index)
    ref_layer = copy.deepcopy(layer).double()
    expected = CASES[name].reference(
        ref_layer, x.double(), dense(edge_index, n), edge_index=edge_index, e=None if e is None else e.double()
    )
    assert_close(out, expected, dtype, f"{name} on {graph}")


# -- symmetries ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,make", _case_params(["single"]))
def test_edge_permutation_invariance(name, make):
    edge_index, n = random_graph(seed=3)
    layer = build(name, make)
    x, e = features(n), edge_features(name, edge_index.shape[1])
    perm = torch.randperm(edge_index.shape[1], generator=torch.Generator().manual_seed(5))
    out, eout = call(name, layer, x, edge_index, e)
    pout, peout = call(name, layer, x, edge_index[:, perm], None if e is None else e[perm])
    assert_close(pout, out, torch.float64, "nodes")
    if eout is not None:
        assert_close(peout, eout[perm], torch.float64, "edges")


@pytest.mark.parametrize("name,make", _case_params(["single"]))
def test_node_relabelling_equivariance(name, make):
    edge_index, n = random_graph(seed=4)
    layer = build(name, make)
    x, e = features(n), edge_features(name, edge_index.shape[1])
    p = torch.randperm(n, generator=torch.Generator().manual_seed(6))  # new node k = old node p[k]
    q = torch.empty_like(p)
    q[p] = torch.arange(n)
    out, eout = call(name, layer, x, edge_index, e)
    rout, reout = call(name, layer, x[p], q[edge_index], e)
    assert_close(rout, out[p], torch.float64, "nodes")
    if eout is not None:
        assert_close(reout, eout, torch.float64, "edges")


# -- modes -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,make", _case_params(["disjoint"]))
def test_disjoint_equals_each_graph_alone(name, make):
    (e1, n1), (e2, n2) = random_graph(seed=7), TINY["star"]
    layer = build(name, make).eval()  # batch norm: running statistics, so graphs are independent
    x1, x2 = features(n1, seed=8), features(n2, seed=9)
    f1, f2 = edge_features(name, e1.shape[1], seed=3), edge_features(name, e2.shape[1], seed=4)
    both, eboth = call(name, layer, torch.cat([x1, x2]), torch.cat([e1, e2 + n1], 1), None if f1 is None else torch.cat([f1, f2]))
    o1, eo1 = call(name, layer, x1, e1, f1)
    o2, eo2 = call(name, layer, x2, e2, f2)
    assert_close(both[:n1], o1, torch.float64, "first graph")
    assert_close(both[n1:], o2, torch.float64, "second graph")
    if eboth is not None:
        assert_close(eboth, torch.cat([eo1, eo2]), torch.float64, "edges")


@pytest.mark.parametrize("name,make", _case_params(["mixed"]))
def test_mixed_equals_single_per_sample(name, make):
    edge_index, n = random_graph(seed=10)
    layer = build(name, make).eval()
    x = features(n, seed=11, batch=3)  # (B, N, F)
    e = edge_features(name, edge_index.shape[1])  # shared by the samples
    out, eout = call(name, layer, x, edge_index, e)
    for b in range(3):
        ob, eob = call(name, layer, x[b], edge_index, e)
        assert_close(out[b], ob, torch.float64, f"sample {b}")
        if eout is not None:
            assert_close(eout[b], eob, torch.float64, f"edges of sample {b}")


@pytest.mark.parametrize("name,make", _case_params(["batch"]))
def test_batch_equals_single_per_sample_with_mask(name, make):
    layer = build(name, make).eval()
    n = 6
    graphs = [random_graph(n=n, e=12, seed=s, isolated=()) for s in (12, 13)]
    a = torch.stack([dense(ei, n) for ei, _ in graphs])  # (B, N, N)
    a[1, 2, 2] = 0.0
    x = features(n, seed=14, batch=2)
    e = edge_features(name, 0, shape=(2, n, n))
    mask = torch.ones(2, n, dtype=torch.bool)
    mask[1, 4:] = False  # the second sample has 4 real nodes
    out, eout = call(name, layer, x, a, e, mask=mask)
    o0, eo0 = call(name, layer, x[0], a[0], None if e is None else e[0])
    o1, eo1 = call(name, layer, x[1, :4], a[1, :4, :4], None if e is None else e[1, :4, :4])
    assert_close(out[0], o0, torch.float64, "sample 0")
    assert_close(out[1, :4], o1, torch.float64, "sample 1 (real nodes)")
    assert torch.count_nonzero(out[1, 4:]) == 0, "masked nodes must output zero"
    if eout is not None:
        assert_close(eout[0], eo0, torch.float64, "edges of sample 0")
        assert_close(eout[1, :4, :4], eo1, torch.float64, "edges of sample 1")


@pytest.mark.parametrize("name,make", _case_params(["batch-only"]))
def test_batch_only_layer_matches_reference(name, make):
    """Layers that only take dense batches: each sample against the dense reference."""
    layer = build(name, make).eval()
    n = 6
    a = torch.stack([dense(random_graph(n=n, e=12, seed=s, isolated=())[0], n) for s in (17, 18)])
    x = features(n, seed=19, batch=2)
    e = edge_features(name, 0, shape=(2, n, n))
    mask = torch.ones(2, n, dtype=torch.bool)
    mask[1, 4:] = False
    out, eout = call(name, layer, x, a, e, mask=mask)
    ref_layer = copy.deepcopy(layer)
    for b, m in ((0, n), (1, 4)):
        eb = None if e is None else e[b, :m, :m]
        expected = CASES[name].reference(ref_layer, x[b, :m], a[b, :m, :m], edge_index=None, e=eb)
        got = (out[b, :m], eout[b, :m, :m]) if eout is not None else out[b, :m]
        assert_close(got, expected, torch.float64, f"sample {b}")
    assert torch.count_nonzero(out[1, 4:]) == 0, "masked nodes must output zero"


@pytest.mark.parametrize("name,make", _case_params(["single"]))
def test_dense_adjacency_equals_edge_index(name, make):
    edge_index, n = random_graph(seed=15)
    edge_index = torch.unique(edge_index, dim=1)  # dense weights of 1 = one edge each
    layer = build(name, make).eval()
    x = features(n)
    e = edge_features(name, edge_index.shape[1])
    e_dense = None
    if e is not None:
        e_dense = torch.zeros(n, n, e.shape[1], dtype=e.dtype)
        e_dense[edge_index[1], edge_index[0]] = e
    out, eout = call(name, layer, x, dense(edge_index, n), e_dense)
    ref, eref = call(name, layer, x, edge_index, e)
    assert_close(out, ref, torch.float64, "nodes")


# -- partitioned == whole --------------------------------------------------------------------------
def _weights(shape, dtype, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("split", list(ASSIGNMENTS))
@pytest.mark.parametrize("name,make", _case_params(["single"]))
def test_partitioned_equals_whole(name, make, split, dtype):
    edge_index, n = random_graph(seed=16)
    snapshot = build(name, make, dtype)  # training mode, dropout off in every case
    layer = copy.deepcopy(snapshot)
    x = features(n, dtype).requires_grad_()
    e = edge_features(name, edge_index.shape[1], dtype)
    if e is not None:
        e.requires_grad_()
    leaves = [x] + ([e] if e is not None else [])
    params = [p for _, p in sorted(layer.named_parameters())]

    out, eout = call(name, layer, x, edge_index, e)
    r = _weights(out.shape, dtype, 21)
    loss = (out * r).sum()
    if eout is not None:
        re_ = _weights(eout.shape, dtype, 22)
        loss = loss + (eout * re_).sum()
    grads = torch.autograd.grad(loss, leaves + params, allow_unused=True)

    assignment = ASSIGNMENTS[split]
    parts = split_graph(edge_index, assignment, n, num_parts=int(assignment.max()) + 1)
    replicas = [copy.deepcopy(snapshot) for _ in parts]
    res = run_parts(parts, lambda p, g: call(name, replicas[p], x[g.node_ids], g, None if e is None else e[g.edge_ids]))
    part_out = torch.empty_like(out)
    for g, (o, _) in zip(parts, res):
        part_out[g.node_ids] = o.detach()
    assert_close(part_out, out, dtype, "outputs")
    part_loss = sum((o * r[g.node_ids]).sum() for g, (o, _) in zip(parts, res))
    if eout is not None:
        part_eout = torch.empty_like(eout)
        for g, (_, eo) in zip(parts, res):
            part_eout[g.edge_ids] = eo.detach()
        assert_close(part_eout, eout, dtype, "edge outputs")
        part_loss = part_loss + sum((eo * re_[g.edge_ids]).sum() for g, (_, eo) in zip(parts, res))

    rep_params = [[p for _, p in sorted(rep.named_parameters())] for rep in replicas]
    flat = [p for ps in rep_params for p in ps]
    part_grads = torch.autograd.grad(part_loss, leaves + flat, allow_unused=True)
    for i, leaf in enumerate(["x", "e"][: len(leaves)]):
        assert_close(part_grads[i], grads[i], dtype, f"gradient of {leaf}")
    k, nl = len(params), len(leaves)
    for i, (pname, _) in enumerate(sorted(layer.named_parameters())):
        per_rep = [part_grads[nl + r_ * k + i] for r_ in range(len(parts))]
        summed = sum((gr for gr in per_rep if gr is not None), torch.zeros_like(params[i]))
        expected = grads[nl + i] if grads[nl + i] is not None else torch.zeros_like(params[i])
        assert_close(summed, expected, dtype, f"gradient of {pname}")  # gradient sync = sum over replicas
    for bname, buf in layer.named_buffers():
        for rep in replicas:
            assert_close(dict(rep.named_buffers())[bname], buf, dtype, f"buffer {bname}")


# -- errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(REGISTRY))
def test_unsupported_mode_is_a_clear_error(name):
    entry = REGISTRY[name]
    layer = build(name, CASES[name].make)
    if "batch" not in entry.modes:
        with pytest.raises(GraphError, match=f"{name} does not support batch mode"):
            call(name, layer, features(3, batch=2), torch.ones(2, 3, 3, dtype=torch.float64), edge_features(name, 0, shape=(2, 3, 3)))
    if "single" in entry.modes:
        with pytest.raises(GraphError, match=r"x must be \[N, F\] or \[B, N, F\]"):
            call(name, layer, torch.zeros(3, dtype=torch.float64), E((0, 1)), edge_features(name, 1))
        with pytest.raises(GraphError, match="refers to node 7 but the graph has 3 nodes"):
            call(name, layer, features(3), E((0, 7)), edge_features(name, 1))


def test_wrong_edge_weight_length_is_a_clear_error():
    layer = build("GCNConv", CASES["GCNConv"].make)
    with pytest.raises(GraphError, match=r"edge_weight must be \[E\] with E=2"):
        layer(features(3), E((0, 1), (1, 2)), edge_weight=torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("name,make", [p for p in _case_params(["mixed"]) if "single" in REGISTRY[p.values[0]].modes])
def test_partitioned_equals_whole_in_mixed_mode(name, make):
    """Mixed mode (one graph, B samples) on 3 parts, training mode: outputs and input gradients."""
    edge_index, n = random_graph(seed=23)
    snapshot = build(name, make)
    layer = copy.deepcopy(snapshot)
    x = features(n, seed=24, batch=3).requires_grad_()  # (B, N, F)
    e = edge_features(name, edge_index.shape[1])
    out, eout = call(name, layer, x, edge_index, e)
    r = _weights(out.shape, torch.float64, 25)
    (gx,) = torch.autograd.grad((out * r).sum(), [x])

    parts = split_graph(edge_index, ASSIGNMENTS["3-parts"], n)
    replicas = [copy.deepcopy(snapshot) for _ in parts]
    res = run_parts(parts, lambda p, g: call(name, replicas[p], x[:, g.node_ids], g, None if e is None else e[g.edge_ids]))
    part_out = torch.empty_like(out)
    for g, (o, _) in zip(parts, res):
        part_out[:, g.node_ids] = o.detach()
    assert_close(part_out, out, torch.float64, "outputs")
    (pgx,) = torch.autograd.grad(sum((o * r[:, g.node_ids]).sum() for g, (o, _) in zip(parts, res)), [x])
    assert_close(pgx, gx, torch.float64, "input gradient")


# -- second derivatives ------------------------------------------------------------------------------
def _second_order_graph():
    """7 nodes, 14 edges in random (unsorted) order, with a self-loop, a duplicated edge and an
    isolated node: small enough for gradgradcheck, hard enough to catch a merged duplicate."""
    edge_index, n = random_graph(n=7, e=12, seed=31, isolated=(6,))
    assert edge_index.shape[1] > torch.unique(edge_index, dim=1).shape[1], "needs a duplicate edge"
    assert bool((edge_index[0] == edge_index[1]).any()), "needs a self-loop"
    return edge_index, n


def _takes_edge_weight(name) -> bool:
    return "edge_weight" in inspect.signature(REGISTRY[name].cls.forward).parameters


def _edge_weight(num_edges, seed=41):
    """Positive trainable edge weights (so normalisations stay away from zero degrees)."""
    g = torch.Generator().manual_seed(seed)
    return (0.5 + torch.rand(num_edges, generator=g, dtype=torch.float64)).requires_grad_()


def _second_order_case(name, make):
    """The layer, its inputs (x, then e and edge_weight where it has them, all requiring grad) and
    ``fn(params, *inputs)``, the layer as a function of its parameters and inputs."""
    layer = build(name, make)  # training mode (batch statistics through all_reduce), no dropout
    single = "single" in REGISTRY[name].modes
    if single:
        edge_index, n = _second_order_graph()
        x = features(n, seed=32).requires_grad_()
        e = edge_features(name, edge_index.shape[1], seed=33)
        a = edge_index
    else:  # dense batches: a constant adjacency (its entries select edges), features and e vary
        n = 4
        a = dense(random_graph(n=n, e=7, seed=34, isolated=())[0], n).unsqueeze(0)  # (1, N, N)
        a[0, 1, 1] = 1.0  # a self-loop
        x = features(n, seed=32, batch=1).requires_grad_()  # (1, N, F)
        e = edge_features(name, 0, seed=33, shape=(1, n, n))
    names = ["x"]
    inputs = [x]
    if e is not None:
        names.append("e")
        inputs.append(e.requires_grad_())
    if single and _takes_edge_weight(name):
        names.append("edge_weight")
        inputs.append(_edge_weight(a.shape[1]))

    def fn(params, *args):
        kw = dict(zip(names, args))
        return torch.func.functional_call(layer, params, (kw.pop("x"), a), kw)  # out, or (out, e_out)

    return layer, names, inputs, fn


@pytest.mark.slow
@pytest.mark.parametrize("name,make", _case_params())
def test_second_derivatives(name, make):
    """gradcheck and gradgradcheck (float64) w.r.t. the inputs (x; e and a trainable edge_weight
    where the layer takes them), entry by entry, then w.r.t. inputs and parameters together in
    fast mode (random projections of the same Jacobians), on a graph with duplicate, unsorted
    edges and a self-loop: the backward of every layer is itself differentiable, exactly."""
    layer, names, inputs, fn = _second_order_case(name, make)
    pnames = [p for p, _ in sorted(layer.named_parameters())]
    params = [p.detach().clone().requires_grad_() for _, p in sorted(layer.named_parameters())]
    fixed = dict(zip(pnames, params))
    of_inputs = lambda *args: fn(fixed, *args)  # noqa: E731
    assert torch.autograd.gradcheck(of_inputs, tuple(inputs))
    assert torch.autograd.gradgradcheck(of_inputs, tuple(inputs))

    def of_all(*args):
        return fn(dict(zip(pnames, args[len(inputs) :])), *args[: len(inputs)])

    assert torch.autograd.gradgradcheck(of_all, tuple(inputs) + tuple(params), fast_mode=True)


def _penalty(loss, leaves):
    """``P = sum over leaves of |d loss / d leaf|^2``: first derivatives kept in the graph
    (``create_graph=True``) so that ``P`` can be differentiated again."""
    firsts = torch.autograd.grad(loss, leaves, create_graph=True, materialize_grads=True)  # unused: zeros
    return sum((g_ * g_).sum() for g_ in firsts)


@pytest.mark.parametrize("split", ["2-parts", "3-parts"])
@pytest.mark.parametrize("name,make", _case_params(["single"]))
def test_partitioned_second_derivatives_equal_whole(name, make, split):
    """On in-process parts, the gradient of the squared first-order input gradients (x; e and a
    trainable edge_weight where the layer takes them) w.r.t. the inputs and the parameters (summed
    over the replicas) equals the whole graph's: halo exchange, whole-graph degrees and batch-norm
    all-reduces are exact at second order. Training mode, no dropout."""
    edge_index, n = random_graph(seed=16)
    snapshot = build(name, make)
    layer = copy.deepcopy(snapshot)
    x = features(n).requires_grad_()
    e = edge_features(name, edge_index.shape[1])
    if e is not None:
        e.requires_grad_()
    w = _edge_weight(edge_index.shape[1]) if _takes_edge_weight(name) else None
    leaf_names, leaves = zip(*[(k, t) for k, t in (("x", x), ("e", e), ("edge_weight", w)) if t is not None])
    leaves = list(leaves)
    params = [p for _, p in sorted(layer.named_parameters())]

    out, eout = call(name, layer, x, edge_index, e, **({} if w is None else {"edge_weight": w}))
    r = _weights(out.shape, torch.float64, 51)
    re_ = None if eout is None else _weights(eout.shape, torch.float64, 52)
    loss = (out * r).sum() + (0.0 if eout is None else (eout * re_).sum())
    penalty = _penalty(loss, leaves)
    expected = torch.autograd.grad(penalty, leaves + params, allow_unused=True)

    assignment = ASSIGNMENTS[split]
    parts = split_graph(edge_index, assignment, n, num_parts=int(assignment.max()) + 1)
    replicas = [copy.deepcopy(snapshot) for _ in parts]

    def run(p, g):
        kw = {} if w is None else {"edge_weight": w[g.edge_ids]}
        return call(name, replicas[p], x[g.node_ids], g, None if e is None else e[g.edge_ids], **kw)

    res = run_parts(parts, run)
    part_loss = sum((o * r[g.node_ids]).sum() for g, (o, _) in zip(parts, res))
    if eout is not None:
        part_loss = part_loss + sum((eo * re_[g.edge_ids]).sum() for g, (_, eo) in zip(parts, res))
    part_penalty = _penalty(part_loss, leaves)
    assert_close(part_penalty, penalty, torch.float64, "penalty")
    flat = [p for rep in replicas for _, p in sorted(rep.named_parameters())]
    got = torch.autograd.grad(part_penalty, leaves + flat, allow_unused=True)
    zeros = lambda t, like: torch.zeros_like(like) if t is None else t  # noqa: E731
    for i, leaf in enumerate(leaf_names):
        want = zeros(expected[i], leaves[i])
        assert_close(zeros(got[i], leaves[i]), want, torch.float64, f"second derivative of {leaf}")
    k, nl = len(params), len(leaves)
    for i, (pname, _) in enumerate(sorted(layer.named_parameters())):
        summed = sum(zeros(got[nl + q * k + i], params[i]) for q in range(len(parts)))
        assert_close(summed, zeros(expected[nl + i], params[i]), torch.float64, f"second derivative of {pname}")
