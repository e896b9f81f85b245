"""Graphs built from partition shards (the runtime's path) on real processes, against the whole graph.

Parts come from the real partitioner (``write_parts``) with awkward assignments: 3 parts on 2
ranks (one rank merges two parts), a rank owning only isolated nodes, multi-edges and a
self-loop (reverse edges), and 4 ranks of which one owns nothing.
"""
from __future__ import annotations

import pytest
import torch

from distgnn.graph import GraphError, reverse_edge_ids
from distgnn.launch import assign_parts, build_graph, merge_parts
from distgnn.partition import load_manifest, load_nodes_map, load_part
from tests.graphs import ASSIGNMENTS, random_graph
from tests.launch.shards import INTERLEAVED_3, write_parts
from tests.launch.spawn import run_ranks


def test_assign_parts_consecutive_balanced_and_checked():
    assert assign_parts(4, 2) == [range(0, 2), range(2, 4)]
    assert assign_parts(3, 3) == [range(0, 1), range(1, 2), range(2, 3)]
    assert assign_parts(5, 1) == [range(0, 5)]
    # by weight: one heavy part gets a worker of its own
    assert assign_parts(4, 2, [100, 1, 1, 1]) == [range(0, 1), range(1, 4)]
    assert assign_parts(4, 2, [1, 1, 1, 100]) == [range(0, 3), range(3, 4)]
    for k in range(1, 9):
        for w in range(1, k + 1):
            blocks = assign_parts(k, w, [(7 * i) % 5 for i in range(k)])
            assert len(blocks) == w and all(len(b) >= 1 for b in blocks)
            assert [p for b in blocks for p in b] == list(range(k))
    with pytest.raises(ValueError, match="3 workers but the partition has only 2 parts"):
        assign_parts(2, 3)
    with pytest.raises(ValueError, match="at least one worker"):
        assign_parts(2, 0)


def shard_graph(parts_dir: str, rank: int, world_size: int, reverse: bool = True):
    """Rank ``rank``'s graph from the shards (as a worker builds it), node ids mapped back to the
    original ids so tests can index whole-graph tensors."""
    m = load_manifest(parts_dir)
    blocks = assign_parts(m.num_parts, world_size)
    starts = [m.parts[b[0]].node_start for b in blocks] + [m.num_nodes]
    shard = merge_parts([load_part(parts_dir, k, m) for k in blocks[rank]], rank, starts)
    g = build_graph(shard, reverse=reverse)
    new_to_old = torch.from_numpy(load_nodes_map(parts_dir, m))
    g.node_ids, g.halo_ids = new_to_old[g.node_ids], new_to_old[g.halo_ids]
    return g


def _rows(n, seed, width=3):
    return torch.randn(n, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _values_rank(rank, world_size, parts_dir):
    edge_index, n = random_graph(seed=16)
    g = shard_graph(parts_dir, rank, world_size)
    X, Ee = _rows(n, 1), _rows(edge_index.shape[1], 2)
    x = X[g.node_ids].requires_grad_()
    e = Ee[g.edge_ids].requires_grad_()
    src = g.gather_src(x)  # owned rows then halo rows
    torch.testing.assert_close(src, X[torch.cat([g.node_ids, g.halo_ids])], rtol=0, atol=0)
    r = reverse_edge_ids(edge_index, n)
    want = torch.where((r >= 0).view(-1, 1), Ee[r.clamp(min=0)], torch.zeros((), dtype=torch.float64))
    assert g.exchange._reverse is None, "the reverse-edge plan is built at the first gather_reverse, not at load"
    rev = g.gather_reverse(e)
    assert g.exchange._reverse is not None
    torch.testing.assert_close(rev, want[g.edge_ids], rtol=0, atol=0)
    # edges: exactly those whose target is owned, sources mapped to the right local rows
    loc = torch.cat([g.node_ids, g.halo_ids])
    got = torch.stack([loc[g.edge_index[0]], g.node_ids[g.edge_index[1]]])
    torch.testing.assert_close(got, edge_index[:, g.edge_ids], rtol=0, atol=0)
    # out-degree = scatter of per-edge ones onto the sources, in the whole graph
    deg = torch.bincount(edge_index[0], minlength=n).double()
    torch.testing.assert_close(g.out_degree(dtype=torch.float64), deg[g.node_ids], rtol=0, atol=0)
    ones = torch.ones(g.num_edges, dtype=torch.float64)
    torch.testing.assert_close(g.out_degree(ones), deg[g.node_ids], rtol=0, atol=0)  # through the exchange
    torch.testing.assert_close(g.in_degree(dtype=torch.float64),
                               torch.bincount(edge_index[1], minlength=n).double()[g.node_ids], rtol=0, atol=0)
    w_src, w_rev = _rows(src.shape[0], 10 + rank), _rows(rev.shape[0], 20 + rank)
    ((src * w_src).sum() + (rev * w_rev).sum()).backward()
    without = shard_graph(parts_dir, rank, world_size, reverse=False)
    with pytest.raises(GraphError, match="built without a reverse_plan"):
        without.gather_reverse(e.detach())
    return dict(nodes=g.node_ids.numpy(), halo=g.halo_ids.numpy(), edges=g.edge_ids.numpy(),
                w_src=w_src.numpy(), w_rev=w_rev.numpy(), gx=x.grad.numpy(), ge=e.grad.numpy())


@pytest.mark.multiprocess
@pytest.mark.parametrize("split,world_size", [("interleaved-3", 2), ("3-parts", 3), ("4-parts-one-empty", 4)],
                         ids=["3-parts-on-2-ranks", "3-parts-on-3-ranks", "4-ranks-one-owns-nothing"])
def test_shard_graph_values_and_gradients(tmp_path, split, world_size):
    edge_index, n = random_graph(seed=16)
    assignment = INTERLEAVED_3 if split == "interleaved-3" else ASSIGNMENTS[split]
    parts_dir = write_parts(tmp_path / "parts", edge_index, n, assignment)
    ranks = run_ranks(_values_rank, world_size, tmp_path, parts_dir, timeout=90)
    assert all(len(r["halo"]) for r in ranks if len(r["edges"])), "every rank with edges must have halo rows"
    if split == "interleaved-3":
        assert len(ranks[0]["nodes"]) == 8, "rank 0 must merge parts 0 and 1"
    # the ranks own every node once and store every edge once
    assert sorted(int(i) for r in ranks for i in r["nodes"]) == list(range(n))
    assert sorted(int(i) for r in ranks for i in r["edges"]) == list(range(edge_index.shape[1]))
    # gradients against autograd on the whole graph
    X = _rows(n, 1).requires_grad_()
    Ee = _rows(edge_index.shape[1], 2).requires_grad_()
    r = reverse_edge_ids(edge_index, n)
    rev = Ee[r.clamp(min=0)] * (r >= 0).view(-1, 1).double()
    loss = 0.0
    for res in ranks:
        loc = torch.cat([torch.from_numpy(res["nodes"]), torch.from_numpy(res["halo"])])
        loss = loss + (X[loc] * torch.from_numpy(res["w_src"])).sum()
        loss = loss + (rev[torch.from_numpy(res["edges"])] * torch.from_numpy(res["w_rev"])).sum()
    loss.backward()
    for res in ranks:
        torch.testing.assert_close(torch.from_numpy(res["gx"]), X.grad[torch.from_numpy(res["nodes"])])
        torch.testing.assert_close(torch.from_numpy(res["ge"]), Ee.grad[torch.from_numpy(res["edges"])])


def test_merge_parts_rejects_gaps(tmp_path):
    edge_index, n = random_graph(seed=16)
    parts_dir = write_parts(tmp_path / "parts", edge_index, n, ASSIGNMENTS["3-parts"])
    m = load_manifest(parts_dir)
    p0, p2 = load_part(parts_dir, 0, m), load_part(parts_dir, 2, m)
    with pytest.raises(ValueError, match="parts 0 and 2 are not consecutive"):
        merge_parts([p0, p2], 0, [0, n])
    with pytest.raises(ValueError, match="rank 1 holds no part"):
        merge_parts([], 1, [0, 5, n])
