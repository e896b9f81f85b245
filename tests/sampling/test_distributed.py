"""Distributed sampling and feature fetching on real processes (gloo, spawned ranks).

The central check, as for the halo exchange: every rank's sampled subgraph equals the one a single
process sampling the whole graph returns (node ids, edges, edge ids, identical), including a rank
owning no node and a rank with no seeds; fetched rows equal the original rows with and without a
cache, and the cache counters are exact; the rows of the sampled edges, fetched from the ranks
storing them (the owners of their targets), equal the original edge rows.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from distgnn.sampling import (DistributedSampleFn, EdgeFeatureFetcher, FeatureFetcher, NeighborSampler, Topology,
                              access_counts)
from tests.graphs import random_graph
from tests.launch.spawn import run_ranks

N, E_ = 40, 260
CASES = [  # fanouts, replace, seed
    ([3, 2], False, 0),
    ([2, 2, 2], True, 5),
    ([-1, 2], False, 9),
]


def graph():
    return random_graph(n=N, e=E_, seed=21, isolated=(0, 39))


def seeds_of(rank: int, world: int, case: int) -> torch.Tensor:
    """Different, sometimes empty, seed sets per rank and case."""
    if case == 1 and rank == world - 1:
        return torch.zeros(0, dtype=torch.long)
    g = torch.Generator().manual_seed(100 * case + rank)
    return torch.randperm(N, generator=g)[: 3 + rank]


def features(trailing=(3,)):
    n = 1
    for d in trailing:
        n *= d
    return (torch.arange(N * n, dtype=torch.float64).view((N,) + trailing) * 0.5 - 7.0)


def edge_rows():
    e = graph()[0].shape[1]
    return torch.arange(e * 2, dtype=torch.float32).view(e, 2) - 100.0


def _rank(rank: int, world: int, starts: list[int]):
    from distgnn.sampling import in_degree_hotness, sample_subgraph

    ei, n = graph()
    lo, hi = starts[rank], starts[rank + 1]
    keep = (ei[1] >= lo) & (ei[1] < hi)
    topo = Topology.from_edge_index(ei[:, keep], lo, hi - lo, torch.arange(ei.shape[1])[keep])
    fn = DistributedSampleFn(topo, starts)
    out = {"subgraphs": [], "fetch": []}
    for case, (fanouts, replace, seed) in enumerate(CASES):
        sg = sample_subgraph(fn, seeds_of(rank, world, case), fanouts, replace=replace, seed=seed, num_nodes=fn.num_nodes)
        out["subgraphs"].append((sg.node_ids.numpy(), sg.edge_index.numpy(), sg.eid.numpy(), sg.num_sampled_nodes))
    out["requests_sent"], out["edges_received"] = fn.requests_sent, fn.edges_received

    node_ids = [torch.from_numpy(s[0]) for s in out["subgraphs"]]
    # features: no cache, then a cache by in-degree, then one by access counts (trailing shape 2x3)
    x = features()[lo:hi]
    plain = FeatureFetcher(x, starts)
    out["plain"] = [plain.fetch(ids).numpy() for ids in node_ids]
    out["plain_stats"] = (plain.hits, plain.misses, plain.bytes_fetched, plain.bytes_saved, plain.cache_fill_bytes)
    hot = in_degree_hotness(topo, starts)
    out["hotness"] = hot.numpy()
    x6 = features((2, 3))[lo:hi]
    row_bytes = 6 * 8
    for name, score in (("degree", hot), ("counts", access_counts(node_ids, N))):
        f = FeatureFetcher(x6, starts, cache_mb=5 * row_bytes / 2**20, hotness=score)
        rows = [f.fetch(ids).numpy() for ids in node_ids]
        out[name] = (rows, f.cache_ids.numpy(), f.hits, f.misses, f.bytes_fetched, f.bytes_saved, f.hit_rate,
                     f.cache_fill_bytes, score.numpy())
    # edge rows: each stored with its target's owner, fetched by global edge id (an empty list too)
    e_all = edge_rows()
    ef = EdgeFeatureFetcher(e_all[keep], torch.arange(ei.shape[1])[keep], starts)
    subs = out["subgraphs"]
    out["edge_rows"] = [ef.fetch(torch.from_numpy(s[2]), torch.from_numpy(s[0][s[1][1]])).numpy() for s in subs]
    out["edge_bytes"] = ef.bytes_fetched
    out["edge_empty"] = ef.fetch(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)).shape
    # the fetch of an empty id list still takes part in the collective
    out["empty"] = plain.fetch(torch.zeros(0, dtype=torch.long)).shape
    try:
        DistributedSampleFn(Topology.from_edge_index(ei[:, :0], lo, hi - lo + 1), starts)  # one node too many
    except ValueError as exc:
        out["range_error"] = str(exc)
    errors = []
    for kwargs in ({"x": x, "cache_mb": 1.0}, {"x": features()[: hi - lo + 1]}, {"x": x, "cache_mb": -1.0}):
        try:
            FeatureFetcher(kwargs.pop("x"), starts, **kwargs)
        except ValueError as exc:
            errors.append(str(exc))
    out["fetch_errors"] = errors
    return out


@pytest.mark.multiprocess
@pytest.mark.parametrize(
    "starts",
    [pytest.param([0, 23, N], id="2-ranks"), pytest.param([0, 0, 17, N], id="3-ranks-one-empty")],
)
def test_distributed_equals_single_process_and_fetch_is_exact(tmp_path, starts):
    world = len(starts) - 1
    results = run_ranks(_rank, world, tmp_path, starts, timeout=90)
    ei, n = graph()
    for rank, res in enumerate(results):
        lo, hi = starts[rank], starts[rank + 1]
        for case, (fanouts, replace, seed) in enumerate(CASES):
            want = NeighborSampler(ei, n, fanouts, replace=replace, seed=seed).sample(seeds_of(rank, world, case))
            node_ids, edge_index, eid, counts = res["subgraphs"][case]
            assert np.array_equal(node_ids, want.node_ids.numpy()), (rank, case)
            assert np.array_equal(edge_index, want.edge_index.numpy()), (rank, case)
            assert np.array_equal(eid, want.eid.numpy()), (rank, case)
            assert counts == want.num_sampled_nodes
        assert res["requests_sent"] > 0 and res["edges_received"] > 0

        ids_all = [s[0] for s in res["subgraphs"]]
        remote = [ids[(ids < lo) | (ids >= hi)] for ids in ids_all]
        x, x6 = features().numpy(), features((2, 3)).numpy()
        for ids, got in zip(ids_all, res["plain"]):
            assert np.array_equal(got, x[ids])
        n_remote = sum(r.size for r in remote)
        assert res["plain_stats"] == (0, n_remote, n_remote * 24, 0, 0)
        assert np.array_equal(res["hotness"], torch.bincount(ei[1], minlength=N).numpy())

        for name in ("degree", "counts"):
            rows, cache_ids, hits, misses, fetched, saved, rate, fill, score = res[name]
            for ids, got in zip(ids_all, rows):
                assert np.array_equal(got, x6[ids])
            # the cache holds the 5 hottest remote nodes (score > 0), sorted
            assert np.all((cache_ids < lo) | (cache_ids >= hi)) and np.all(np.diff(cache_ids) > 0)
            cand = np.array([v for v in range(N) if not lo <= v < hi and score[v] > 0])
            assert cache_ids.size == min(5, cand.size) and fill == cache_ids.size * 48
            if cache_ids.size and cand.size > cache_ids.size:
                left = np.setdiff1d(cand, cache_ids)
                assert score[cache_ids].min() >= score[left].max()
            want_hits = sum(int(np.isin(r, cache_ids).sum()) for r in remote)
            assert (hits, misses) == (want_hits, n_remote - want_hits)
            assert (fetched, saved) == ((n_remote - want_hits) * 48, want_hits * 48)
            assert rate == pytest.approx(want_hits / n_remote if n_remote else 0.0)
            if name == "counts" and cand.size:
                assert hits > 0  # the pre-pass cache sees the nodes it was built from
        e_all = edge_rows().numpy()
        for (ids, edge_index, eid, _), got in zip(res["subgraphs"], res["edge_rows"]):
            assert np.array_equal(got, e_all[eid])
        sub_dst = [s[0][s[1][1]] for s in res["subgraphs"]]
        assert res["edge_bytes"] == sum(int(((d < lo) | (d >= hi)).sum()) for d in sub_dst) * 8
        assert res["edge_empty"] == (0, 2)
        assert res["empty"] == (0, 3)
        assert len(res["fetch_errors"]) == 3
        assert "a cache needs hotness [N] = [40]" in res["fetch_errors"][0]
        assert f"owns {hi - lo} nodes, so x must be [{hi - lo}, *]" in res["fetch_errors"][1]
        assert "cache_mb must be >= 0" in res["fetch_errors"][2]
        assert res["range_error"] == (
            f"DistributedSampleFn: rank {rank} owns [{lo}, {hi}) by starts, but the topology covers [{lo}, {hi + 1})"
        )


@pytest.mark.parametrize(
    "starts,match",
    [
        pytest.param([0, 5], r"world_size \+ 1 = 3 entries", id="too-short"),
        pytest.param([1, 5, 9], "start at 0 and never decrease", id="not-from-zero"),
        pytest.param([0, 5, 4], "start at 0 and never decrease", id="decreasing"),
    ],
)
def test_bad_starts(starts, match):
    from distgnn.sampling.distributed import check_starts

    with pytest.raises(ValueError, match=match):
        check_starts(starts, 2)


def test_needs_a_process_group():
    ei, n = graph()
    topo = Topology.from_edge_index(ei, 0, n)
    with pytest.raises(RuntimeError, match="initialised torch.distributed process group"):
        DistributedSampleFn(topo, [0, n])
    with pytest.raises(RuntimeError, match="initialised torch.distributed process group"):
        FeatureFetcher(features(), [0, n])
