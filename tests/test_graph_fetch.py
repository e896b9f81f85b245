"""``fetch_rows``: rows of any node by global id, from its owner, with gradients sent back.

- whole graph: ``h[ids]``; errors;
- in-process parts (:func:`~distgnn.graph.split_graph`, interleaved and empty parts): values and
  gradients equal the whole graph's, gradcheck and gradgradcheck (float64);
- real processes (gloo): gradcheck and gradgradcheck on 2 ranks as ONE function of all ranks'
  inputs, for both ways of locating owners (node tables of ``collective_part``, contiguous
  ``starts``); values on 3 ranks with a rank that asks for nothing and owns nothing.
"""
from __future__ import annotations

import pytest
import torch

from distgnn.graph import Graph, GraphError, run_parts, split_graph
from tests.graphs import ASSIGNMENTS, random_graph
from tests.launch.spawn import run_ranks

N = 12


def _rand(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _ids(num_parts: int) -> list[torch.Tensor]:
    """Per-part requests: remote and own ids, repeats, and one part asking for nothing."""
    g = torch.Generator().manual_seed(3)
    ids = [torch.randint(0, N, (7 + p,), generator=g) for p in range(num_parts)]
    ids[0] = torch.cat([ids[0], ids[0][:3]])  # repeated ids: their gradients add up
    ids[-1] = ids[-1][:0]  # asks for nothing, still takes part
    return ids


# -- whole graph ---------------------------------------------------------------------------------------
def test_whole_graph_fetch_is_indexing():
    ei, n = random_graph()
    g = Graph(ei, n)
    h = _rand((n, 2, 3), 0).requires_grad_()
    ids = torch.tensor([4, 0, 4, 11])
    out = g.fetch_rows(h, ids)
    torch.testing.assert_close(out, h[ids])
    assert torch.autograd.gradcheck(lambda t: g.fetch_rows(t, ids), (h,))
    assert torch.autograd.gradgradcheck(lambda t: g.fetch_rows(t, ids) ** 2, (h,))


@pytest.mark.parametrize(
    "h, ids, match",
    [
        pytest.param(torch.zeros(5, 2), torch.tensor([0]), r"h must have one row per owned node \(\[12, \*\]\)", id="rows"),
        pytest.param(torch.zeros(12, 2), torch.tensor([0.0]), "ids must be a 1-D int64 tensor", id="dtype"),
        pytest.param(torch.zeros(12, 2), torch.tensor([[0]]), "ids must be a 1-D int64 tensor", id="dim"),
        pytest.param(torch.zeros(12, 2), torch.tensor([3, 12]), r"ids must be in \[0, 12\), got \[3, 12\]", id="range"),
        pytest.param(torch.zeros(12, 2), torch.tensor([-1]), r"ids must be in \[0, 12\)", id="negative"),
    ],
)
def test_whole_graph_fetch_errors(h, ids, match):
    ei, n = random_graph()
    with pytest.raises(GraphError, match=match):
        Graph(ei, n).fetch_rows(h, ids)


# -- in-process parts ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["2-parts", "3-parts", "4-parts-one-empty"])
def test_parts_fetch_equals_whole_graph_values_and_gradients(name):
    ei, n = random_graph()
    assignment = ASSIGNMENTS[name]
    k = int(assignment.max()) + 1
    parts = split_graph(ei, assignment, n, num_parts=k)
    ids = _ids(k)
    h = _rand((n, 3), 1).requires_grad_()
    weights = [_rand((i.numel(), 3), 10 + p) for p, i in enumerate(ids)]

    outs = run_parts(parts, lambda p, g: g.fetch_rows(h[g.node_ids], ids[p]))
    for p in range(k):
        torch.testing.assert_close(outs[p], h.detach()[ids[p]])
    sum(((o * w).sum() for o, w in zip(outs, weights))).backward()
    want = torch.zeros_like(h)
    for i, w in zip(ids, weights):
        want.index_add_(0, i, w)
    torch.testing.assert_close(h.grad, want)


def test_parts_fetch_gradcheck_and_gradgradcheck():
    ei, n = random_graph()
    parts = split_graph(ei, ASSIGNMENTS["3-parts"], n, num_parts=3)
    ids = _ids(3)

    def f(X):
        outs = run_parts(parts, lambda p, g: g.fetch_rows(X[g.node_ids], ids[p]))
        return torch.cat(outs)  # (sum M_p, *)

    X = _rand((n, 2), 2).requires_grad_()
    assert torch.autograd.gradcheck(f, (X,))
    assert torch.autograd.gradgradcheck(lambda t: f(t) ** 2, (X,))


def test_parts_fetch_errors():
    ei, n = random_graph()
    parts = split_graph(ei, ASSIGNMENTS["2-parts"], n, num_parts=2)
    h = torch.zeros(n, 2)
    with pytest.raises(GraphError, match=r"part 1: fetch_rows ids must be in \[0, 12\), got \[0, 13\]"):
        run_parts(parts, lambda p, g: g.fetch_rows(h[g.node_ids], torch.tensor([0, 13 * p])))
    with pytest.raises(GraphError, match=r"PartitionedGraph.fetch_rows: h must have one row per owned node \(\[6, \*\]\)"):
        parts[0].fetch_rows(h, torch.tensor([0]))
    (alone,) = split_graph(ei, torch.zeros(n, dtype=torch.long), n)
    alone.exchange.node_owner = alone.exchange.node_local = None  # an exchange built by hand, without tables
    with pytest.raises(GraphError, match=r"LocalExchange.fetch needs node_owner and node_local \(build the parts "
                                         r"with split_graph\)"):
        alone.fetch_rows(h, torch.tensor([0]))


# -- real processes ------------------------------------------------------------------------------------
def _exchange(rank, world_size, how):
    """Rank ``rank``'s part and its collective exchange, owners located by node tables (any
    assignment) or by contiguous ``starts`` (a partition on disk)."""
    from distgnn.launch import CollectiveExchange, collective_part

    ei, n = random_graph()
    if how == "tables":
        name = {2: "2-parts", 3: "3-parts"}[world_size]
        parts = split_graph(ei, ASSIGNMENTS[name], n, num_parts=world_size)
        g = collective_part(parts, rank)
        return g.exchange, [p.node_ids for p in parts]
    starts = {2: [0, 5, 12], 3: [0, 7, 7, 12]}[world_size]  # on 3 ranks rank 1 owns nothing
    ex = CollectiveExchange(rank, world_size, starts[rank + 1] - starts[rank], [torch.zeros(0, dtype=torch.long)] * world_size,
                            starts=starts)
    return ex, [torch.arange(starts[q], starts[q + 1]) for q in range(world_size)]


def _joint(ex, rank, owned, ids):
    """The fetch of every rank as ONE function of the whole ``X [N, *]`` (as in test_exchange):
    each rank takes its owned rows of rank 0's ``X`` (an all-reduce), fetches, and the outputs of
    all ranks are stacked and summed onto rank 0 (the others return zeros)."""
    c = 1.0 if rank == 0 else 0.0
    sizes = [int(i.numel()) for i in ids]
    o0, total = sum(sizes[:rank]), sum(sizes)

    def f(X):
        mine = ex.all_reduce(X * c)[owned[rank]]  # (N_rank, *)
        out = ex.fetch(mine, ids[rank])  # (M_rank, *)
        pad = lambda k: out.new_zeros((k,) + tuple(out.shape[1:]))  # noqa: E731
        full = torch.cat([pad(o0), out, pad(total - o0 - out.shape[0])])  # (sum M, *)
        return ex.all_reduce(full) * c

    return f


def _fetch_gradcheck_rank(rank, world_size, how):
    ex, owned = _exchange(rank, world_size, how)
    ids = _ids(world_size)
    X = _rand((N, 2, 3), 4).requires_grad_()
    f = _joint(ex, rank, owned, ids)
    torch.testing.assert_close(f(X), torch.cat([X.detach()[i] for i in ids]) * (rank == 0))
    assert torch.autograd.gradcheck(f, (X,), eps=1e-6, atol=1e-7)
    X = _rand((N, 1, 2), 5).requires_grad_()
    G = _rand((sum(i.numel() for i in ids), 1, 2), 6)  # the same output gradient on every rank
    squared = lambda t: f(t) ** 2  # noqa: E731 - the second derivative goes through the forward too
    assert torch.autograd.gradgradcheck(squared, (X,), (G,), eps=1e-6, atol=1e-7)
    return how


@pytest.mark.multiprocess
@pytest.mark.parametrize("how", ["tables", "starts"])
def test_collective_fetch_gradcheck_and_gradgradcheck_two_ranks(tmp_path, how):
    assert run_ranks(_fetch_gradcheck_rank, 2, tmp_path, how, timeout=120) == [how, how]


def _fetch_values_rank(rank, world_size):
    ex, owned = _exchange(rank, world_size, "starts")
    ids = _ids(world_size)
    h = _rand((N, 3), 7)
    mine = h[owned[rank]].clone().requires_grad_()
    out = ex.fetch(mine, ids[rank])
    (out * (rank + 1.0)).sum().backward()  # every rank's rows pull on their owners
    # the plan is reusable: two tensors indexed alike, one request exchange
    plan = ex.fetch_plan(ids[rank])
    again = ex.fetch_with(plan, mine.detach() * 2)
    errors = []
    try:
        ex.fetch(mine.detach(), torch.tensor([0, N]))  # every rank passes a bad id: each one raises
    except GraphError as err:
        errors.append(str(err))
    return out.detach().numpy(), again.numpy(), mine.grad.numpy(), errors


@pytest.mark.multiprocess
def test_collective_fetch_values_three_ranks_one_owning_nothing(tmp_path):
    out = run_ranks(_fetch_values_rank, 3, tmp_path, timeout=120)
    ids = _ids(3)
    h = _rand((N, 3), 7)
    grad = torch.zeros_like(h)
    for r in range(3):
        torch.testing.assert_close(torch.from_numpy(out[r][0]), h[ids[r]])
        torch.testing.assert_close(torch.from_numpy(out[r][1]), 2 * h[ids[r]])
        grad.index_add_(0, ids[r], torch.full((ids[r].numel(), 3), r + 1.0, dtype=torch.float64))
    starts = [0, 7, 7, 12]
    for r in range(3):
        torch.testing.assert_close(torch.from_numpy(out[r][2]), grad[starts[r]:starts[r + 1]])
        assert out[r][3] == [f"rank {r}: fetch_rows ids must be in [0, 12), got [0, 12]"]


def test_collective_fetch_needs_owners(tmp_path):
    """Without starts or node tables the exchange cannot locate owners: a clear error (1 rank)."""
    out = run_ranks(_no_owner_rank, 1, tmp_path, timeout=60)
    assert out == [["rank 0: fetch needs the owner of every node; build the exchange with starts= (contiguous "
                    "ranges) or node_owner=/node_local=",
                    "CollectiveExchange: starts must have 2 entries with rank 0 owning 3 ids, got [0, 2]",
                    "CollectiveExchange: give node_owner and node_local together"]]


def _no_owner_rank(rank, world_size):
    from distgnn.launch import CollectiveExchange

    import pytest as pt

    ex = CollectiveExchange(0, 1, 3, [torch.zeros(0, dtype=torch.long)])
    with pt.raises(GraphError) as no_owner:
        ex.fetch(torch.zeros(3, 2), torch.tensor([0]))
    with pt.raises(ValueError) as bad_starts:
        CollectiveExchange(0, 1, 3, [torch.zeros(0, dtype=torch.long)], starts=[0, 2])
    with pt.raises(ValueError) as half:
        CollectiveExchange(0, 1, 3, [torch.zeros(0, dtype=torch.long)], node_owner=torch.zeros(3, dtype=torch.long))
    return [str(no_owner.value), str(bad_starts.value), str(half.value)]
