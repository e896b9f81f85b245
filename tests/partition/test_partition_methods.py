"""The partitioning methods: METIS against the raw pymetis call, stream against random, ..."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pymetis
import pytest

from distgnn.partition import (
    MetisPartitioner, ParquetEdges, PartitionError, RandomPartitioner, RangePartitioner, StreamPartitioner,
    get_method, graph_input, partition, reassemble,
)
from distgnn.partition._metis import symmetric_csr
from distgnn.partition.methods import water_fill

from .conftest import make_graph


def _cut(data, part) -> float:
    s, d = data.edge_index.numpy()
    return float((part[s] != part[d]).mean())


def _raw_pymetis(data, k, seed=0):
    """The plain pymetis k-way call on the graph built the textbook way (sets per vertex)."""
    adj = [set() for _ in range(data.num_nodes)]
    for u, v in data.edge_index.T.tolist():
        if u != v:
            adj[u].add(v)
            adj[v].add(u)
    opts = pymetis.Options()
    opts.seed = seed
    return pymetis.part_graph(k, adjacency=[sorted(a) for a in adj], recursive=False, options=opts)


@pytest.mark.parametrize("k", [2, 4, 8])
def test_metis_cut_equals_raw_pymetis_kway(cora, k, tmp_path):
    raw = _raw_pymetis(cora, k)
    m = partition(cora, k, tmp_path / "out", method="metis", balance="none", seed=0)
    assert m.quality["metis_objective"] == raw.edge_cuts
    # the same partition, part ids included: read the owners back from the nodes map
    _, new_to_old = reassemble(tmp_path / "out")
    part = np.empty(cora.num_nodes, dtype=np.int64)
    starts = [p.node_start for p in m.parts] + [m.num_nodes]
    for p in range(k):
        part[new_to_old[starts[p]:starts[p + 1]].numpy()] = p
    assert part.tolist() == list(raw.vertex_part)
    # Cora is symmetric without duplicates: every cut pair is two directed cut edges
    assert m.quality["edge_cut"] == 2 * raw.edge_cuts


def test_metis_is_kway_not_recursive_bisection(cora):
    # pymetis's default for <= 8 parts is recursive bisection; we must get the k-way answer
    kway = _raw_pymetis(cora, 4)
    opts = pymetis.Options()
    rb = pymetis.part_graph(4, adjacency=pymetis.CSRAdjacency(*symmetric_csr([cora.edge_index.numpy()], 2708, 10556)),
                            options=opts)
    ours = MetisPartitioner().assign(graph_input(cora), 4)
    assert ours.quality["metis_objective"] == kway.edge_cuts != rb.edge_cuts
    sizes = np.bincount(ours.part, minlength=4)
    assert sizes.max() / sizes.mean() <= 1.031  # METIS's default 3% imbalance


def test_symmetric_csr_is_the_simple_undirected_graph():
    src = np.array([0, 1, 1, 2, 2, 3, 0])
    dst = np.array([1, 0, 2, 2, 0, 0, 1])  # 0-1 twice (and reversed), self-loop 2-2
    xadj, adj = symmetric_csr([(src, dst)], 4, len(src))
    assert xadj.tolist() == [0, 3, 5, 7, 8]
    assert adj.tolist() == [1, 2, 3, 0, 2, 0, 1, 0]


def test_metis_multi_constraint_balances_training_nodes(small_sbm, tmp_path):
    # training nodes = one community: balancing nodes alone puts them (almost) all in one part
    g = small_sbm.with_(train_mask=small_sbm.y == 0)
    none = partition(g, 3, tmp_path / "none", method="metis", balance="none")
    train = partition(g, 3, tmp_path / "train", method="metis", balance="train")
    assert none.quality["train_balance"] > 2.0
    assert train.quality["train_balance"] <= 1.1
    assert train.quality["node_balance"] <= 1.05


def test_metis_edge_balance_on_a_skewed_graph(tmp_path):
    from distgnn.data import rmat

    g = rmat(num_nodes=4096, num_edges=60000, seed=1)
    none = partition(g, 4, tmp_path / "none", method="metis", balance="none")
    edges = partition(g, 4, tmp_path / "edges", method="metis", balance="edges")
    assert none.quality["edge_balance"] > 1.3
    assert edges.quality["edge_balance"] <= 1.1 and edges.quality["node_balance"] <= 1.1


def test_stream_cut_clearly_below_random_on_sbm(small_sbm):
    g = graph_input(small_sbm)
    rand = _cut(small_sbm, RandomPartitioner().assign(g, 6, seed=0).part)
    one = StreamPartitioner().assign(g, 6, seed=0).part
    four = StreamPartitioner(passes=4).assign(g, 6, seed=0).part
    assert rand == pytest.approx(5 / 6, abs=0.02)
    assert _cut(small_sbm, one) < 0.8 * rand
    assert _cut(small_sbm, four) < _cut(small_sbm, one)
    for part in (one, four):
        sizes = np.bincount(part, minlength=6)
        assert sizes.max() <= np.ceil(1.05 * 3000 / 6) + 1


def test_stream_balances_edges_when_asked():
    from distgnn.data import rmat

    g = rmat(num_nodes=8192, num_edges=100000, seed=3)
    s, d = g.edge_index.numpy()
    deg = np.bincount(d, minlength=g.num_nodes)
    plain = StreamPartitioner().assign(graph_input(g), 4).part
    weighted = StreamPartitioner().assign(graph_input(g), 4, weights=deg).part
    eb = lambda p: np.bincount(p[d], minlength=4).max() / (len(d) / 4)  # noqa: E731
    assert eb(plain) > 1.5 and eb(weighted) < 1.15
    assert np.bincount(weighted, minlength=4).max() / (g.num_nodes / 4) < 1.15


def test_stream_reads_parquet_in_chunks_and_matches_in_memory(small_sbm, tmp_path):
    s, d = small_sbm.edge_index.numpy()
    path = tmp_path / "edges.parquet"
    pq.write_table(pa.table({"src": s, "dst": d}), path, row_group_size=4000)
    source = ParquetEdges(path)
    assert (source.num_nodes, source.num_edges) == (small_sbm.num_nodes, small_sbm.num_edges)
    sizes = [len(c) for c in source.chunks(5000)]
    assert max(sizes) <= 5000 and sum(sizes) == small_sbm.num_edges and len(sizes) > 1
    method = StreamPartitioner(chunk_rows=5000)
    from_disk = method.assign(graph_input(small_sbm).__class__(source), 4, seed=7).part
    in_memory = method.assign(graph_input(small_sbm), 4, seed=7).part
    assert np.array_equal(from_disk, in_memory)


def test_stream_is_deterministic_and_seeded(small_sbm):
    g = graph_input(small_sbm)
    a = StreamPartitioner().assign(g, 4, seed=1).part
    assert np.array_equal(a, StreamPartitioner().assign(g, 4, seed=1).part)
    assert not np.array_equal(a, StreamPartitioner(hubs_first=False).assign(g, 4, seed=2).part)


def test_random_sizes_differ_by_at_most_one_and_follow_the_seed(small_sbm):
    g = graph_input(small_sbm)
    a = RandomPartitioner().assign(g, 7, seed=3).part
    sizes = np.bincount(a, minlength=7)
    assert sizes.max() - sizes.min() <= 1
    assert np.array_equal(a, RandomPartitioner().assign(g, 7, seed=3).part)
    assert not np.array_equal(a, RandomPartitioner().assign(g, 7, seed=4).part)


def test_range_blocks_are_contiguous_and_balanced(tmp_path):
    g = make_graph([0, 1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8, 9], 10)
    m = partition(g, 3, tmp_path / "out", method="range", balance="none")
    assert [(p.node_start, p.node_end) for p in m.parts] == [(0, 3), (3, 6), (6, 10)]
    _, new_to_old = reassemble(tmp_path / "out")
    assert new_to_old.tolist() == list(range(10))  # range keeps the original ids


def test_range_with_weights_minimises_the_largest_share():
    w = np.array([10, 0, 0, 0, 0, 0, 0, 0, 0, 10])
    part = RangePartitioner().assign(graph_input(make_graph([], [], 10)), 2, weights=w).part
    assert part.tolist() == [0] * 5 + [1] * 5


@pytest.mark.parametrize("sizes, m, want", [
    ([0, 0, 0], 7, [3, 2, 2]),
    ([5, 0, 2], 4, [0, 3, 1]),
    ([5, 0, 2], 10, [0, 6, 4]),  # final sizes 5, 6, 6
    ([4, 4], 0, [0, 0]),
])
def test_water_fill(sizes, m, want):
    got = water_fill(np.array(sizes), m)
    assert got.sum() == m and got.tolist() == want


@pytest.mark.parametrize("kwargs, match", [
    pytest.param(dict(num_parts=11), "more parts than nodes", id="too-many-parts"),
    pytest.param(dict(num_parts=0), "num_parts must be an integer >= 1", id="zero-parts"),
    pytest.param(dict(halo_hops=0), "halo_hops must be an integer >= 1", id="zero-hops"),
    pytest.param(dict(method="kmeans"), "unknown method 'kmeans'", id="unknown-method"),
    pytest.param(dict(balance="memory"), "unknown balance 'memory'", id="unknown-balance"),
    pytest.param(dict(seed=-1), "seed must be a non-negative integer", id="negative-seed"),
])
def test_bad_arguments(kwargs, match, tmp_path):
    g = make_graph([0, 1], [1, 2], 10)
    args = dict(num_parts=2, out=tmp_path / "out") | kwargs
    with pytest.raises(PartitionError, match=match):
        partition(g, **args)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_balance_train_needs_a_train_mask(tmp_path):
    g = make_graph([0, 1], [1, 2], 4).with_(train_mask=None)
    with pytest.raises(PartitionError, match="balance='train' needs a train_mask"):
        partition(g, 2, tmp_path / "out", balance="train")


def test_a_custom_method_object(tmp_path):
    class EvenOdd:
        name = "even-odd"
        uses_weights = False

        def assign(self, graph, num_parts, *, weights=None, seed=0, progress=None):
            from distgnn.partition import Assignment

            return Assignment((np.arange(graph.num_nodes) % 2).astype(np.int32))

    g = make_graph([0, 1, 2, 3], [1, 2, 3, 0], 4)
    m = partition(g, 2, tmp_path / "out", method=EvenOdd())
    assert m.method == "even-odd" and m.quality["edge_cut"] == 4
    assert get_method("metis").name == "metis"

    class Broken(EvenOdd):
        def assign(self, graph, num_parts, **kw):
            from distgnn.partition import Assignment

            return Assignment(np.full(graph.num_nodes, 5, dtype=np.int32))

    with pytest.raises(PartitionError, match="part id outside"):
        partition(g, 2, tmp_path / "bad", method=Broken())
    assert not (tmp_path / "bad").exists()


def test_parquet_edges_without_statistics_and_with_list_features(tmp_path):
    s = np.array([0, 1, 2, 3, 9])
    d = np.array([1, 2, 3, 0, 4])
    feats = pa.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0], [9.0, 10.0]])
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"src": s, "dst": d, "w": feats}), path, write_statistics=False, row_group_size=2)
    src = ParquetEdges(path, edge_features="w")
    assert (src.num_nodes, src.num_edges) == (10, 5)  # max id found by a pass, without statistics
    assert src.edge_fields[0].shape == (2,)
    chunks = list(src.chunks(2))
    assert [c.start for c in chunks] == [0, 2, 4]
    assert np.array_equal(np.concatenate([c.attr for c in chunks]), np.arange(1, 11, dtype=np.float32).reshape(5, 2))


@pytest.mark.parametrize("table, kwargs, match", [
    pytest.param({"src": [0, 1], "dst": [1, 0], "feat_a": [1.0, float("nan")]}, {}, "NaN or infinite", id="nan-edge-feature"),
    pytest.param({"src": [0, 1], "dst": [1, 7]}, {"num_nodes": 4}, "node id 7 out of range", id="id-beyond-num-nodes"),
    pytest.param({"a": [0, 1], "dst": [1, 0]}, {}, "missing id column 'src'", id="no-src-column"),
    pytest.param({"src": [0.5, 1.0], "dst": [1, 0]}, {}, "must hold integer node ids", id="float-ids"),
    pytest.param({"src": [0, None], "dst": [1, 0]}, {}, "missing node id", id="null-id"),
    pytest.param({"src": [0, 1, 2], "dst": [1, 2**40, 0]}, {}, r"node id 1099511627776 \(column 'dst', row 1\) but "
                 r"only 3 edges", id="implausible-id"),
    pytest.param({"src": [0, 1], "dst": [1, 0], "features": [[1.0], [2.0]], "feat_a": [1.0, 2.0]}, {},
                 r"both a list column 'features' and scalar feature columns \(feat_a\)", id="ambiguous-features"),
])
def test_parquet_edges_bad_files(table, kwargs, match, tmp_path):
    from distgnn.data.dataset import DataError

    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table(table), path, write_statistics="null-id" not in str(table))
    with pytest.raises(DataError, match=match):
        for _ in ParquetEdges(path, **kwargs).chunks(1):
            pass


def test_parquet_edges_take_a_list_column_named_features(tmp_path):
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"src": [0, 1], "dst": [1, 0], "features": [[1.0, 2.0], [3.0, 4.0]]}), path)
    src = ParquetEdges(path)
    assert src.edge_fields[0].shape == (2,)
    assert np.array_equal(next(iter(src.chunks())).attr, np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))


def _graph_input(**columns):
    from distgnn.partition.sources import GraphEdges, GraphInput

    g = make_graph([0, 1, 2], [1, 2, 3], 4)
    base = {"features": g.x.numpy().copy(), "label": np.array([0, 1, 0, 1]),
            "train_mask": np.array([True, True, False, False])}
    base.update(columns)
    return GraphInput(GraphEdges(g), {k: v for k, v in base.items() if v is not None}, "gi")


@pytest.mark.parametrize("columns, match", [
    pytest.param({"features": np.array([[0.0, 1, 2], [np.inf, 0, 0], [0, 0, 0], [0, 0, 0]])},
                 r"^gi: features have NaN or infinite values \(first at node 1\)$", id="inf-features"),
    pytest.param({"label": np.array([0, 1, 0, 4])}, r"^gi: label 4 at node 3 lies outside \[-1, 4\)", id="label-range"),
    pytest.param({"label": np.array([0.0, 1, 0, 1])}, r"^gi: labels must be integer class ids, got float64",
                 id="label-float"),
    pytest.param({"label": np.array([0, -1, 0, 1])}, r"^gi: node 1 is in train_mask but has no label \(-1\)$",
                 id="masked-unlabelled"),
    pytest.param({"train_mask": np.array([True, False])}, r"^gi: node column 'train_mask' has 2 rows, the graph has 4",
                 id="short-column"),
])
def test_graph_input_values_are_checked(columns, match, tmp_path):
    from distgnn.data.dataset import DataError

    with pytest.raises(DataError, match=match):
        partition(_graph_input(**columns), 2, tmp_path / "out", method="range")
    assert list(tmp_path.iterdir()) == []


def test_a_graph_larger_than_memory_is_refused_before_allocating(tmp_path, monkeypatch):
    from distgnn.partition import pipeline

    monkeypatch.setattr(pipeline, "_physical_memory", lambda: 1000 * 49 - 1)
    with pytest.raises(PartitionError, match=r"^tiny: 1000 nodes need about 0\.0 GiB of memory to partition, more than "
                                             r"this machine's 0\.0 GiB \(is the node count right"):
        partition(make_graph([0, 1], [1, 2], 1000), 2, tmp_path / "out", method="range")
    monkeypatch.setattr(pipeline, "_physical_memory", lambda: 1000 * 49)
    partition(make_graph([0, 1], [1, 2], 1000), 2, tmp_path / "out", method="range")


def test_more_than_eight_parts(small_sbm, tmp_path):
    # halo bit sets span two bytes per node from 9 parts on
    from distgnn.partition import verify

    m = partition(small_sbm, 11, tmp_path / "out", method="stream", halo_hops=2)
    assert m.num_parts == 11 and verify(tmp_path / "out").num_files == 1 + 11 * 4
