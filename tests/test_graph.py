import threading

import pytest
import torch

from distgnn.graph import Graph, GraphError, as_graph, run_parts, split_graph
from tests.graphs import ASSIGNMENTS, random_graph


def test_as_graph_caches_per_tensor_and_sees_in_place_changes():
    ei = torch.tensor([[0, 1], [1, 2]])
    g = as_graph(ei)
    assert as_graph(ei) is g and as_graph(g) is g
    ei[0, 0] = 2  # in-place change bumps the version counter
    g2 = as_graph(ei)
    assert g2 is not g and g2.edge_index[0, 0] == 2


@pytest.mark.parametrize(
    "ei,n,match",
    [
        (torch.tensor([0, 1]), None, r"must have shape \[2, E\]"),
        (torch.tensor([[0.0], [1.0]]), None, "must be int64"),
        (torch.tensor([[0, -1], [1, 0]]), None, "negative node id"),
        (torch.tensor([[0, 5], [1, 0]]), 3, "refers to node 5 but the graph has 3 nodes"),
        ([[0, 1], [1, 0]], None, "expected an edge_index LongTensor"),
    ],
    ids=["1d", "float", "negative", "out-of-range", "list"],
)
def test_bad_edge_index_is_a_clear_error(ei, n, match):
    with pytest.raises(GraphError, match=match):
        as_graph(ei, n)


@pytest.mark.parametrize("split", list(ASSIGNMENTS))
def test_split_graph_invariants(split):
    ei, n = random_graph()
    assignment = ASSIGNMENTS[split]
    parts = split_graph(ei, assignment, n, num_parts=int(assignment.max()) + 1)
    owned = torch.cat([g.node_ids for g in parts])
    assert torch.equal(owned.sort().values, torch.arange(n)), "each node owned exactly once"
    eids = torch.cat([g.edge_ids for g in parts])
    assert torch.equal(eids.sort().values, torch.arange(ei.shape[1])), "each edge stored exactly once"
    for g in parts:
        glob = torch.cat([g.node_ids, g.halo_ids])
        src, dst = glob[g.edge_index[0]], g.node_ids[g.edge_index[1]]
        assert torch.equal(torch.stack([src, dst]), ei[:, g.edge_ids]), "edges map back to the originals"
        assert torch.all(assignment[dst] == g.part), "edges stored at their target's owner"
        foreign = ei[0, assignment[ei[1]] == g.part]
        foreign = torch.unique(foreign[assignment[foreign] != g.part])
        assert torch.equal(g.halo_ids.sort().values, foreign), "halo = foreign sources of owned targets"
        assert torch.equal(g.in_degree(), torch.bincount(ei[1], minlength=n)[g.node_ids].float())


def test_gather_scatter_are_adjoint_and_all_reduce_sums():
    ei, n = random_graph()
    parts = split_graph(ei, ASSIGNMENTS["3-parts"], n)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    ys = [torch.randn(p.num_src_nodes, 2, generator=g, dtype=torch.float64) for p in parts]
    res = run_parts(parts, lambda p, gr: (gr.gather_src(x[gr.node_ids]), gr.scatter_src(ys[p]), gr.all_reduce(torch.tensor([float(p + 1)]))))
    lhs = sum(float((r[0] * ys[p]).sum()) for p, r in enumerate(res))  # <gather(x), y>
    rhs = sum(float((x[gr.node_ids] * r[1]).sum()) for gr, r in zip(parts, res))  # <x, scatter(y)>
    assert abs(lhs - rhs) < 1e-12
    assert all(float(r[2]) == 6.0 for r in res)
    for gr, r in zip(parts, res):
        torch.testing.assert_close(r[0], x[torch.cat([gr.node_ids, gr.halo_ids])])
    out_deg = run_parts(parts, lambda p, gr: gr.out_degree())
    for gr, d in zip(parts, out_deg):
        assert torch.equal(d, torch.bincount(ei[0], minlength=n)[gr.node_ids].float())


def test_a_failing_part_raises_instead_of_hanging():
    ei, n = random_graph()
    parts = split_graph(ei, ASSIGNMENTS["2-parts"], n, timeout=10)

    def fn(p, g):
        if p == 1:
            raise KeyError("boom on part 1")
        return g.gather_src(torch.zeros(g.num_nodes, 1))

    with pytest.raises(KeyError, match="boom on part 1"):
        run_parts(parts, fn)
    assert threading.active_count() < 5
    # the group is usable again afterwards
    out = run_parts(parts, lambda p, g: g.all_reduce(torch.ones(1)))
    assert [float(o) for o in out] == [2.0, 2.0]


def test_partitioned_graph_checks_row_count():
    ei, n = random_graph()
    parts = split_graph(ei, ASSIGNMENTS["2-parts"], n, timeout=10)
    with pytest.raises(GraphError, match="x has 3 rows but the part owns 6 nodes"):
        run_parts(parts, lambda p, g: g.gather_src(torch.zeros(3, 1)))


def test_dense_graph_and_split_errors():
    g, w = Graph.from_dense(torch.tensor([[0.0, 2.0], [0.0, 0.0]]))
    assert torch.equal(g.edge_index, torch.tensor([[1], [0]])) and torch.equal(w, torch.tensor([2.0]))
    with pytest.raises(GraphError, match=r"assignment must be \[N\] with N=12"):
        split_graph(random_graph()[0], torch.zeros(3, dtype=torch.long), 12)


def test_reverse_edges_whole_and_partitioned():
    from distgnn.graph import reverse_edge_ids

    ei = torch.tensor([[0, 1, 1, 2, 2, 3, 1], [1, 0, 2, 1, 1, 3, 0]])  # duplicate 2->1, loop at 3, dup 1->0
    rev = reverse_edge_ids(ei, 4)
    assert rev.tolist() == [1, 0, 3, 2, 2, 5, 0]
    assert reverse_edge_ids(torch.tensor([[0], [1]]), 2).tolist() == [-1]
    assert reverse_edge_ids(torch.empty(2, 0, dtype=torch.long), 2).numel() == 0

    ei, n = random_graph(seed=5)
    ei = torch.cat([ei, ei[:, :10].flip(0)], 1)  # make some edges have reverses
    e = torch.randn(ei.shape[1], 3, dtype=torch.float64, requires_grad=True)
    whole = Graph(ei, n).gather_reverse(e)
    rev = reverse_edge_ids(ei, n)
    expect = torch.where((rev >= 0).unsqueeze(1), e.detach()[rev.clamp(min=0)], torch.zeros(1, 3, dtype=torch.float64))
    assert torch.equal(whole.detach(), expect) and int((rev >= 0).sum()) >= 10
    for split in ASSIGNMENTS:
        parts = split_graph(ei, ASSIGNMENTS[split], n, num_parts=int(ASSIGNMENTS[split].max()) + 1)
        outs = run_parts(parts, lambda p, g: g.gather_reverse(e[g.edge_ids]))
        got = torch.empty_like(whole)
        for g, o in zip(parts, outs):
            got[g.edge_ids] = o
        torch.testing.assert_close(got, whole, rtol=0, atol=0)
        w = torch.randn_like(whole)
        ga = torch.autograd.grad((whole * w).sum(), e, retain_graph=True)[0]
        gb = torch.autograd.grad(sum((o * w[g.edge_ids]).sum() for g, o in zip(parts, outs)), e)[0]
        torch.testing.assert_close(gb, ga)


def test_derived_partitioned_graph_refuses_gather_reverse():
    from distgnn.ops import add_self_loops

    ei, n = random_graph()
    parts = split_graph(ei, ASSIGNMENTS["2-parts"], n, timeout=10)
    with pytest.raises(GraphError, match="only available on the partitioned graph itself"):
        run_parts(parts, lambda p, g: add_self_loops(g)[0].gather_reverse(torch.zeros(g.num_edges + g.num_nodes, 1)))


@pytest.mark.parametrize("split", ["3-parts", "4-parts-one-empty"])
def test_one_dimensional_rows_have_exact_second_derivatives_on_parts(split):
    """``gather_src`` of ``[N]`` rows keeps every part's halo exchange in a double backward (torch.cat
    drops empty 1-D inputs from its backward, which would let a part without halo skip it)."""
    edge_index, n = random_graph()
    parts = split_graph(edge_index, ASSIGNMENTS[split], n)
    x = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(3), requires_grad=True)
    outs = run_parts(parts, lambda p, g: (g.gather_src(x[g.node_ids])[g.edge_index[0]] ** 3).sum())
    (gx,) = torch.autograd.grad(sum(outs), x, create_graph=True)
    (ggx,) = torch.autograd.grad((gx**2).sum(), x)
    (wx,) = torch.autograd.grad((x[edge_index[0]] ** 3).sum(), x, create_graph=True)
    (wwx,) = torch.autograd.grad((wx**2).sum(), x)
    torch.testing.assert_close(gx, wx, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ggx, wwx, rtol=1e-12, atol=1e-12)
