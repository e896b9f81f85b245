"""The single-process neighbour sampler: the keyed RNG, exact neighbourhoods, uniformity,
independence of batch composition, the subgraph layout, layers on it, and input errors."""
from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch

from distgnn.layers import GCNConv, GraphSageConv
from distgnn.sampling import IdMap, NeighborSampler, Topology, sample_neighbors, sample_subgraph
from distgnn.sampling import neighbor as nb
from distgnn.sampling import rng
from tests.graphs import TINY, E, random_graph

MASK = (1 << 64) - 1


def splitmix_ref(z: int) -> int:
    """SplitMix64 finaliser on unsigned Python ints (the published constants)."""
    z &= MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def chi2_crit(dof: int) -> float:
    """Chi-square critical value at p ~ 1e-5 (Wilson-Hilferty approximation)."""
    z = 4.265
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


def whole(edge_index, n, **kw):
    return NeighborSampler(edge_index, n, kw.pop("fanouts", [-1]), **kw)


def edges_of(src, dst, eid):
    return sorted(zip(src.tolist(), dst.tolist(), eid.tolist()))


# -- random numbers ------------------------------------------------------------------------------
def test_mix64_matches_the_unsigned_reference_bit_for_bit():
    vals = [0, 1, 2, 12345, (1 << 63) - 1, 1 << 63, MASK, 0xDEADBEEFCAFEBABE, 0x8000000000000001]
    vals += [random.Random(0).getrandbits(64) for _ in range(200)]
    signed = torch.tensor([v - (1 << 64) if v >= 1 << 63 else v for v in vals], dtype=torch.long)
    got = [v & MASK for v in rng.mix64(signed).tolist()]
    assert got == [splitmix_ref(v) for v in vals]
    assert torch.equal(signed, torch.tensor([v - (1 << 64) if v >= 1 << 63 else v for v in vals]))  # not in place


def test_uniform_below_stays_in_range_at_the_extremes():
    bits = torch.tensor([-1, 0, (1 << 52) - 1, -(1 << 63), (1 << 63) - 1], dtype=torch.long)
    for b in (1, 2, 3, 7, 1 << 20, (1 << 40) + 3):
        out = rng.uniform_below(bits, rng.scale_bound(torch.full_like(bits, b)))
        assert out.min() >= 0 and out.max() < b, b
        assert out[2] == b - 1  # the largest 52-bit value maps to the last slot


def test_streams_differ_by_seed_hop_and_node():
    nodes = torch.arange(1000)
    a = rng.node_keys(nodes, 0, 0)
    assert torch.unique(a).numel() == 1000
    for other in (rng.node_keys(nodes, 1, 0), rng.node_keys(nodes, 0, 1), rng.node_keys(nodes, -1, 0)):
        assert (a != other).all()


# -- Floyd's algorithm ----------------------------------------------------------------------------
def floyd_python(t: list[int], j: list[int]) -> list[int]:
    chosen: list[int] = []
    for ti, ji in zip(t, j):
        chosen.append(ji if ti in chosen else ti)
    return chosen


@pytest.mark.parametrize("k", [1, 2, 3, 10, 15, 16])
def test_floyd_equals_the_sequential_algorithm(k):
    for spread in (1, 3, 200):  # deg = k + 1 (most collisions) up to deg >> k
        deg = torch.randint(k + 1, k + 1 + spread, (300,), generator=torch.Generator().manual_seed(k))
        keys = rng.node_keys(torch.arange(300) + 1000 * spread, 7, 1)
        got = nb._floyd(keys, deg, k)  # (k, n)
        t, j = nb._floyd_draws(keys, deg, k)
        for i in range(300):
            assert got[:, i].tolist() == floyd_python(t[:, i].tolist(), j[:, i].tolist())
            assert len(set(got[:, i].tolist())) == k and 0 <= got[:, i].min() and got[:, i].max() < deg[i]


# -- one hop ------------------------------------------------------------------------------------
def in_edges(edge_index):
    out: dict[int, list[int]] = {}
    for e, d in enumerate(edge_index[1].tolist()):
        out.setdefault(d, []).append(e)
    return out


@pytest.mark.parametrize("replace", [False, True], ids=["without-replacement", "with-replacement"])
@pytest.mark.parametrize("k", [1, 2, 5, -1])
@pytest.mark.parametrize("name", list(TINY))
def test_samples_are_actual_in_edges_with_exact_counts(name, k, replace):
    ei, n = TINY[name]
    s = whole(ei, n, fanouts=[k], replace=replace)
    nodes = torch.randperm(n, generator=torch.Generator().manual_seed(1))
    src, dst, eid = sample_neighbors(s.topo, nodes, k, replace=replace, seed=3)
    ins = in_edges(ei)
    assert torch.equal(ei[0, eid], src) and torch.equal(ei[1, eid], dst)
    per_node = Counter(dst.tolist())
    for v in nodes.tolist():
        deg = len(ins.get(v, []))
        want = deg if k == -1 else (k if deg else 0) if replace else min(deg, k)
        assert per_node[v] == want, (v, deg)
        mine = eid[dst == v].tolist()
        if not replace or k == -1:
            assert len(set(mine)) == len(mine)  # distinct in-edges (multi-edges count separately)
    # node-major, in the order of `nodes`
    firsts = [v for i, v in enumerate(dst.tolist()) if i == 0 or dst[i - 1] != v]
    assert firsts == [v for v in nodes.tolist() if per_node[v]]


def regular_graph(num_targets: int, deg: int, multi: bool = False):
    """Targets ``0..T-1``, each with in-edges from ``deg`` distinct sources ``T..T+deg-1``."""
    t = torch.arange(num_targets).repeat_interleave(deg)
    s = num_targets + torch.arange(deg).repeat(num_targets)
    return torch.stack([s, t]), num_targets + deg


@pytest.mark.parametrize("deg,k", [(5, 2), (4, 3), (6, 5)])
def test_without_replacement_every_subset_is_equally_likely(deg, k):
    ei, n = regular_graph(4000, deg)
    topo = Topology.from_edge_index(ei, 0, n)
    nodes = torch.arange(4000)
    counts: Counter = Counter()
    for seed in range(3):
        src, dst, _ = sample_neighbors(topo, nodes, k, seed=seed)
        for row in src.view(4000, k).tolist():
            counts[frozenset(row)] += 1
    subsets = math.comb(deg, k)
    assert len(counts) == subsets
    expected = 12000 / subsets
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < chi2_crit(subsets - 1), (chi2, counts)


def test_without_replacement_inclusion_frequency_is_k_over_deg_on_a_hub():
    deg, k, targets = 300, 15, 2000
    ei, n = regular_graph(targets, deg)
    topo = Topology.from_edge_index(ei, 0, n)
    src, _, _ = sample_neighbors(topo, torch.arange(targets), k, seed=11)
    hits = torch.bincount(src - targets, minlength=deg).double()  # (deg,)
    p = k / deg
    mean, sd = targets * p, math.sqrt(targets * p * (1 - p))
    assert (hits - mean).abs().max() < 5 * sd  # per neighbour: binomial bound
    chi2 = float(((hits - mean) ** 2 / mean).sum())
    assert chi2 < chi2_crit(deg - 1)
    # a sampler taking the first k in-edges fails both bounds
    first = torch.bincount(torch.arange(k).repeat(targets), minlength=deg).double()
    assert (first - mean).abs().max() > 5 * sd


def test_with_replacement_counts_exact_and_draws_uniform():
    deg, k, targets = 7, 4, 5000
    ei, n = regular_graph(targets, deg)
    extra = torch.tensor([[0], [n]])  # one more target with one in-edge, and a target with none
    ei = torch.cat([ei, extra], 1)
    topo = Topology.from_edge_index(ei, 0, n + 2)
    nodes = torch.cat([torch.arange(targets), torch.tensor([n, n + 1])])
    src, dst, eid = sample_neighbors(topo, nodes, k, replace=True, seed=5)
    assert src.numel() == (targets + 1) * k
    assert (dst == n + 1).sum() == 0 and (src[dst == n] == 0).all()
    hits = torch.bincount(src[dst < targets] - targets, minlength=deg).double()
    expected = targets * k / deg
    chi2 = float(((hits - expected) ** 2 / expected).sum())
    assert chi2 < chi2_crit(deg - 1)
    # repeats happen (with replacement) and at the birthday rate: P(4 draws of 7 all distinct) = 120/343
    rows = src[: targets * k].view(targets, k)
    distinct = (rows.sort(1).values.diff(1) != 0).all(1).double().mean().item()
    assert abs(distinct - 120 / 343) < 0.03


def test_sample_of_a_node_ignores_the_rest_of_the_batch_and_its_order():
    ei, n = random_graph(n=60, e=400, seed=2, isolated=(5,))
    topo = Topology.from_edge_index(ei, 0, n)
    for replace in (False, True):
        batch = torch.randperm(n, generator=torch.Generator().manual_seed(0))
        src, dst, eid = sample_neighbors(topo, batch, 4, replace=replace, seed=9, hop=1)
        for v in (0, 7, 33, 59):
            s1, _, e1 = sample_neighbors(topo, torch.tensor([v]), 4, replace=replace, seed=9, hop=1)
            assert torch.equal(e1, eid[dst == v]) and torch.equal(s1, src[dst == v])


def test_same_seed_same_sample_other_seed_or_hop_differs():
    ei, n = random_graph(n=60, e=600, seed=3, isolated=())
    topo = Topology.from_edge_index(ei, 0, n)
    nodes = torch.arange(n)
    a = sample_neighbors(topo, nodes, 3, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a, sample_neighbors(topo, nodes, 3, seed=1)))
    for kw in ({"seed": 2}, {"seed": 1, "hop": 1}):
        b = sample_neighbors(topo, nodes, 3, **kw)
        assert not torch.equal(a[2], b[2])


def test_edge_order_and_partial_ownership_do_not_change_the_sample():
    ei, n = random_graph(n=50, e=300, seed=4)
    eid = torch.arange(ei.shape[1])
    topo = Topology.from_edge_index(ei, 0, n)
    perm = torch.randperm(ei.shape[1], generator=torch.Generator().manual_seed(1))
    shuffled = Topology.from_edge_index(ei[:, perm], 0, n, eid[perm])
    lo, hi = 20, 35
    keep = (ei[1] >= lo) & (ei[1] < hi)
    part = Topology.from_edge_index(ei[:, keep], lo, hi - lo, eid[keep])
    nodes = torch.arange(lo, hi)
    for replace, k in ((False, 2), (True, 3), (False, -1)):
        want = sample_neighbors(topo, nodes, k, replace=replace, seed=6)
        for other in (shuffled, part):
            got = sample_neighbors(other, nodes, k, replace=replace, seed=6)
            assert all(torch.equal(x, y) for x, y in zip(want, got))


# -- several hops -----------------------------------------------------------------------------
def khop_reference(edge_index, seeds, hops):
    """Brute force: the nodes within ``hops`` in-hops of the seeds and every in-edge explored."""
    ins = in_edges(edge_index)
    seen, frontier, eids = set(seeds), list(seeds), set()
    for _ in range(hops):
        new = []
        for v in frontier:
            for e in ins.get(v, []):
                eids.add(e)
                u = int(edge_index[0, e])
                if u not in seen:
                    seen.add(u)
                    new.append(u)
        frontier = new
    return seen, eids


@pytest.mark.parametrize("hops", [1, 2, 3])
@pytest.mark.parametrize("name", list(TINY))
def test_fanout_all_is_the_exact_khop_in_neighbourhood(name, hops):
    ei, n = TINY[name]
    seeds = [v for v in range(n) if v % 2 == 0][:2]
    sg = whole(ei, n, fanouts=[-1] * hops).sample(torch.tensor(seeds))
    nodes, eids = khop_reference(ei, seeds, hops)
    assert set(sg.node_ids.tolist()) == nodes and sg.num_nodes == len(nodes)
    assert set(sg.eid.tolist()) == eids and sg.num_edges == len(eids)


def test_fanout_all_on_a_larger_graph_matches_brute_force():
    ei, n = random_graph(n=200, e=700, seed=5, isolated=(3, 4))
    seeds = [0, 3, 17, 150]
    sg = whole(ei, n, fanouts=[-1, -1]).sample(torch.tensor(seeds))
    nodes, eids = khop_reference(ei, seeds, 2)
    assert set(sg.node_ids.tolist()) == nodes and sorted(sg.eid.tolist()) == sorted(eids)


@pytest.mark.parametrize("replace", [False, True])
def test_subgraph_layout(replace):
    ei, n = random_graph(n=120, e=600, seed=6, isolated=(7,))
    s = NeighborSampler(ei, n, [3, 2, 2], replace=replace, seed=4)
    seeds = torch.tensor([9, 7, 100, 3, 55])
    sg = s.sample(seeds)
    assert torch.equal(sg.node_ids[:5], seeds) and sg.num_seeds == 5
    assert torch.unique(sg.node_ids).numel() == sg.num_nodes
    assert sg.num_sampled_nodes[0] == 5 and sum(sg.num_sampled_nodes) == sg.num_nodes
    assert sum(sg.num_sampled_edges) == sg.num_edges == sg.edge_index.shape[1]
    # local ids name the global edges
    g_src, g_dst = sg.node_ids[sg.edge_index[0]], sg.node_ids[sg.edge_index[1]]
    assert torch.equal(g_src, ei[0, sg.eid]) and torch.equal(g_dst, ei[1, sg.eid])
    # hop h samples the nodes first discovered at hop h - 1; new nodes by first appearance
    bounds = torch.tensor([0] + sg.num_sampled_nodes).cumsum(0).tolist()
    e0 = 0
    for h, m in enumerate(sg.num_sampled_edges):
        dst = sg.edge_index[1, e0 : e0 + m]
        src = sg.edge_index[0, e0 : e0 + m]
        assert ((dst >= bounds[h]) & (dst < bounds[h + 1])).all()
        fresh = [u for u in src.tolist() if u >= bounds[h + 1]]
        assert list(dict.fromkeys(fresh)) == list(range(bounds[h + 1], bounds[h + 2]))
        e0 += m
    # the same sample as calling sample_neighbors hop by hop
    src0, dst0, eid0 = sample_neighbors(s.topo, seeds, 3, replace=replace, seed=4, hop=0)
    assert torch.equal(sg.eid[: sg.num_sampled_edges[0]], eid0)
    # a seed's hop-0 sample does not depend on the other seeds
    alone = s.sample(torch.tensor([100]))
    assert torch.equal(alone.eid[: alone.num_sampled_edges[0]], eid0[dst0 == 100])


def test_determinism_and_seeds():
    ei, n = random_graph(n=100, e=800, seed=7)
    s = NeighborSampler(ei, n, [4, 3], seed=1)
    seeds = torch.tensor([1, 2, 3, 50])
    a, b = s.sample(seeds), s.sample(seeds)
    assert torch.equal(a.node_ids, b.node_ids) and torch.equal(a.edge_index, b.edge_index) and torch.equal(a.eid, b.eid)
    c = s.sample(seeds, seed=2)
    assert not torch.equal(a.eid, c.eid)
    d = NeighborSampler(ei, n, [4, 3], seed=2).sample(seeds)
    assert torch.equal(c.eid, d.eid)


def test_sort_free_id_map_is_reset_between_calls_and_after_errors():
    ei, n = random_graph(n=80, e=400, seed=8)
    s = NeighborSampler(ei, n, [3, 3])
    first = s.sample(torch.tensor([4, 5]))

    def broken(nodes, fanout, *, hop, replace, seed):
        if hop == 1:
            raise RuntimeError("boom")
        return s.sample_fn(nodes, fanout, hop=hop, replace=replace, seed=seed)

    with pytest.raises(RuntimeError, match="boom"):
        sample_subgraph(broken, torch.tensor([4, 5]), [3, 3], id_map=s._id_map)
    assert (s._id_map.table == -1).all() and s._id_map.size == 0
    again = s.sample(torch.tensor([4, 5]))
    assert torch.equal(first.node_ids, again.node_ids) and torch.equal(first.edge_index, again.edge_index)
    fresh = sample_subgraph(s.sample_fn, torch.tensor([4, 5]), [3, 3], num_nodes=n)
    assert torch.equal(first.node_ids, fresh.node_ids)


def test_sample_fn_is_called_every_hop_even_with_an_empty_frontier():
    ei, n = E((1, 0)), 3  # seed 2 has no in-edges
    s = NeighborSampler(ei, n, [2, 2, 2])
    calls = []

    def counting(nodes, fanout, *, hop, replace, seed):
        calls.append((hop, nodes.tolist()))
        return s.sample_fn(nodes, fanout, hop=hop, replace=replace, seed=seed)

    sg = sample_subgraph(counting, torch.tensor([2]), [2, 2, 2], num_nodes=n)
    assert calls == [(0, [2]), (1, []), (2, [])]
    assert sg.num_edges == 0 and sg.node_ids.tolist() == [2] and sg.edge_index.shape == (2, 0)
    empty = s.sample(torch.zeros(0, dtype=torch.long))
    assert empty.num_nodes == 0 and empty.num_sampled_nodes == [0, 0, 0, 0]


def test_layers_run_on_the_subgraph_and_fanout_all_matches_the_whole_graph():
    torch.manual_seed(0)
    ei, n = random_graph(n=90, e=500, seed=9)
    x = torch.randn(n, 6, dtype=torch.float64)
    seeds = torch.tensor([5, 40, 41, 89])
    sg = NeighborSampler(ei, n, [-1]).sample(seeds)
    sage = GraphSageConv(4, in_channels=6).double()
    want = sage(x, ei)[seeds]
    got = sage(x[sg.node_ids], sg.edge_index)[: sg.num_seeds]
    torch.testing.assert_close(got, want)
    sg2 = NeighborSampler(ei, n, [3, 2]).sample(seeds)
    gcn = GCNConv(4, in_channels=6).double()
    out = gcn(x[sg2.node_ids], sg2.edge_index)  # relabelled: equals the global graph cut to the sample
    torch.testing.assert_close(out, gcn(x, ei[:, sg2.eid])[sg2.node_ids])
    out[: sg2.num_seeds].sum().backward()
    assert all(p.grad is not None for p in gcn.parameters())


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fanouts,match",
    [
        pytest.param([], "non-empty list", id="empty"),
        pytest.param([0], r"fanouts\[0\] must be an int >= 1 or -1", id="zero"),
        pytest.param([5, -2], r"fanouts\[1\] must be an int >= 1 or -1", id="minus-two"),
        pytest.param([1.5], r"fanouts\[0\]", id="float"),
        pytest.param([True], r"fanouts\[0\]", id="bool"),
        pytest.param("15", "non-empty list", id="string"),
        pytest.param(15, "non-empty list", id="int"),
    ],
)
def test_bad_fanouts(fanouts, match):
    ei, n = TINY["path"]
    with pytest.raises(ValueError, match=match):
        NeighborSampler(ei, n, fanouts)


def test_bad_seeds_and_graphs():
    ei, n = TINY["path"]
    s = NeighborSampler(ei, n, [2])
    with pytest.raises(ValueError, match="distinct"):
        s.sample(torch.tensor([1, 2, 1]))
    with pytest.raises(ValueError, match=r"node ids in \[0, 5\)"):
        s.sample(torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"node ids in \[0, 5\)"):
        s.sample(torch.tensor([-1]))
    with pytest.raises(ValueError, match="1-D tensor"):
        s.sample(torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="integer tensor"):
        s.sample(torch.tensor([0.0]))
    with pytest.raises(ValueError, match="num_nodes or an id_map"):
        sample_subgraph(s.sample_fn, torch.tensor([0]), [2])
    with pytest.raises(ValueError, match="edge_index refers to node 4 but num_nodes is 3"):
        NeighborSampler(ei, 3, [2])
    with pytest.raises(ValueError, match="num_nodes must be an int >= 0"):
        NeighborSampler(ei, -1, [2])
    with pytest.raises(ValueError, match="seed must be an int"):
        NeighborSampler(ei, n, [2], seed=0.5)
    with pytest.raises(ValueError, match=r"owned range \[2, 4\)"):
        sample_neighbors(Topology.from_edge_index(E((0, 2), (1, 3)), 2, 2), torch.tensor([1]), 2)
    with pytest.raises(ValueError, match=r"target 3 is outside the owned range \[0, 2\)"):
        Topology.from_edge_index(E((0, 1), (1, 3)), 0, 2)
    with pytest.raises(ValueError, match=r"eid must be a tensor \[E\] = \[2\]"):
        Topology.from_edge_index(E((0, 1), (1, 0)), eid=torch.arange(3))
    with pytest.raises(ValueError, match=r"must be a tensor \[2, E\]"):
        Topology.from_edge_index(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="must be int64"):
        Topology.from_edge_index(torch.zeros(2, 2, dtype=torch.int32))
    with pytest.raises(ValueError, match="fanout must be an int >= 1 or -1"):
        sample_neighbors(s.topo, torch.tensor([0]), 0)
    with pytest.raises(ValueError, match="num_nodes must be >= 0"):
        IdMap(-1)
