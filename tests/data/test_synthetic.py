"""Synthetic generators: determinism, simple graphs, requested statistics, splits and arguments."""
from __future__ import annotations

import pytest
import torch

from distgnn.data import DataError, GraphData, rmat, sbm

FIELDS = ("edge_index", "x", "y", "train_mask", "val_mask", "test_mask")
SMALL_SBM = dict(num_nodes=3000, num_classes=4, avg_degree=8.0, train_per_class=10, num_val=300, num_test=600)


def _same(a: GraphData, b: GraphData) -> bool:
    return a.num_nodes == b.num_nodes and all(
        (getattr(a, f) is None and getattr(b, f) is None) or torch.equal(getattr(a, f), getattr(b, f)) for f in FIELDS
    )


def _keys(data: GraphData, flip: bool = False) -> torch.Tensor:
    src, dst = data.edge_index.flip(0) if flip else data.edge_index
    return src * data.num_nodes + dst


def _assert_simple(data: GraphData) -> None:
    src, dst = data.edge_index
    assert int((src == dst).sum()) == 0, "self-loop"
    assert len(_keys(data).unique()) == data.num_edges, "duplicate edge"


def _assert_symmetric(data: GraphData) -> None:
    assert torch.equal(_keys(data).sort().values, _keys(data, flip=True).sort().values)


def _assert_disjoint(*masks: torch.Tensor) -> None:
    total = torch.stack(masks).sum(dim=0)
    assert int(total.max()) <= 1


# ----------------------------------------------------------------------------- SBM
def test_sbm_deterministic():
    a, b, c = sbm(**SMALL_SBM, seed=3), sbm(**SMALL_SBM, seed=3), sbm(**SMALL_SBM, seed=4)
    assert _same(a, b)
    assert not torch.equal(a.y, c.y) and not torch.equal(a.x, c.x)
    assert a.num_edges != c.num_edges or not torch.equal(a.edge_index, c.edge_index)


def test_sbm_defaults_statistics():
    data = sbm()
    assert (data.num_nodes, data.num_features, data.num_classes) == (10_000, 32, 5)
    assert data.x.dtype == torch.float32 and data.y.dtype == torch.long
    _assert_simple(data)
    _assert_symmetric(data)
    assert 9.9 <= data.num_edges / data.num_nodes <= 10.0  # avg_degree, less the few duplicates removed
    assert torch.bincount(data.y[data.train_mask]).tolist() == [20] * 5
    assert (int(data.val_mask.sum()), int(data.test_mask.sum())) == (500, 1000)
    _assert_disjoint(data.train_mask, data.val_mask, data.test_mask)
    # Classes are uniform: each holds 2000 +- 5 sigma.
    assert all(abs(n - 2000) < 5 * 40 for n in torch.bincount(data.y).tolist())


@pytest.mark.parametrize("homophily", [0.0, 0.3, 0.8, 1.0])
def test_sbm_homophily(homophily):
    data = sbm(**SMALL_SBM, homophily=homophily, seed=1)
    src, dst = data.edge_index
    measured = float((data.y[src] == data.y[dst]).float().mean())
    assert abs(measured - homophily) < 0.05


def test_sbm_directed():
    data = sbm(**SMALL_SBM, undirected=False)
    _assert_simple(data)
    assert 7.9 <= data.num_edges / data.num_nodes <= 8.0
    reverse_present = torch.isin(_keys(data, flip=True), _keys(data))
    assert float(reverse_present.float().mean()) < 0.05  # sparse random graph: few reciprocal edges


def _nearest_centroid_accuracy(data: GraphData, x: torch.Tensor) -> float:
    train, test = data.train_mask, data.test_mask
    centroids = torch.stack([x[train & (data.y == c)].mean(0) for c in range(data.num_classes)])
    pred = torch.cdist(x[test], centroids).argmin(1)
    return float((pred == data.y[test]).float().mean())


def test_sbm_features_need_the_graph():
    """Features alone classify poorly; two rounds of neighbour averaging (a 2-layer GCN's view) work well."""
    data = sbm(seed=2)
    centroid_gaps = torch.pdist(torch.stack([data.x[data.y == c].mean(0) for c in range(5)]))
    assert torch.allclose(centroid_gaps, torch.ones(10), atol=0.35)  # centroids ~1 apart (documented)
    src, dst = data.edge_index
    deg = (1 + torch.bincount(dst, minlength=data.num_nodes)).unsqueeze(1)
    agg = data.x
    for _ in range(2):
        agg = agg.clone().index_add_(0, dst, agg[src]) / deg  # mean over self + neighbours
    alone, smoothed = _nearest_centroid_accuracy(data, data.x), _nearest_centroid_accuracy(data, agg)
    assert alone < 0.4
    assert smoothed > 0.85


def test_sbm_split_clipped_for_small_class():
    # 60 nodes in 6 classes: some classes have fewer than 9 nodes, so they give all they have.
    data = sbm(num_nodes=60, num_classes=6, avg_degree=3.0, train_per_class=9, num_val=0, num_test=0, seed=5)
    counts = torch.bincount(data.y, minlength=6)
    assert torch.equal(torch.bincount(data.y[data.train_mask], minlength=6), counts.clamp_max(9))
    assert bool((counts < 9).any())


def test_sbm_split_shrinks_on_small_graph(caplog):
    data = sbm(num_nodes=1000, seed=1)  # 100 train; 500 val + 1000 test do not fit in the other 900
    sizes = [int(m.sum()) for m in (data.train_mask, data.val_mask, data.test_mask)]
    assert sizes == [100, 300, 600]
    _assert_disjoint(data.train_mask, data.val_mask, data.test_mask)
    assert "using 300 and 600" in caplog.text


@pytest.mark.parametrize(
    "kwargs, match",
    [
        pytest.param({"num_nodes": -1}, r"num_nodes must be an int >= 0, got -1", id="negative-nodes"),
        pytest.param({"num_classes": 0}, r"num_classes must be an int >= 1", id="zero-classes"),
        pytest.param({"num_nodes": 3, "num_classes": 4}, r"num_classes=4 exceeds num_nodes=3", id="classes>nodes"),
        pytest.param({"homophily": 1.5}, r"homophily must lie in \[0, 1\], got 1.5", id="homophily"),
        pytest.param({"avg_degree": -2.0}, r"avg_degree must be >= 0", id="avg-degree"),
        pytest.param({"feature_noise": -1.0}, r"feature_noise must be >= 0", id="noise"),
        pytest.param({"num_features": 2.5}, r"num_features must be an int >= 0, got 2.5", id="float-features"),
        pytest.param({"num_nodes": 50, "train_per_class": 50}, r"sbm: no nodes left for validation/test after "
                     r"the training nodes \(0 left\); lower train_per_class", id="no-nodes-for-val-test"),
    ],
)
def test_sbm_argument_errors(kwargs, match):
    with pytest.raises(DataError, match=match):
        sbm(**kwargs)


# ----------------------------------------------------------------------------- R-MAT
def test_rmat_deterministic():
    kw = dict(num_nodes=2**12, num_edges=20_000, num_features=4, num_classes=3)
    a, b, c = rmat(**kw, seed=7), rmat(**kw, seed=7), rmat(**kw, seed=8)
    assert _same(a, b)
    assert not torch.equal(a.edge_index, c.edge_index) and not torch.equal(a.x, c.x)


def test_rmat_simple_heavy_tailed():
    data = rmat(num_nodes=2**11, num_edges=20_000)
    assert data.num_edges == 20_000 and data.num_nodes == 2048
    _assert_simple(data)
    assert torch.equal(_keys(data), _keys(data).sort().values)
    deg = torch.bincount(data.edge_index.flatten(), minlength=data.num_nodes).float()
    assert float(deg.max()) > 20 * float(deg.mean())
    assert data.x is None and data.y is None and data.train_mask is None


def test_rmat_quadrant_probabilities():
    """On 2 nodes (one level) the four (src, dst) pairs appear with probabilities a, b, c, d."""
    data = rmat(num_nodes=2, num_edges=200_000, a=0.5, b=0.25, c=0.15, d=0.1, dedup=False)
    freq = torch.bincount(_keys(data), minlength=4).float() / data.num_edges
    assert torch.allclose(freq, torch.tensor([0.5, 0.25, 0.15, 0.1]), atol=0.005)


def test_rmat_non_power_of_two():
    data = rmat(num_nodes=1000, num_edges=8000, seed=1)
    assert data.num_nodes == 1000 and data.num_edges == 8000
    assert int(data.edge_index.max()) < 1000 and int(data.edge_index.max()) > 900  # resampled, not clipped
    _assert_simple(data)


def test_rmat_undirected():
    data = rmat(num_nodes=2**10, num_edges=5000, undirected=True)
    _assert_simple(data)
    _assert_symmetric(data)
    assert 5000 < data.num_edges <= 10_000


def test_rmat_without_dedup_keeps_multi_edges():
    data = rmat(num_nodes=2**6, num_edges=5000, dedup=False)
    assert data.num_edges == 5000
    assert len(_keys(data).unique()) < 5000  # 64 nodes, 5000 draws: duplicates and loops remain
    assert int((data.edge_index[0] == data.edge_index[1]).sum()) > 0


def test_rmat_dense_dedup_exact():
    data = rmat(num_nodes=16, num_edges=200)  # 200 of the 240 non-loop pairs of 16 nodes
    assert data.num_edges == 200
    _assert_simple(data)


def test_rmat_gives_up_when_edges_cannot_be_drawn():
    # a=1: every draw is the self-loop 0 -> 0, which dedup removes.
    with pytest.raises(DataError, match=r"rmat: could not draw num_edges=1 distinct edges in 64 rounds"):
        rmat(num_nodes=4, num_edges=1, a=1.0, b=0.0, c=0.0, d=0.0)


def test_rmat_features_labels_split():
    data = rmat(num_nodes=1000, num_edges=4000, num_features=6, num_classes=4)
    assert data.x.shape == (1000, 6) and data.x.dtype == torch.float32
    assert set(data.y.unique().tolist()) == {0, 1, 2, 3}
    sizes = [int(m.sum()) for m in (data.train_mask, data.val_mask, data.test_mask)]
    assert sizes == [600, 200, 200]
    _assert_disjoint(data.train_mask, data.val_mask, data.test_mask)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        pytest.param({"a": 0.6}, r"a\+b\+c\+d must equal 1", id="sum"),
        pytest.param({"a": 1.1, "b": -0.1, "c": 0.0, "d": 0.0}, r"a must lie in \[0, 1\]", id="probability"),
        pytest.param({"num_nodes": 0}, r"num_nodes must be an int >= 1, got 0", id="zero-nodes"),
        pytest.param({"num_edges": -5}, r"num_edges must be an int >= 0, got -5", id="negative-edges"),
        pytest.param({"num_nodes": 4, "num_edges": 13}, r"num_edges=13 exceeds the 12 distinct", id="too-dense"),
        pytest.param({"num_nodes": 4, "num_classes": 5}, r"num_classes=5 exceeds num_nodes=4", id="classes"),
        pytest.param({"num_features": -1}, r"num_features must be an int >= 0", id="features"),
    ],
)
def test_rmat_argument_errors(kwargs, match):
    with pytest.raises(DataError, match=match):
        rmat(**kwargs)
