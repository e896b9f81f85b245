"""MemPooling: float64 references of the formula and of kl_loss (loops, direct distances), the
sparse and dense forms and their masks, gradcheck/gradgradcheck, and partitioned == whole for
values AND gradients, on 3 in-process parts and on 2 real gloo ranks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from distgnn.graph import Graph, GraphError, run_parts, split_graph
from distgnn.layers import MemPooling
from tests.graphs import ASSIGNMENTS, random_graph

D = torch.float64
EPS = 1e-15


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pool(f=3, f_out=2, heads=2, k=3, tau=1.0, seed=0) -> MemPooling:
    torch.manual_seed(seed)
    return MemPooling(f, f_out, heads, k, tau).double()


# -- references -------------------------------------------------------------------------------------
def ref_assign(m: MemPooling, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``S [B, N, K]`` node by node, head by head, from ``||x_i - k_j||^2`` computed directly."""
    b_, n_, _ = x.shape
    tau = m.tau
    s = torch.zeros(b_, n_, m.num_clusters, dtype=x.dtype)
    for b in range(b_):
        for n in range(n_):
            if not mask[b, n]:
                continue
            logits = torch.zeros(m.num_clusters, dtype=x.dtype)
            for h in range(m.heads):
                q = torch.stack([(1 + (x[b, n] - m.k[h, j]).square().sum() / tau) ** (-(1 + tau) / 2)
                                 for j in range(m.num_clusters)])
                logits = logits + m.head_weight[h] * q / q.sum()
            s[b, n] = torch.exp(logits) / torch.exp(logits).sum()
    return s


def ref_pool(m: MemPooling, x: torch.Tensor, mask: torch.Tensor):
    s = ref_assign(m, x, mask)
    out = torch.stack([s[b].t() @ x[b] @ m.weight for b in range(x.shape[0])])
    return out, s


def ref_dense(x: torch.Tensor, batch: torch.Tensor, batch_size: int, max_num_nodes: int | None = None):
    """Sparse -> dense with Python loops: each graph's nodes in node order, nodes past
    ``max_num_nodes`` dropped. Also returns ``slot[v] = (b, p)`` (``None`` when dropped)."""
    counts = [0] * batch_size
    slot = []
    for v in range(x.shape[0]):
        b = int(batch[v])
        slot.append((b, counts[b]))
        counts[b] += 1
    n_max = max_num_nodes or max(max(counts), 1)
    dense = torch.zeros(batch_size, n_max, x.shape[1], dtype=x.dtype)
    mask = torch.zeros(batch_size, n_max, dtype=torch.bool)
    for v, (b, p) in enumerate(slot):
        if p < n_max:
            dense[b, p], mask[b, p] = x[v], True
        else:
            slot[v] = None
    return dense, mask, slot


def ref_kl(s: torch.Tensor) -> torch.Tensor:
    """``KL(P || S)`` averaged over the batch, element by element."""
    b_, n_, k_ = s.shape
    total = torch.zeros((), dtype=s.dtype)
    for b in range(b_):
        col = s[b].sum(0)
        col = torch.where(col == 0, torch.ones_like(col), col)
        for n in range(n_):
            row = s[b, n]
            if float(row.detach().sum()) == 0.0:
                p = torch.zeros_like(row)
            else:
                p = row.square() / col
                p = p / p.sum()
            for k in range(k_):
                pc, sc = max(p[k], torch.tensor(EPS, dtype=s.dtype)), max(s[b, n, k], torch.tensor(EPS, dtype=s.dtype))
                total = total + pc * (torch.log(pc) - torch.log(sc))
    return total / b_


# -- values ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tau,heads", [pytest.param(1.0, 1, id="tau1-1head"), pytest.param(0.6, 3, id="tau0.6-3heads"),
                                       pytest.param(2.5, 2, id="tau2.5-2heads")])
def test_dense_form_matches_reference_with_mask(tau, heads):
    m = _pool(3, 2, heads, 4, tau)
    x = torch.randn(3, 5, 3, generator=_gen(1), dtype=D)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 1, 0, 1]], dtype=torch.bool)
    out, s = m(x, mask=mask)
    want_out, want_s = ref_pool(m, x, mask)
    assert out.shape == (3, 4, 2) and s.shape == (3, 5, 4)
    torch.testing.assert_close(s, want_s, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out, want_out, rtol=1e-12, atol=1e-12)
    assert torch.all(s[~mask] == 0)
    torch.testing.assert_close(s[mask].sum(-1), torch.ones(int(mask.sum()), dtype=D))
    # without a mask every node is real
    out_all, s_all = m(x)
    torch.testing.assert_close(out_all, ref_pool(m, x, torch.ones(3, 5, dtype=torch.bool))[0])


def test_masked_rows_do_not_matter_and_get_no_gradient():
    m = _pool()
    x = torch.randn(2, 4, 3, generator=_gen(2), dtype=D, requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    out, s = m(x, mask=mask)
    other = x.detach().clone()
    other[~mask] = 1e3 * torch.randn(int((~mask).sum()), 3, generator=_gen(3), dtype=D)
    out2, s2 = m(other, mask=mask)
    torch.testing.assert_close(out2, out)
    torch.testing.assert_close(s2, s)
    (out.square().sum() + m.kl_loss(s)).backward()
    assert torch.all(x.grad[~mask] == 0) and torch.all(x.grad[mask].abs().sum(-1) > 0)


def test_sparse_form_unsorted_batch_empty_graph_and_max_num_nodes():
    m = _pool(3, 2, 2, 3, tau=0.8)
    x = torch.randn(9, 3, generator=_gen(4), dtype=D)
    batch = torch.tensor([2, 0, 2, 0, 0, 2, 3, 3, 2])  # unsorted; graph 1 has no node
    out, s = m(x, batch)
    dense, mask, _ = ref_dense(x, batch, 4)
    want_out, want_s = ref_pool(m, dense, mask)
    assert s.shape == (4, 4, 3)
    torch.testing.assert_close(s, want_s, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out, want_out, rtol=1e-12, atol=1e-12)
    assert torch.all(out[1] == 0)
    # batch_size beyond the ids, max_num_nodes padding and truncation (nodes past it are dropped)
    for batch_size, n_max in ((6, None), (4, 7), (4, 2)):
        out, s = m(x, batch, max_num_nodes=n_max, batch_size=batch_size)
        dense, mask, _ = ref_dense(x, batch, batch_size, n_max)
        want_out, want_s = ref_pool(m, dense, mask)
        torch.testing.assert_close(s, want_s, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(out, want_out, rtol=1e-12, atol=1e-12)
    # batch=None: one graph; sorted batch equals the dense form of the same nodes
    out, s = m(x)
    torch.testing.assert_close(out, ref_pool(m, x[None], torch.ones(1, 9, dtype=torch.bool))[0])


def test_node_permutation_permutes_s_and_keeps_pooled_features():
    m = _pool(3, 4, 2, 3)
    x = torch.randn(8, 3, generator=_gen(5), dtype=D)
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1])
    out, s = m(x, batch)
    perm = torch.tensor([1, 0, 2, 7, 3, 6, 4, 5])  # within each graph
    out_p, s_p = m(x[perm], batch[perm])
    torch.testing.assert_close(out_p, out)
    _, _, slot = ref_dense(x, batch, 2)
    for new, old in enumerate(perm.tolist()):
        b, p = slot[new]
        torch.testing.assert_close(s_p[b, p], s[slot[old][0], slot[old][1]])


def test_kl_loss_matches_reference_with_padding_and_an_empty_graph():
    m = _pool(3, 2, 2, 4, tau=1.3)
    x = torch.randn(7, 3, generator=_gen(6), dtype=D)
    batch = torch.tensor([0, 0, 0, 2, 2, 2, 2])
    _, s = m(x, batch, batch_size=3)  # graph 1 empty, graph 0 padded
    loss = MemPooling.kl_loss(s)
    torch.testing.assert_close(loss, ref_kl(s), rtol=1e-12, atol=1e-14)
    assert torch.isfinite(loss) and loss > 0
    # one graph at a time gives the same per-graph terms: the batch mean is their mean over B = 3
    l0 = MemPooling.kl_loss(m(x[:3])[1])
    l2 = MemPooling.kl_loss(m(x[3:])[1])
    torch.testing.assert_close(loss, (l0 + l2) / 3)
    # a hand-made S: P sharpens S, so KL(P || S) of a one-hot-ish S is small, of a flat S it is 0
    flat = torch.full((1, 4, 2), 0.5, dtype=D)
    torch.testing.assert_close(MemPooling.kl_loss(flat), torch.zeros((), dtype=D), rtol=0, atol=1e-15)


@pytest.mark.slow
def test_gradcheck_and_gradgradcheck_float64():
    m = _pool(2, 2, 2, 2, tau=0.7)
    names = [n for n, _ in m.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in m.parameters())
    x = torch.randn(2, 3, 2, generator=_gen(7), dtype=D, requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    xs = torch.randn(5, 2, generator=_gen(8), dtype=D, requires_grad=True)
    batch = torch.tensor([1, 0, 1, 1, 0])

    def dense(x, *p):
        out, s = torch.func.functional_call(m, dict(zip(names, p)), (x,), {"mask": mask})
        return out, s, MemPooling.kl_loss(s)

    def sparse(x, *p):
        out, s = torch.func.functional_call(m, dict(zip(names, p)), (x, batch))
        return out, s, MemPooling.kl_loss(s)

    assert torch.autograd.gradcheck(dense, (x,) + params)
    assert torch.autograd.gradgradcheck(dense, (x,) + params)
    # the sparse form adds only index copies: full first order, fast (random-projection) second order
    assert torch.autograd.gradcheck(sparse, (xs,) + params)
    assert torch.autograd.gradgradcheck(sparse, (xs,) + params, fast_mode=True)


# -- partitioned == whole ----------------------------------------------------------------------------------
N = 12
BATCH = torch.tensor([0, 1, 0, 2, 1, 1, 0, 2, 2, 0, 1, 2])  # every graph has nodes on several parts


def _local_slots(node_ids: torch.Tensor, batch: torch.Tensor) -> list[tuple[int, int]]:
    """``(graph, position)`` of each owned node in a part's dense layout (owned nodes in order)."""
    seen: dict[int, int] = {}
    out = []
    for v in node_ids.tolist():
        b = int(batch[v])
        out.append((b, seen.get(b, 0)))
        seen[b] = seen.get(b, 0) + 1
    return out


def _whole_sparse(m, x, wo, wn, num_parts):
    """Whole-graph outputs and the gradient of the loss every part computes (see _part_loss)."""
    out, s = m(x, BATCH)
    kl = MemPooling.kl_loss(s)
    _, _, slot = ref_dense(x.detach(), BATCH, 3)
    node_term = sum((s[b, p] * wn[v]).sum() for v, (b, p) in enumerate(slot))
    loss = (out * wo).sum() + kl + node_term
    return out, s, kl, slot, torch.autograd.grad(loss, [x] + list(m.parameters()))


def _part_loss(out, s, kl, wo, wn, node_ids, num_parts):
    """A part's loss: the replicated terms (pooled output, kl) scaled by 1 / num_parts, plus its
    own nodes' S rows; summed over the parts it is the whole graph's loss."""
    node_term = sum((s[b, p] * wn[v]).sum() for v, (b, p) in zip(node_ids.tolist(), _local_slots(node_ids, BATCH)))
    return ((out * wo).sum() + kl) / num_parts + node_term


def test_partitioned_equals_whole_sparse_form_three_parts():
    m = _pool(3, 2, 2, 3, tau=0.9)
    edge_index, _ = random_graph(seed=9)
    x = torch.randn(N, 3, generator=_gen(10), dtype=D, requires_grad=True)
    wo = torch.randn(3, 3, 2, generator=_gen(11), dtype=D)
    wn = torch.randn(N, 3, generator=_gen(12), dtype=D)
    out, s, kl, slot, grads = _whole_sparse(m, x, wo, wn, 3)

    parts = split_graph(edge_index, ASSIGNMENTS["3-parts"], N)

    def run(p, g):
        o, sp = m(x[g.node_ids], BATCH[g.node_ids], graph=g)
        k = MemPooling.kl_loss(sp, graph=g)
        return o, sp, k

    results = run_parts(parts, run)
    loss = 0.0
    for g, (o, sp, k) in zip(parts, results):
        torch.testing.assert_close(o, out)
        torch.testing.assert_close(k, kl)
        assert sp.shape[0] == 3
        for v, (b, p) in zip(g.node_ids.tolist(), _local_slots(g.node_ids, BATCH)):
            torch.testing.assert_close(sp[b, p], s[slot[v][0], slot[v][1]])
        assert int((sp.sum(-1) > 0).sum()) == g.num_nodes  # the other rows are padding
        loss = loss + _part_loss(o, sp, k, wo, wn, g.node_ids, len(parts))
    for got, want in zip(torch.autograd.grad(loss, [x] + list(m.parameters())), grads):
        torch.testing.assert_close(got, want)


def test_partitioned_equals_whole_dense_form_with_mask_three_parts():
    m = _pool(3, 2, 3, 2, tau=1.7)
    edge_index, _ = random_graph(seed=13)
    x = torch.randn(2, N, 3, generator=_gen(14), dtype=D, requires_grad=True)  # 2 samples over the nodes
    mask = torch.rand(2, N, generator=_gen(15)) > 0.3
    wo = torch.randn(2, 2, 2, generator=_gen(16), dtype=D)
    ws = torch.randn(2, N, 2, generator=_gen(17), dtype=D)
    out, s = m(x, mask=mask)
    kl = MemPooling.kl_loss(s)
    grads = torch.autograd.grad((out * wo).sum() + kl + (s * ws).sum(), [x] + list(m.parameters()))
    parts = split_graph(edge_index, ASSIGNMENTS["3-parts"], N)
    results = run_parts(parts, lambda p, g: m(x[:, g.node_ids], mask=mask[:, g.node_ids], graph=g))
    loss = 0.0
    for g, (o, sp) in zip(parts, results):
        torch.testing.assert_close(o, out)
        torch.testing.assert_close(sp, s[:, g.node_ids])
        loss = loss + (o * wo).sum() / 3 + (sp * ws[:, g.node_ids]).sum()
    kls = run_parts(parts, lambda p, g: MemPooling.kl_loss(results[p][1], graph=g))
    for k in kls:
        torch.testing.assert_close(k, kl)
    loss = loss + sum(kls) / 3
    for got, want in zip(torch.autograd.grad(loss, [x] + list(m.parameters())), grads):
        torch.testing.assert_close(got, want)


def test_a_whole_graph_argument_changes_nothing():
    m = _pool()
    x = torch.randn(5, 3, generator=_gen(18), dtype=D)
    g = Graph(torch.tensor([[0, 1], [1, 2]]), 5)
    out, s = m(x, torch.tensor([0, 0, 1, 1, 1]), graph=g)
    out2, s2 = m(x, torch.tensor([0, 0, 1, 1, 1]))
    torch.testing.assert_close(out, out2, rtol=0, atol=0)
    torch.testing.assert_close(MemPooling.kl_loss(s, graph=g), MemPooling.kl_loss(s2), rtol=0, atol=0)


def _gloo_rank(rank, world_size):
    from distgnn.launch import collective_part

    m = _pool(3, 2, 2, 3, tau=0.9)
    edge_index, _ = random_graph(seed=9)
    parts = split_graph(edge_index, ASSIGNMENTS["2-parts"], N)
    g = collective_part(parts, rank)
    x = torch.randn(N, 3, generator=_gen(10), dtype=D, requires_grad=True)
    wo = torch.randn(3, 3, 2, generator=_gen(11), dtype=D)
    wn = torch.randn(N, 3, generator=_gen(12), dtype=D)
    out, s = m(x[g.node_ids], BATCH[g.node_ids], graph=g)  # batch_size found by an all-reduce
    kl = MemPooling.kl_loss(s, graph=g)
    _part_loss(out, s, kl, wo, wn, g.node_ids, world_size).backward()
    rows = np.stack([s[b, p].detach().numpy() for b, p in _local_slots(g.node_ids, BATCH)])
    return dict(out=out.detach().numpy(), kl=float(kl.detach()), node_ids=g.node_ids.numpy(), s_rows=rows,
                gx=x.grad.numpy(), gparams=[p.grad.numpy() for p in m.parameters()])


@pytest.mark.multiprocess
def test_partitioned_equals_whole_on_two_gloo_ranks(tmp_path):
    from tests.launch.spawn import run_ranks

    results = run_ranks(_gloo_rank, 2, tmp_path, timeout=90)
    m = _pool(3, 2, 2, 3, tau=0.9)
    x = torch.randn(N, 3, generator=_gen(10), dtype=D, requires_grad=True)
    wo = torch.randn(3, 3, 2, generator=_gen(11), dtype=D)
    wn = torch.randn(N, 3, generator=_gen(12), dtype=D)
    out, s, kl, slot, grads = _whole_sparse(m, x, wo, wn, 2)
    gx = np.zeros((N, 3))
    for res in results:
        np.testing.assert_allclose(res["out"], out.detach().numpy(), rtol=1e-12, atol=1e-12)
        assert math.isclose(res["kl"], float(kl.detach()), rel_tol=1e-12)
        want = np.stack([s[slot[v][0], slot[v][1]].detach().numpy() for v in res["node_ids"]])
        np.testing.assert_allclose(res["s_rows"], want, rtol=1e-12, atol=1e-12)
        gx += res["gx"]  # each rank's leaf x is a whole copy; gradients reach it from both ranks' losses
    np.testing.assert_allclose(gx, grads[0].numpy(), rtol=1e-10, atol=1e-12)
    for k, want in enumerate(grads[1:]):  # parameter gradients summed over ranks, as the runtime does
        np.testing.assert_allclose(sum(res["gparams"][k] for res in results), want.numpy(), rtol=1e-10, atol=1e-12)


# -- errors -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make,match",
    [
        pytest.param(lambda: MemPooling(0, 2, 1, 2), r"MemPooling: in_channels must be an int >= 1, got 0", id="in"),
        pytest.param(lambda: MemPooling(3, 2, 0, 2), r"MemPooling: heads must be an int >= 1, got 0", id="heads"),
        pytest.param(lambda: MemPooling(3, 2, 1, -4), r"MemPooling: num_clusters must be an int >= 1, got -4", id="clusters"),
        pytest.param(lambda: MemPooling(3, 2, 1, 2, tau=0.0), r"MemPooling: tau must be a finite number > 0, got 0.0", id="tau"),
        pytest.param(lambda: MemPooling(3, 2, 1, 2, tau="1"), r"MemPooling: tau must be a finite number > 0, got '1'", id="tau-str"),
    ],
)
def test_bad_arguments_are_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs_are_clear_errors():
    m = MemPooling(3, 2, 1, 2)
    x, xd = torch.zeros(4, 3), torch.zeros(2, 4, 3)
    cases = [
        (lambda: m(torch.zeros(4, 5)), r"MemPooling: x must be \[N, F\] or \[B, N, F\] with F=3, got \(4, 5\)"),
        (lambda: m(torch.zeros(3)), r"MemPooling: x must be \[N, F\] or \[B, N, F\] with F=3, got \(3,\)"),
        (lambda: m(x, mask=torch.ones(1, 4, dtype=torch.bool)), r"MemPooling: mask is for dense x \[B, N, F\]"),
        (lambda: m(xd, batch=torch.zeros(4, dtype=torch.long)), r"MemPooling: batch is for sparse x \[N, F\]"),
        (lambda: m(xd, mask=torch.ones(2, 3, dtype=torch.bool)), r"MemPooling: mask must be \[B, N\] = \(2, 4\), got \(2, 3\)"),
        (lambda: m(xd, batch_size=3), r"MemPooling: with dense x \[B, N, F\] = \(2, 4, 3\) leave max_num_nodes and batch_size"),
        (lambda: m(x, torch.zeros(4)), r"MemPooling: batch must be an int64 \[N\] tensor of graph ids with N=4, got \(4,\)"),
        (lambda: m(x, torch.zeros(3, dtype=torch.long)), r"MemPooling: batch must be an int64 \[N\] tensor .* got \(3,\)"),
        (lambda: m(x, torch.tensor([0, -1, 0, 0])), r"MemPooling: batch contains a negative graph id"),
        (lambda: m(x, torch.tensor([0, 1, 2, 0]), batch_size=2), r"MemPooling: batch names graph 2 but batch_size is 2"),
        (lambda: m(x, max_num_nodes=0), r"MemPooling: max_num_nodes must be an int >= 1, got 0"),
        (lambda: m(x, graph="g"), r"MemPooling: graph must be a distgnn Graph or PartitionedGraph, got str"),
        (lambda: m(x, graph=Graph(torch.zeros(2, 0, dtype=torch.long), 5)), r"MemPooling: x has 4 rows but the graph owns 5 nodes"),
        (lambda: m(xd, graph=Graph(torch.zeros(2, 0, dtype=torch.long), 5)), r"MemPooling: x has 4 nodes per sample but the graph owns 5"),
        (lambda: MemPooling.kl_loss(torch.zeros(4, 2)), r"MemPooling.kl_loss: S must be \[B, N, K\] \(the second output of forward\), got \(4, 2\)"),
    ]
    for call, match in cases:
        with pytest.raises(GraphError, match=match):
            call()


def test_truncating_max_num_nodes_on_a_partition_is_a_clear_error():
    m = _pool()
    edge_index, _ = random_graph(seed=9)
    parts = split_graph(edge_index, ASSIGNMENTS["3-parts"], N)
    x = torch.randn(N, 3, dtype=D)
    # only part 0 holds 3 nodes of one graph (nodes 0, 2, 6 of graph 0); the others hold at most 2
    with pytest.raises(GraphError, match=r"MemPooling: max_num_nodes=2 would drop nodes of a graph with 3 nodes on part 0"):
        run_parts(parts, lambda p, g: m(x[g.node_ids], BATCH[g.node_ids], max_num_nodes=2, graph=g))
