"""partition -> load every part -> reassemble gives back exactly the original graph."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from distgnn.partition import load_manifest, load_part, partition, reassemble
from distgnn.partition.format import part_dir

from .conftest import assert_round_trip, make_graph

METHODS = ["metis", "random", "range", "stream"]


@pytest.mark.parametrize("method", METHODS)
def test_tiny_graphs_round_trip(tiny, method, tmp_path):
    k = min(3, tiny.num_nodes)
    partition(tiny, k, tmp_path / "out", method=method, balance="none", seed=1)
    assert_round_trip(tiny, tmp_path / "out")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("hops", [1, 2])
def test_cora_round_trip(cora, method, hops, tmp_path):
    m = partition(cora, 4, tmp_path / "out", method=method, halo_hops=hops)
    assert (m.num_nodes, m.num_edges, m.num_parts) == (2708, 10556, 4)
    assert_round_trip(cora, tmp_path / "out")


@pytest.mark.parametrize("method", METHODS)
def test_sbm_round_trip_with_more_parts(small_sbm, method, tmp_path):
    partition(small_sbm, 7, tmp_path / "out", method=method, balance="train", halo_hops=3)
    assert_round_trip(small_sbm, tmp_path / "out")


def test_part_without_edges_and_isolated_nodes(tmp_path):
    # every edge points into nodes 0..3; with `range` the second part owns 4..7, which have none
    g = make_graph([4, 5, 6, 7, 0], [0, 1, 2, 3, 1], 8, edge_features=2)
    m = partition(g, 2, tmp_path / "out", method="range", balance="none")
    assert [p.num_edges for p in m.parts] == [5, 0]
    assert [p.num_halo for p in m.parts] == [4, 0]
    empty = load_part(tmp_path / "out", 1)
    assert empty.edge_index.shape == (2, 0) and empty.eid.shape == (0,) and empty.edge_attr.shape == (0, 2)
    assert empty.halo_ids.numel() == 0
    assert empty.in_degree.tolist() == [0, 0, 0, 0] and empty.out_degree.tolist() == [1, 1, 1, 1]
    assert_round_trip(g, tmp_path / "out")


def test_one_part_holds_everything(cora, tmp_path):
    m = partition(cora, 1, tmp_path / "out", method="metis")
    assert m.parts[0].num_edges == cora.num_edges and m.parts[0].num_halo == 0
    assert m.quality["edge_cut"] == 0
    assert_round_trip(cora, tmp_path / "out")


def test_as_many_parts_as_nodes(tmp_path):
    g = make_graph([0, 1, 2, 3], [1, 2, 3, 0], 4)
    m = partition(g, 4, tmp_path / "out", method="random", balance="none")
    assert [p.num_nodes for p in m.parts] == [1, 1, 1, 1]
    assert m.quality["edge_cut"] == 4
    assert_round_trip(g, tmp_path / "out")


def test_load_part_fields(cora, tmp_path):
    partition(cora, 3, tmp_path / "out", method="metis", seed=0)
    m = load_manifest(tmp_path / "out")
    _, new_to_old = reassemble(tmp_path / "out")
    in_deg = torch.bincount(cora.edge_index[1], minlength=cora.num_nodes)
    for k in range(3):
        p = load_part(tmp_path / "out", k)
        lo, hi = m.parts[k].node_start, m.parts[k].node_end
        old = new_to_old[lo:hi]
        assert (p.part_id, p.num_parts, p.node_start, p.node_end) == (k, 3, lo, hi)
        assert (p.num_nodes_global, p.num_edges_global) == (2708, 10556)
        assert p.x.dtype == torch.float32 and p.x.shape == (hi - lo, 1433)
        assert torch.equal(p.x, cora.x[old]) and torch.equal(p.y, cora.y[old])
        assert torch.equal(p.train_mask, cora.train_mask[old])
        assert torch.equal(p.in_degree, in_deg[old])
        assert p.edge_index.dtype == torch.long and p.edge_index.shape == (2, m.parts[k].num_edges)
        assert bool(((p.edge_index[1] >= lo) & (p.edge_index[1] < hi)).all())
        assert bool((p.eid[1:] > p.eid[:-1]).all())  # ascending original edge ids
        # the stored edge is the original edge relabelled
        assert torch.equal(new_to_old[p.edge_index], cora.edge_index[:, p.eid])
        assert p.halo_edge_index.shape == (2, 0)
        assert repr(p).startswith(f"Part({k}/3")
    with pytest.raises(Exception, match="part 3 does not exist"):
        load_part(tmp_path / "out", 3)


def test_ids_are_contiguous_per_part_and_follow_original_order(small_sbm, tmp_path):
    m = partition(small_sbm, 5, tmp_path / "out", method="random", seed=4)
    _, new_to_old = reassemble(tmp_path / "out")
    starts = [p.node_start for p in m.parts] + [m.num_nodes]
    assert starts[0] == 0 and all(a <= b for a, b in zip(starts, starts[1:]))
    for k in range(5):
        block = new_to_old[starts[k]:starts[k + 1]]
        assert bool((block[1:] > block[:-1]).all())  # original order kept inside a part
    files = sorted(m.files)
    assert files[0] == "nodes-map.parquet" and f"{part_dir(4)}/halo.parquet" in files


def test_edge_features_dtype_float64_kept(tmp_path):
    g = make_graph([0, 1, 2], [1, 2, 0], 3, edge_features=2)
    g = g.with_(x=g.x.double(), edge_attr=g.edge_attr.double())
    m = partition(g, 2, tmp_path / "out", method="range", balance="none")
    assert m.node_field("features").dtype == "float64" and m.edge_field("features").shape == (2,)
    assert_round_trip(g, tmp_path / "out")


def test_rmat_multi_edges_round_trip(tmp_path):
    from distgnn.data import rmat

    g = rmat(num_nodes=512, num_edges=6000, dedup=False, seed=2)
    ei = g.edge_index.numpy()
    assert len(np.unique(ei[0] * 512 + ei[1])) < g.num_edges  # really has duplicate edges
    for method in METHODS:
        partition(g, 4, tmp_path / method, method=method)
        assert_round_trip(g, tmp_path / method)
