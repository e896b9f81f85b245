"""The collective halo exchange on real processes (gloo, spawned ranks).

- gradcheck and gradgradcheck (float64) of gather, scatter, gather_reverse and all_reduce as
  functions of the inputs of ALL ranks (see :func:`_joint`);
- values against the whole graph, bytes counted per gather/scatter, zero-size sends/receives and
  a rank owning nothing (4 ranks), clear errors;
- partitioned == whole for every registered node-level layer (and variants) on 2 and 3 real
  processes: outputs, input gradients, gradient-synchronised parameter gradients, buffers;
- and at second order on 3 real processes (one without edges): the gradient of the squared
  first-order input gradients, every exchange of the backward differentiated again.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist

from distgnn.graph import GraphError, reverse_edge_ids, split_graph
from distgnn.launch import CollectiveExchange, collective_part
from distgnn.layers.registry import convolutions
from tests.graphs import ASSIGNMENTS, random_graph
from tests.launch.spawn import run_ranks
from tests.layers.references import CASES
from tests.layers.test_conformance import (
    TOL,
    _edge_weight,
    _penalty,
    _takes_edge_weight,
    _weights,
    build,
    call,
    edge_features,
    features,
)

REGISTRY = convolutions()  # the conv layers: what this suite runs

SHAPE = (2, 3)  # trailing shape of the rows exchanged (multi-dimensional on purpose)


def _split(world_size: int, name: str):
    edge_index, n = random_graph(seed=16)
    assignment = ASSIGNMENTS[name]
    assert int(assignment.max()) + 1 == world_size
    return edge_index, n, split_graph(edge_index, assignment, n, num_parts=world_size)


def _rand(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- gradcheck ---------------------------------------------------------------------------------------
def _joint(ex: CollectiveExchange, rank: int, op, in_rows: list[int], out_rows: list[int]):
    """``f(X)``: the exchange as ONE function of every rank's input, identical on every rank.

    ``X`` stacks the inputs of all ranks; rank ``r`` applies ``op`` to its block (taken from rank
    0's copy through an all-reduce) and the outputs of all ranks are stacked the same way. Only
    rank 0's output is non-zero, so gradcheck on rank 0 checks the whole Jacobian (perturbing
    ``X`` on rank 0 moves every rank's input; seeding rank 0's output reaches every rank's
    backward), and every rank makes the same calls (same shapes everywhere).
    """
    c = 1.0 if rank == 0 else 0.0
    i0, i1 = sum(in_rows[:rank]), sum(in_rows[: rank + 1])
    o0, total = sum(out_rows[:rank]), sum(out_rows)

    def f(X):
        mine = ex.all_reduce(X * c)[i0:i1]  # (in_rows[rank], *)
        out = op(mine)  # (out_rows[rank], *)
        assert out.shape[0] == out_rows[rank]
        pad = lambda k: out.new_zeros((k,) + tuple(out.shape[1:]))  # noqa: E731
        full = torch.cat([pad(o0), out, pad(total - o0 - out.shape[0])])  # (sum out_rows, *)
        return ex.all_reduce(full) * c

    return f


def _gradcheck_rank(rank, world_size):
    _, _, parts = _split(world_size, "2-parts")
    g = collective_part(parts, rank)
    ex = g.exchange
    nodes = [p.num_nodes for p in parts]
    halos = [p.num_halo for p in parts]
    edges = [p.num_edges for p in parts]
    checks = {
        "gather": (ex.gather, nodes, halos),
        "scatter": (ex.scatter, halos, nodes),
        "gather_reverse": (ex.gather_reverse, edges, edges),
        "all_reduce": (lambda t: ex.all_reduce(t * (rank + 1.0)) ** 2, [3] * world_size, [3] * world_size),
    }
    for what, (op, rows_in, rows_out) in checks.items():
        X = _rand((sum(rows_in),) + SHAPE, 7).requires_grad_()
        ok = torch.autograd.gradcheck(_joint(ex, rank, op, rows_in, rows_out), (X,), eps=1e-6, atol=1e-7)
        assert ok, what
        # second order: the backward (an exchange on the adjoint plan) is itself differentiable;
        # squared, so that the second derivative also goes through the forward exchange
        # (narrower rows: gradgradcheck perturbs inputs and output gradients one entry at a time)
        squared = lambda t, op=op: op(t) ** 2  # noqa: E731
        X = _rand((sum(rows_in), 1, 2), 8).requires_grad_()
        G = _rand((sum(rows_out), 1, 2), 9)  # the same output gradient on every rank
        f = _joint(ex, rank, squared, rows_in, rows_out)
        assert torch.autograd.gradgradcheck(f, (X,), (G,), eps=1e-6, atol=1e-7), f"{what} (second order)"
    # all_reduce alone, every rank perturbing its own input (the Jacobian is the same for all)
    t = _rand((3,) + SHAPE, rank).requires_grad_()
    assert torch.autograd.gradcheck(ex.all_reduce, (t,)), "plain all_reduce"
    G = _rand((3,) + SHAPE, 9)
    squared = lambda t_: ex.all_reduce(t_) ** 2  # noqa: E731
    assert torch.autograd.gradgradcheck(squared, (t,), (G,)), "plain all_reduce (second order)"
    return sorted(checks)


@pytest.mark.multiprocess
def test_gradcheck_and_gradgradcheck_float64_two_ranks(tmp_path):
    out = run_ranks(_gradcheck_rank, 2, tmp_path, timeout=120)
    assert out == [["all_reduce", "gather", "gather_reverse", "scatter"]] * 2


# -- values, bytes, empty ranks, errors ----------------------------------------------------------------
def _values_rank(rank, world_size, split):
    edge_index, n, parts = _split(world_size, split)
    g = collective_part(parts, rank)
    ex = g.exchange
    X = _rand((n,) + SHAPE, 1).requires_grad_()  # whole-graph rows, in global node order
    Ee = _rand((edge_index.shape[1],) + SHAPE, 2).requires_grad_()
    Y = [_rand((p.num_halo,) + SHAPE, 10 + q) for q, p in enumerate(parts)]  # every part's halo rows
    x, e, y = X[g.node_ids], Ee[g.edge_ids], Y[rank].clone().requires_grad_()

    halo = ex.gather(x)
    torch.testing.assert_close(halo, X[g.halo_ids], rtol=0, atol=0)
    owned = ex.scatter(y)
    whole = torch.zeros((n,) + SHAPE, dtype=torch.float64)
    for p, yq in zip(parts, Y):
        whole.index_add_(0, p.halo_ids, yq)
    torch.testing.assert_close(owned, whole[g.node_ids])
    rev = ex.gather_reverse(e)
    r = reverse_edge_ids(edge_index, n)
    expected = torch.where((r >= 0).view(-1, 1, 1), Ee[r.clamp(min=0)], torch.zeros(()).double())
    torch.testing.assert_close(rev, expected[g.edge_ids], rtol=0, atol=0)
    total = ex.all_reduce(torch.full((2,), float(rank + 1), dtype=torch.float64))
    torch.testing.assert_close(total, torch.full((2,), world_size * (world_size + 1) / 2, dtype=torch.float64))

    # backward through real processes against autograd on the whole graph
    wh, wo, wr = _rand(halo.shape, 20 + rank), _rand(owned.shape, 30 + rank), _rand(rev.shape, 40 + rank)
    ((halo * wh).sum() + (owned * wo).sum() + (rev * wr).sum() + total.sum()).backward()

    # bytes: one gather moves halo rows x row width x itemsize (summed over ranks), as does scatter
    ex.reset_counters()
    with torch.no_grad():
        ex.gather(x)
        gathered = (ex.bytes_sent, ex.bytes_received)
        ex.reset_counters()
        ex.scatter(y)
        scattered = (ex.bytes_sent, ex.bytes_received)
    wide = _rand((g.num_nodes, 5), 3).float()
    ex.reset_counters()
    ex.gather(wide)
    gathered_f32 = ex.bytes_sent

    # clear errors (raised on every rank before any collective)
    with pytest.raises(GraphError, match=rf"rank {rank}: gather expects \[{g.num_nodes}, \*\] rows"):
        ex.gather(torch.zeros(g.num_nodes + 1, 2))
    with pytest.raises(ValueError, match=r"gather_plan needs one entry per rank \(%d\), got 1" % world_size):
        CollectiveExchange(rank, world_size, 1, [torch.zeros(0, dtype=torch.long)])
    with pytest.raises(ValueError, match=r"rank 0 of 7 given, but the process group says rank"):
        CollectiveExchange(0, 7, 1, [])
    bad = [torch.zeros(0, dtype=torch.long) for _ in range(world_size)]
    bad[rank] = torch.zeros(1, dtype=torch.long)
    with pytest.raises(ValueError, match=rf"gather_plan\[{rank}\] names halo rows owned by this rank itself"):
        CollectiveExchange(rank, world_size, 1, bad)

    return dict(
        num_nodes=g.num_nodes,
        num_halo=g.num_halo,
        num_edges=g.num_edges,
        node_ids=g.node_ids.numpy(),
        edge_ids=g.edge_ids.numpy(),
        gX=X.grad.numpy(),
        gE=Ee.grad.numpy(),
        gy=y.grad.numpy(),
        gathered=gathered,
        scattered=scattered,
        gathered_f32=gathered_f32,
    )


def _whole_gradients(split, world_size):
    """The gradients the ranks computed, through autograd on whole-graph tensors in one process."""
    edge_index, n, parts = _split(world_size, split)
    X = _rand((n,) + SHAPE, 1).requires_grad_()
    Ee = _rand((edge_index.shape[1],) + SHAPE, 2).requires_grad_()
    Y = [_rand((p.num_halo,) + SHAPE, 10 + q).requires_grad_() for q, p in enumerate(parts)]
    r = reverse_edge_ids(edge_index, n)
    have = (r >= 0).view(-1, 1, 1).double()
    rev = Ee[r.clamp(min=0)] * have
    whole = torch.zeros((n,) + SHAPE, dtype=torch.float64)
    for p, yq in zip(parts, Y):
        whole = whole.index_add(0, p.halo_ids, yq)
    loss = 0.0
    for q, p in enumerate(parts):
        loss = loss + (X[p.halo_ids] * _rand((p.num_halo,) + SHAPE, 20 + q)).sum()
        loss = loss + (whole[p.node_ids] * _rand((p.num_nodes,) + SHAPE, 30 + q)).sum()
        loss = loss + (rev[p.edge_ids] * _rand((p.num_edges,) + SHAPE, 40 + q)).sum()
    loss.backward()
    return parts, X.grad, Ee.grad, [yq.grad for yq in Y]


@pytest.mark.multiprocess
@pytest.mark.parametrize(
    "split,world_size",
    [pytest.param("2-parts", 2, id="2-ranks"), pytest.param("4-parts-one-empty", 4, id="4-ranks-one-owns-nothing")],
)
def test_values_gradients_and_bytes(tmp_path, split, world_size):
    results = run_ranks(_values_rank, world_size, tmp_path, split, timeout=90)
    parts, gX, gE, gY = _whole_gradients(split, world_size)
    if split == "4-parts-one-empty":
        assert min(res["num_nodes"] for res in results) == 0, "the split must have a rank owning no node"
    # each rank's leaves X, E are whole-graph copies; only the rows it owns got gradient there
    for q, (res, p) in enumerate(zip(results, parts)):
        np.testing.assert_allclose(res["gX"][res["node_ids"]], gX[p.node_ids].numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(res["gE"][res["edge_ids"]], gE[p.edge_ids].numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(res["gy"], gY[q].numpy(), rtol=1e-12, atol=1e-12)
    row = int(np.prod(SHAPE)) * 8  # float64
    halo_rows = sum(res["num_halo"] for res in results)
    assert halo_rows > 0
    assert sum(res["gathered"][0] for res in results) == halo_rows * row
    assert sum(res["gathered"][1] for res in results) == halo_rows * row
    for res in results:  # what a rank receives per gather is exactly its halo
        assert res["gathered"][1] == res["num_halo"] * row
        assert res["scattered"] == res["gathered"][::-1]  # scatter sends back what gather received
    assert sum(res["gathered_f32"] for res in results) == halo_rows * 5 * 4


def test_importing_launch_does_not_load_ray():
    code = "import sys, distgnn.launch; print(','.join(m for m in ('ray', 'pyarrow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"imported by distgnn.launch: {out}"


def test_construction_needs_a_process_group():
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="needs an initialised torch.distributed process group"):
        CollectiveExchange(0, 1, 0, [torch.zeros(0, dtype=torch.long)])
    _, _, parts = _split(2, "2-parts")
    with pytest.raises(ValueError, match="collective_part: rank 2 outside the 2 parts"):
        collective_part(parts, 2)


# -- partitioned == whole on real processes ----------------------------------------------------------
def _cases():
    out = []
    for name, entry in REGISTRY.items():
        if "single" not in entry.modes or not entry.node_level:
            continue
        out.append((name, ""))
        out.extend((name, variant) for variant in CASES[name].variants)
    return out


def _make(name, variant):
    return CASES[name].variants[variant] if variant else CASES[name].make


def _numpy(t):
    return None if t is None else t.detach().numpy()


def _layers_rank(rank, world_size, split, cases, parts_dir=None):
    if parts_dir is None:  # the in-process split's plans, on real processes
        edge_index, n, parts = _split(world_size, split)
        g = collective_part(parts, rank)
    else:  # the runtime's path: partitioner shards, merged per rank, plans built by the ranks
        from tests.launch.test_shard import shard_graph

        edge_index, n = random_graph(seed=16)
        g = shard_graph(parts_dir, rank, world_size)
    results = {}
    for name, variant in cases:
        try:
            layer = build(name, _make(name, variant))
            x = features(n)[g.node_ids].requires_grad_()
            e = edge_features(name, edge_index.shape[1])
            e = None if e is None else e[g.edge_ids].requires_grad_()
            out, eout = call(name, layer, x, g, e)
            loss = (out * _weights((n,) + tuple(out.shape[1:]), torch.float64, 21)[g.node_ids]).sum()
            if eout is not None:
                re_ = _weights((edge_index.shape[1],) + tuple(eout.shape[1:]), torch.float64, 22)
                loss = loss + (eout * re_[g.edge_ids]).sum()
            loss.backward()
            grads = {}
            for pname, p in sorted(layer.named_parameters()):
                gr = p.grad if p.grad is not None else torch.zeros_like(p)
                dist.all_reduce(gr)  # gradient synchronisation
                grads[pname] = gr.numpy()
        except Exception as exc:  # name the layer in the traceback the parent shows
            raise RuntimeError(f"{name}{'-' + variant if variant else ''} failed on rank {rank}") from exc
        results[(name, variant)] = dict(
            out=_numpy(out),
            eout=_numpy(eout),
            gx=_numpy(x.grad),
            ge=None if e is None else _numpy(e.grad),
            grads=grads,
            buffers={b: buf.numpy() for b, buf in layer.named_buffers()},
        )
    return dict(node_ids=g.node_ids.numpy(), edge_ids=g.edge_ids.numpy(), results=results)


def _whole(name, variant):
    edge_index, n = random_graph(seed=16)
    layer = build(name, _make(name, variant))
    x = features(n).requires_grad_()
    e = edge_features(name, edge_index.shape[1])
    if e is not None:
        e.requires_grad_()
    out, eout = call(name, layer, x, edge_index, e)
    loss = (out * _weights(out.shape, torch.float64, 21)).sum()
    if eout is not None:
        loss = loss + (eout * _weights(eout.shape, torch.float64, 22)).sum()
    loss.backward()
    grads = {p: (t.grad if t.grad is not None else torch.zeros_like(t)).numpy() for p, t in layer.named_parameters()}
    return dict(
        out=_numpy(out),
        eout=_numpy(eout),
        gx=_numpy(x.grad),
        ge=None if e is None else _numpy(e.grad),
        grads=grads,
        buffers={b: buf.numpy() for b, buf in layer.named_buffers()},
    )


def _mismatches(case, ranks, whole) -> list[str]:
    tol = TOL[torch.float64]
    bad = []

    def check(what, got, want):
        try:
            np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"])
        except AssertionError as exc:
            detail = [ln.strip() for ln in str(exc).splitlines() if ln.strip().startswith(("Mismatched", "Max abs"))]
            bad.append(f"{case[0]}{'-' + case[1] if case[1] else ''}: {what}: {'; '.join(detail)}")

    node_rows = lambda key: np.concatenate([r["results"][case][key] for r in ranks])  # noqa: E731
    nodes = np.concatenate([r["node_ids"] for r in ranks])
    edges = np.concatenate([r["edge_ids"] for r in ranks])
    check("outputs", node_rows("out"), whole["out"][nodes])
    check("gradient of x", node_rows("gx"), whole["gx"][nodes])
    if whole["eout"] is not None:
        check("edge outputs", node_rows("eout"), whole["eout"][edges])
    if whole["ge"] is not None:
        check("gradient of e", node_rows("ge"), whole["ge"][edges])
    for q, r in enumerate(ranks):
        res = r["results"][case]
        assert set(res["grads"]) == set(whole["grads"])
        for pname, want in whole["grads"].items():
            check(f"rank {q} synchronised gradient of {pname}", res["grads"][pname], want)
        for bname, want in whole["buffers"].items():
            check(f"rank {q} buffer {bname}", res["buffers"][bname], want)
    return bad


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.parametrize(
    "split,world_size,shards",
    [
        pytest.param("2-parts", 2, False, id="2-ranks"),
        pytest.param("3-parts", 3, False, id="3-ranks-one-without-edges"),
        pytest.param("interleaved-3", 2, True, id="shards-3-parts-on-2-ranks"),
    ],
)
def test_partitioned_equals_whole_on_processes(tmp_path, split, world_size, shards):
    cases = _cases()
    assert len(cases) >= 40
    if split == "3-parts" and not shards:
        _, _, parts = _split(world_size, split)
        assert min(p.num_edges for p in parts) == 0, "the 3-rank split must include a rank with no edges"
    parts_dir = None
    if shards:
        from tests.launch.shards import INTERLEAVED_3, write_parts

        edge_index, n = random_graph(seed=16)
        parts_dir = write_parts(tmp_path / "parts", edge_index, n, INTERLEAVED_3)
    ranks = run_ranks(_layers_rank, world_size, tmp_path, split, cases, parts_dir, timeout=120)
    bad = []
    for case in cases:
        bad += _mismatches(case, ranks, _whole(*case))
    assert not bad, f"{len(bad)} mismatches:\n" + "\n".join(bad)


# -- second derivatives on real processes --------------------------------------------------------------
def _second_order_inputs(name, n, num_edges):
    """Whole-graph inputs: x, e (layers with edge features), a trainable edge_weight (layers that
    take one: whole-graph weighted degrees then go through the halo)."""
    x = features(n).requires_grad_()
    e = edge_features(name, num_edges)
    w = _edge_weight(num_edges) if _takes_edge_weight(name) else None
    return x, e, w


def _second_order_rank(rank, world_size, split, cases):
    """Per case: this rank's share of ``P = |dL/dx|^2 + ...`` (see
    :func:`tests.layers.test_conformance._penalty`) summed over ranks, the gradient of its share
    w.r.t. its rows of the inputs and, summed over ranks (gradient synchronisation), w.r.t. the
    parameters. Every exchange of the first backward is differentiated again, collectively."""
    edge_index, n, parts = _split(world_size, split)
    g = collective_part(parts, rank)
    results = {}
    for name, variant in cases:
        try:
            layer = build(name, _make(name, variant))
            x, e, w = _second_order_inputs(name, n, edge_index.shape[1])
            x = x[g.node_ids].detach().requires_grad_()
            e = None if e is None else e[g.edge_ids].detach().requires_grad_()
            w = None if w is None else w[g.edge_ids].detach().requires_grad_()
            leaves = [t for t in (x, e, w) if t is not None]
            out, eout = call(name, layer, x, g, e, **({} if w is None else {"edge_weight": w}))
            loss = (out * _weights((n,) + tuple(out.shape[1:]), torch.float64, 51)[g.node_ids]).sum()
            if eout is not None:
                re_ = _weights((edge_index.shape[1],) + tuple(eout.shape[1:]), torch.float64, 52)
                loss = loss + (eout * re_[g.edge_ids]).sum()
            penalty = _penalty(loss, leaves)  # this rank's rows of the first derivatives
            params = [p for _, p in sorted(layer.named_parameters())]
            grads = torch.autograd.grad(penalty, leaves + params, materialize_grads=True)
            synced = {}
            for (pname, _), gr in zip(sorted(layer.named_parameters()), grads[len(leaves) :]):
                gr = gr.detach().clone()
                dist.all_reduce(gr)  # gradient synchronisation
                synced[pname] = gr.numpy()
            total = penalty.detach().reshape(1).clone()
            dist.all_reduce(total)
        except Exception as exc:  # name the layer in the traceback the parent shows
            raise RuntimeError(f"{name}{'-' + variant if variant else ''} failed on rank {rank}") from exc
        results[(name, variant)] = dict(
            penalty=total.numpy(), leaves=[gr.detach().numpy() for gr in grads[: len(leaves)]], grads=synced
        )
    return dict(node_ids=g.node_ids.numpy(), edge_ids=g.edge_ids.numpy(), results=results)


def _second_order_whole(name, variant):
    edge_index, n = random_graph(seed=16)
    layer = build(name, _make(name, variant))
    x, e, w = _second_order_inputs(name, n, edge_index.shape[1])
    if e is not None:
        e.requires_grad_()
    leaves = [t for t in (x, e, w) if t is not None]
    out, eout = call(name, layer, x, edge_index, e, **({} if w is None else {"edge_weight": w}))
    loss = (out * _weights(out.shape, torch.float64, 51)).sum()
    if eout is not None:
        loss = loss + (eout * _weights(eout.shape, torch.float64, 52)).sum()
    penalty = _penalty(loss, leaves)
    params = [p for _, p in sorted(layer.named_parameters())]
    grads = torch.autograd.grad(penalty, leaves + params, materialize_grads=True)
    names = [pname for pname, _ in sorted(layer.named_parameters())]
    return dict(
        penalty=penalty.detach().reshape(1).numpy(),
        leaves=[gr.numpy() for gr in grads[: len(leaves)]],
        grads={pname: gr.numpy() for pname, gr in zip(names, grads[len(leaves) :])},
    )


def _second_order_mismatches(case, ranks, whole) -> list[str]:
    tol = TOL[torch.float64]
    label = f"{case[0]}{'-' + case[1] if case[1] else ''}"
    bad = []

    def check(what, got, want):
        try:
            np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"])
        except AssertionError as exc:
            detail = [ln.strip() for ln in str(exc).splitlines() if ln.strip().startswith(("Mismatched", "Max abs"))]
            bad.append(f"{label}: {what}: {'; '.join(detail)}")

    nodes = np.concatenate([r["node_ids"] for r in ranks])
    edges = np.concatenate([r["edge_ids"] for r in ranks])
    for i, want in enumerate(whole["leaves"]):  # x, then e and/or edge_weight (per edge)
        got = np.concatenate([r["results"][case]["leaves"][i] for r in ranks])
        check(f"second derivative of input {i}", got, want[nodes if i == 0 else edges])
    for q, r in enumerate(ranks):
        res = r["results"][case]
        check(f"rank {q} penalty", res["penalty"], whole["penalty"])
        assert set(res["grads"]) == set(whole["grads"])
        for pname, want in whole["grads"].items():
            check(f"rank {q} synchronised second derivative of {pname}", res["grads"][pname], want)
    return bad


@pytest.mark.multiprocess
@pytest.mark.slow
def test_second_derivatives_partitioned_equal_whole_on_processes(tmp_path):
    """Every node-level layer (and variant) on 3 real processes, one of them without edges:
    the gradient of the squared first-order input gradients (x; e and a trainable edge_weight
    where the layer takes them) equals the whole graph's, for the inputs and the synchronised
    parameters. Every rank must make the same collectives in the double backward, also where its
    tensors are empty (a rank that skipped one would leave the others waiting)."""
    cases = _cases()
    _, _, parts = _split(3, "3-parts")
    assert min(p.num_edges for p in parts) == 0, "the 3-rank split must include a rank with no edges"
    ranks = run_ranks(_second_order_rank, 3, tmp_path, "3-parts", cases, timeout=150)
    bad = []
    for case in cases:
        bad += _second_order_mismatches(case, ranks, _second_order_whole(*case))
    assert not bad, f"{len(bad)} mismatches:\n" + "\n".join(bad)


def _one_dimensional_rank(rank, world_size, split):
    """Second derivative through ``gather_src`` of ``[N]`` rows; part 2 of "3-parts" has no halo."""
    edge_index, n, parts = _split(world_size, split)
    g = collective_part(parts, rank)
    x_all = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    x = x_all[g.node_ids].clone().requires_grad_()
    loss = (g.gather_src(x)[g.edge_index[0]] ** 3).sum()
    (gx,) = torch.autograd.grad(loss, x, create_graph=True)
    (ggx,) = torch.autograd.grad((gx**2).sum(), x)
    return dict(node_ids=g.node_ids.numpy(), g=gx.detach().numpy(), gg=ggx.numpy())


@pytest.mark.multiprocess
def test_one_dimensional_rows_second_derivative_on_ranks_without_halo(tmp_path):
    ranks = run_ranks(_one_dimensional_rank, 3, tmp_path, "3-parts", timeout=90)
    edge_index, n, _ = _split(3, "3-parts")
    x = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).requires_grad_()
    (wx,) = torch.autograd.grad((x[edge_index[0]] ** 3).sum(), x, create_graph=True)
    (wwx,) = torch.autograd.grad((wx**2).sum(), x)
    for r in ranks:
        ids = torch.from_numpy(r["node_ids"])
        torch.testing.assert_close(torch.from_numpy(r["g"]), wx[ids].detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(torch.from_numpy(r["gg"]), wwx[ids], rtol=1e-12, atol=1e-12)
