"""Shared graphs and checks for the partitioner tests."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from distgnn.data.dataset import GraphData
from distgnn.partition import load_manifest, load_part, partition, reassemble, verify


def make_graph(src, dst, n, *, features=3, edge_features=0, seed=0, name="tiny") -> GraphData:
    """A GraphData with random features, labels, masks (and edge features) around an edge list."""
    g = torch.Generator().manual_seed(seed)
    ei = torch.tensor([list(src), list(dst)], dtype=torch.long).reshape(2, -1)
    y = torch.randint(0, 3, (n,), generator=g)
    y[::5] = -1  # some unlabelled nodes, in no mask
    train = torch.rand(n, generator=g) < 0.5
    return GraphData(
        edge_index=ei, num_nodes=n,
        x=torch.randn(n, features, generator=g) if features else None,
        y=y, train_mask=train & (y >= 0), val_mask=~train & (y >= 0), test_mask=torch.zeros(n, dtype=torch.bool),
        edge_attr=torch.randn(ei.shape[1], edge_features, generator=g) if edge_features else None,
        name=name,
    )


def _tiny_graphs() -> dict[str, GraphData]:
    return {
        "path": make_graph([0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6], 7),
        "star": make_graph([1, 2, 3, 4, 5, 6, 7], [0] * 7, 8, edge_features=2),
        "isolated-nodes": make_graph([0, 1, 5], [1, 0, 6], 9),
        "self-loop-multi-edge": make_graph([0, 0, 0, 1, 2, 2, 3], [0, 1, 1, 2, 3, 3, 0], 4, edge_features=1),
        "no-edges": make_graph([], [], 5),
        "two-cliques": make_graph(
            [i for i in range(6) for j in range(6) if i != j] + [6 + i for i in range(6) for j in range(6) if i != j] + [0],
            [j for i in range(6) for j in range(6) if i != j] + [6 + j for i in range(6) for j in range(6) if i != j] + [6],
            12, edge_features=2,
        ),
    }


TINY = _tiny_graphs()


@pytest.fixture(params=list(TINY), ids=list(TINY))
def tiny(request) -> GraphData:
    return TINY[request.param]


@pytest.fixture(scope="session")
def cora() -> GraphData:
    from distgnn.data import load_planetoid

    return load_planetoid("cora")


@pytest.fixture(scope="session")
def small_sbm() -> GraphData:
    from distgnn.data import sbm

    return sbm(num_nodes=3000, num_classes=6, avg_degree=10, seed=3)


def assert_round_trip(data: GraphData, out) -> None:
    """partition -> verify -> load every part -> reassemble gives back exactly ``data``."""
    verify(out)
    m = load_manifest(out)
    parts = [load_part(out, k) for k in range(m.num_parts)]
    assert sum(p.num_nodes for p in parts) == data.num_nodes
    assert sum(p.num_edges for p in parts) == data.num_edges
    back, new_to_old = reassemble(out, original_ids=True)
    assert back.num_nodes == data.num_nodes
    # edge j of the result is original edge j: the edge list comes back exactly, in order
    assert torch.equal(back.edge_index, data.edge_index)
    for attr in ("x", "y", "train_mask", "val_mask", "test_mask", "edge_attr"):
        a, b = getattr(data, attr), getattr(back, attr)
        assert (a is None) == (b is None), attr
        if a is not None:
            assert a.dtype == b.dtype and torch.equal(a, b), attr
    # in new ids, the parts' edges are, as a multiset, the relabelled original edges
    old_to_new = torch.empty_like(new_to_old)
    old_to_new[new_to_old] = torch.arange(len(new_to_old))
    stored = torch.cat([p.edge_index for p in parts], dim=1)
    assert sorted(map(tuple, old_to_new[data.edge_index].T.tolist())) == sorted(map(tuple, stored.T.tolist()))
    assert sorted(new_to_old.tolist()) == list(range(data.num_nodes))


def brute_force_halo(edges: np.ndarray, lo: int, hi: int, hops: int):
    """Rings and in-edge ids of the halo of new-id range [lo, hi), by plain Python BFS."""
    rings, seen = [], set(range(lo, hi))
    frontier = set(range(lo, hi))
    halo_eids = set()
    for h in range(1, hops + 1):
        if h > 1:
            halo_eids |= {e for e in range(edges.shape[1]) if int(edges[1, e]) in frontier}
        ring = {int(edges[0, e]) for e in range(edges.shape[1]) if int(edges[1, e]) in frontier} - seen
        rings.append(sorted(ring))
        seen |= ring
        frontier = ring
    return rings, halo_eids


@pytest.fixture(scope="module")
def good(tmp_path_factory, small_sbm):
    """A valid 3-part METIS partition (2 halo hops, small row groups) that tests copy, then damage."""
    out = tmp_path_factory.mktemp("good") / "out"
    partition(small_sbm, 3, out, method="metis", halo_hops=2, row_group_size=1000)
    return out


@pytest.fixture
def copy(good, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(good, dst)
    return dst
