"""Halo and degree invariants, checked against brute force on the original graph."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from distgnn.partition import load_manifest, load_part, partition, reassemble

from .conftest import brute_force_halo, make_graph


def _new_edges(data, out) -> np.ndarray:
    _, new_to_old = reassemble(out)
    old_to_new = torch.empty_like(new_to_old)
    old_to_new[new_to_old] = torch.arange(len(new_to_old))
    return old_to_new[data.edge_index].numpy()  # [2, E] in new ids, column j = edge j


@pytest.mark.parametrize("method", ["metis", "random", "stream"])
def test_halo_is_exactly_the_foreign_sources(cora, method, tmp_path):
    partition(cora, 4, tmp_path / "out", method=method, seed=2)
    m = load_manifest(tmp_path / "out")
    edges = _new_edges(cora, tmp_path / "out")
    starts = np.array([p.node_start for p in m.parts] + [m.num_nodes])
    total = 0
    for k in range(4):
        p = load_part(tmp_path / "out", k)
        lo, hi = starts[k], starts[k + 1]
        owned_target = (edges[1] >= lo) & (edges[1] < hi)
        src = edges[0, owned_target]
        want = set(src[(src < lo) | (src >= hi)].tolist())
        assert set(p.halo_ids.tolist()) == want and len(p.halo_ids) == len(want)
        assert p.halo_ids.tolist() == sorted(want)  # one ring: sorted by id
        assert (p.halo_hop == 1).all()
        owner = np.searchsorted(starts, p.halo_ids.numpy(), side="right") - 1
        assert p.halo_owner.tolist() == owner.tolist() and (p.halo_owner != k).all()
        assert m.parts[k].num_halo == len(want)
        total += len(want)
    assert m.quality["halo_nodes"] == total
    cut = int((np.searchsorted(starts, edges[0], side="right") != np.searchsorted(starts, edges[1], side="right")).sum())
    assert m.quality["edge_cut"] == cut and m.quality["edge_cut_fraction"] == pytest.approx(cut / cora.num_edges, abs=1e-6)


@pytest.mark.parametrize("hops", [2, 3])
def test_multi_hop_halo_matches_breadth_first_search(hops, tmp_path):
    from distgnn.data import rmat

    g = rmat(num_nodes=300, num_edges=900, seed=5)
    g = g.with_(edge_attr=torch.arange(g.num_edges, dtype=torch.float32).reshape(-1, 1))
    partition(g, 3, tmp_path / "out", method="random", halo_hops=hops, seed=1)
    m = load_manifest(tmp_path / "out")
    edges = _new_edges(g, tmp_path / "out")
    for k in range(3):
        p = load_part(tmp_path / "out", k)
        rings, halo_eids = brute_force_halo(edges, m.parts[k].node_start, m.parts[k].node_end, hops)
        assert p.halo_ids.tolist() == [v for ring in rings for v in ring]
        assert p.halo_hop.tolist() == [h + 1 for h, ring in enumerate(rings) for _ in ring]
        assert sorted(p.halo_eid.tolist()) == sorted(halo_eids) and len(p.halo_eid) == len(halo_eids)
        assert m.parts[k].num_halo_edges == len(halo_eids)
        # halo edges are copies of the original edges, features included
        assert torch.equal(p.halo_edge_index, torch.from_numpy(edges[:, p.halo_eid.numpy()]))
        assert torch.equal(p.halo_edge_attr[:, 0], p.halo_eid.float())


def test_degrees_are_whole_graph_degrees(small_sbm, tmp_path):
    g = small_sbm
    # add self-loops and a duplicate edge: both count in the degrees
    extra = torch.tensor([[0, 1, 5], [0, 1, 7]])
    g = g.with_(edge_index=torch.cat([g.edge_index, extra, extra[:, 2:]], dim=1))
    partition(g, 5, tmp_path / "out", method="metis")
    _, new_to_old = reassemble(tmp_path / "out")
    in_deg = torch.bincount(g.edge_index[1], minlength=g.num_nodes)
    out_deg = torch.bincount(g.edge_index[0], minlength=g.num_nodes)
    for k in range(5):
        p = load_part(tmp_path / "out", k)
        old = new_to_old[p.node_start:p.node_end]
        assert torch.equal(p.in_degree, in_deg[old]) and torch.equal(p.out_degree, out_deg[old])
        # in-degree of an owned node = number of its edges stored in this part
        local = torch.bincount(p.edge_index[1] - p.node_start, minlength=p.num_nodes)
        assert torch.equal(local, p.in_degree)


def test_halo_of_directed_star(tmp_path):
    # leaves 1..7 point at the hub 0; `range` with 2 parts: part 0 = {0..3}, part 1 = {4..7}
    g = make_graph([1, 2, 3, 4, 5, 6, 7, 0], [0, 0, 0, 0, 0, 0, 0, 7], 8)
    partition(g, 2, tmp_path / "out", method="range", balance="none")
    p0, p1 = load_part(tmp_path / "out", 0), load_part(tmp_path / "out", 1)
    assert p0.halo_ids.tolist() == [4, 5, 6, 7] and p0.halo_owner.tolist() == [1, 1, 1, 1]
    assert p1.halo_ids.tolist() == [0] and p1.halo_owner.tolist() == [0]
    assert p0.in_degree.tolist() == [7, 0, 0, 0] and p1.out_degree.tolist() == [1, 1, 1, 1]
