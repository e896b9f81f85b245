"""Edge splits in the partition (link prediction): the same split and negatives as split_links."""
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

from distgnn.data.links import split_links
from distgnn.data.synthetic import sbm
from distgnn.partition import PartitionError, VerifyError, load_manifest, load_part, partition, reassemble, verify
from distgnn.partition.cli import main
from distgnn.partition.format import LINK_EDGES, Manifest
from distgnn.partition.reader import load_nodes_map

from .conftest import make_graph
from .edit import rewrite_shard

FR = (0.7, 0.1, 0.2)


@pytest.fixture(scope="module")
def graph():
    g = sbm(num_nodes=240, num_classes=3, avg_degree=6, num_features=4, num_val=40, num_test=40, seed=0)
    return g.with_(edge_attr=torch.arange(g.num_edges, dtype=torch.float32)[:, None])


def candidates(out, m):
    """All parts' link_edges in original ids, ordered by query (positive first)."""
    new_to_old = torch.from_numpy(load_nodes_map(out, m))
    parts = [load_part(out, k, m).link_edges for k in range(m.num_parts)]
    cols = {c: torch.cat([p[c] for p in parts]) for c in parts[0]}
    order = torch.argsort(cols["query"], stable=True)
    cols = {c: v[order] for c, v in cols.items()}
    cols["src"], cols["dst"] = new_to_old[cols["src"]], new_to_old[cols["dst"]]
    return cols


def assert_equals_split_links(out, data, fractions, seed, k):
    m = load_manifest(out)
    train, split = split_links(data, fractions, seed=seed, eval_negatives=k)
    whole, _ = reassemble(out, original_ids=True)
    assert torch.equal(whole.edge_index, train.edge_index)  # training edges, in input order, eid 0..E_train-1
    if data.edge_attr is not None:
        assert torch.equal(whole.edge_attr, train.edge_attr)
    got = candidates(out, m)
    for c in ("src", "dst", "split", "label", "query"):
        assert torch.equal(got[c], getattr(split, c)), c
    assert m.link_split == {"fractions": list(fractions), "seed": seed, "eval_negatives": k, "source": "hash",
                            "num_input_edges": data.num_edges, "counts": split.counts()}
    assert m.num_edges == split.counts()["train"]
    return m


@pytest.mark.parametrize("method, parts, hops", [("random", 3, 2), ("metis", 2, 1), ("range", 1, 1), ("stream", 4, 1)])
def test_partition_split_equals_split_links(tmp_path, graph, method, parts, hops):
    out = tmp_path / "p"
    partition(graph, parts, out, method=method, edge_split=FR, split_seed=3, eval_negatives=2, chunk_rows=97,
              halo_hops=hops)
    m = assert_equals_split_links(out, graph, FR, 3, 2)
    report = verify(out)
    assert report.num_files == 1 + (4 + (hops > 1)) * parts
    for k in range(parts):  # a positive's target is owned by its part; its negatives sit beside it
        le = load_part(out, k, m).link_edges
        pos = le["label"] == 1
        p = m.parts[k]
        assert bool(((le["dst"][pos] >= p.node_start) & (le["dst"][pos] < p.node_end)).all())
        # readable with plain pyarrow
        table = pq.read_table(out / f"part-{k:05d}" / LINK_EDGES)
        assert table.schema.names == ["src", "dst", "split", "label", "query"]
        assert table.schema.field("label").type == pa.int8() and table.num_rows == le["src"].numel()


def test_streamed_parquet_edges_split_like_the_table(tmp_path, graph):
    path = tmp_path / "edges.parquet"
    ei = graph.edge_index.numpy()
    pq.write_table(pa.table({"src": ei[0], "dst": ei[1]}), path, row_group_size=100)
    assert main([str(path), "--parts", "2", "--out", str(tmp_path / "p"), "--method", "stream", "--num-nodes",
                 str(graph.num_nodes), "--edge-split", "0.8,0.1,0.1", "--eval-negatives", "3", "--split-seed", "1",
                 "--chunk-rows", "150", "-q"]) == 0
    from distgnn.data import GraphData

    plain = GraphData(graph.edge_index, graph.num_nodes)
    assert_equals_split_links(tmp_path / "p", plain, (0.8, 0.1, 0.1), 1, 3)
    verify(tmp_path / "p")


def test_cli_prints_the_split_and_verify_passes(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["sbm:num_nodes=300,avg_degree=6,num_val=50,num_test=50", "--parts", "2", "--out", str(out),
                 "--edge-split", "0.85,0.05,0.10"]) == 0
    text = capsys.readouterr().out
    m = load_manifest(out)
    c = m.link_split["counts"]
    assert f"{c['train']:,} training edges, {c['val']:,} val and {c['test']:,} test edges with 1 negatives" in text
    assert main(["verify", str(out)]) == 0


def test_an_edge_split_keeps_raw_features_by_default(tmp_path):
    """Link prediction's default features are the raw ones in train and partition alike; an explicit
    --transform still applies (and is recorded)."""
    from distgnn.data import load_planetoid

    raw = load_planetoid("cora", normalize_features=False).x
    for extra, transforms in (([], ()), (["--transform", "row-normalize"], ("row-normalize",))):
        out = tmp_path / f"cora{len(extra)}"
        assert main(["planetoid:cora", "--parts", "2", "--out", str(out), "--edge-split", "0.85,0.05,0.10", "-q",
                     "--method", "range"] + extra) == 0
        assert load_manifest(out).transforms == transforms
        data, _ = reassemble(out, original_ids=True)
        assert torch.equal(data.x, raw) == (not extra)


def test_no_split_means_no_link_edges(tmp_path):
    g = make_graph([0, 1, 2], [1, 2, 0], 3)
    m = partition(g, 1, tmp_path / "p", method="range")
    assert m.link_split is None and "link_split" not in json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert load_part(tmp_path / "p", 0).link_edges is None


def test_zero_eval_negatives_and_an_all_training_split(tmp_path, graph):
    partition(graph, 2, tmp_path / "a", method="random", edge_split=FR, eval_negatives=0)
    assert_equals_split_links(tmp_path / "a", graph, FR, 0, 0)
    verify(tmp_path / "a")
    m = partition(graph, 2, tmp_path / "b", method="random", edge_split=(1.0, 0.0, 0.0))
    assert m.link_split["counts"] == {"train": graph.num_edges, "val": 0, "test": 0}
    verify(tmp_path / "b")


@pytest.fixture()
def split_out(tmp_path, graph):
    out = tmp_path / "p"
    partition(graph, 2, out, method="random", edge_split=FR, eval_negatives=1)
    return out


def _set(column, fn):
    def edit(table):
        i = table.schema.get_field_index(column)
        return table.set_column(i, table.schema.field(i), pa.array(fn(table.column(column).to_numpy()),
                                                                   table.schema.field(i).type))
    return edit


@pytest.mark.parametrize("edit, match", [
    pytest.param(_set("label", lambda a: np.where(np.arange(a.size) == 1, 2, a)),
                 "label must be 0 or 1 and split 1", id="label"),
    pytest.param(_set("split", lambda a: np.where(np.arange(a.size) == 0, 0, a)),
                 "label must be 0 or 1 and split 1", id="split-code"),
    pytest.param(_set("label", lambda a: np.roll(a, 1)), "one positive then its 1 negatives", id="order"),
    pytest.param(_set("dst", lambda a: np.full(a.size, 10_000)), r"a node id lies outside \[0, 240\)", id="range"),
    pytest.param(_set("split", lambda a: np.where(np.arange(a.size) == 1, 3 - a, a)),
                 "a negative's split differs from its positive's", id="negative-split"),
    pytest.param(_set("query", lambda a: a + 1), "query ids must number the validation/test edges", id="queries"),
    pytest.param(_set("src", lambda a: np.where(np.arange(a.size) == 1, (a + 1) % 240, a)),
                 "a negative's source differs", id="negative-source"),
    pytest.param(lambda t: t.slice(0, 2), "query ids must number the validation/test edges", id="dropped-rows"),
])
def test_verify_finds_broken_link_edges(split_out, edit, match):
    rewrite_shard(split_out, f"part-00000/{LINK_EDGES}", edit)
    with pytest.raises(VerifyError, match=match):
        verify(split_out)


def test_verify_finds_a_positive_in_the_wrong_part(split_out):
    m = load_manifest(split_out)
    p0 = m.parts[0]
    rewrite_shard(split_out, f"part-00000/{LINK_EDGES}",
                  _set("dst", lambda a: np.where(np.arange(a.size) == 0, p0.node_end, a)))
    with pytest.raises(VerifyError, match="a positive's target lies outside the part's range"):
        verify(split_out)


def test_verify_finds_wrong_counts(split_out):
    man = json.loads((split_out / "manifest.json").read_text())
    man["link_split"]["counts"]["val"] += 1
    (split_out / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(VerifyError, match="link_split.counts.val is .* but the shards hold"):
        verify(split_out)


def test_verify_finds_a_missing_link_edges_file(split_out):
    (split_out / f"part-00001/{LINK_EDGES}").unlink()
    with pytest.raises(VerifyError, match=f"part-00001/{LINK_EDGES}: missing"):
        verify(split_out)


def test_reader_refuses_out_of_range_link_edges(split_out):
    rewrite_shard(split_out, f"part-00000/{LINK_EDGES}", _set("label", lambda a: a + 5))
    with pytest.raises(PartitionError, match=f"part-00000/{LINK_EDGES}: label 6 .* lies outside \\[0, 2\\)"):
        load_part(split_out, 0)


@pytest.mark.parametrize("change, match", [
    pytest.param({"fractions": [0.5, 0.5]}, "link_split.fractions must be three numbers", id="fractions"),
    pytest.param({"seed": -1}, "link_split.seed must be an integer >= 0", id="seed"),
    pytest.param({"source": "magic"}, "link_split.source must be one of hash, column", id="source"),
    pytest.param({"counts": {"train": 1}}, "link_split.counts must hold integer train, val and test", id="counts"),
])
def test_manifest_link_split_is_checked(split_out, change, match):
    man = json.loads((split_out / "manifest.json").read_text())
    man["link_split"].update(change)
    with pytest.raises(PartitionError, match=match):
        Manifest.from_json(json.dumps(man))
    man["link_split"] = "yes"
    with pytest.raises(PartitionError, match="link_split must be an object"):
        Manifest.from_json(json.dumps(man))


@pytest.mark.parametrize("args, match", [
    pytest.param(["--edge-split", "0.9,0.2,0.1"], "error: --edge-split fractions must sum to 1", id="sum"),
    pytest.param(["--edge-split", "a,b,c"], "error: --edge-split must be three numbers", id="numbers"),
    pytest.param(["--eval-negatives", "2"], "error: --eval-negatives applies with --edge-split (or a split column) only", id="alone"),
    pytest.param(["--split-seed", "2"], "error: --split-seed applies with --edge-split (or a split column) only", id="seed-alone"),
    pytest.param(["--edge-split", "0.8,0.1,0.1", "--eval-negatives", "-1"],
                 "error: --eval-negatives must be an integer >= 0", id="negatives"),
    pytest.param(["--edge-split", "0.8,0.1,0.1", "--split-seed", "-1"], "error: --split-seed must be an integer >= 0",
                 id="seed"),
])
def test_cli_errors(tmp_path, capsys, args, match):
    assert main(["sbm:num_nodes=100,num_val=10,num_test=10", "--parts", "2", "--out", str(tmp_path / "x"), "-q"]
                + args) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("kind", ["strings", "ints"])
def test_split_column_of_a_parquet_edge_table(tmp_path, graph, kind):
    from distgnn.data import GraphData
    from distgnn.data.links import edge_split_codes

    ei = graph.edge_index.numpy()
    codes = edge_split_codes(ei[0], ei[1], FR, 5)
    values = np.array(["train", "val", "test"], dtype=object)[codes] if kind == "strings" else codes.astype(np.int64)
    path = tmp_path / "edges.parquet"
    pq.write_table(pa.table({"src": ei[0], "dst": ei[1], "split": values}), path, row_group_size=200)
    out = tmp_path / "p"
    assert main([str(path), "--parts", "2", "--out", str(out), "--method", "random", "--eval-negatives", "2",
                 "--split-seed", "5", "--num-nodes", str(graph.num_nodes), "-q"]) == 0
    m = load_manifest(out)
    assert m.link_split["source"] == "column"
    plain = GraphData(graph.edge_index, graph.num_nodes)
    train, split = split_links(plain, seed=5, eval_negatives=2, codes=codes)
    hashed_train, hashed = split_links(plain, FR, seed=5, eval_negatives=2)  # the column holds the hash's codes
    assert torch.equal(split.dst, hashed.dst) and torch.equal(train.edge_index, hashed_train.edge_index)
    got = candidates(out, m)
    for c in ("src", "dst", "split", "label", "query"):
        assert torch.equal(got[c], getattr(split, c)), c
    assert m.link_split["counts"] == split.counts()
    assert m.link_split["fractions"] == pytest.approx(list(np.bincount(codes, minlength=3) / codes.size), abs=1e-6)
    verify(out)


@pytest.mark.parametrize("values, args, match", [
    pytest.param(["train", "val", "dev"], [], r"column 'split': value 'dev' at row 2 is not train, val or test",
                 id="bad-name"),
    pytest.param([0, 1, 7], [], "column 'split': value 7 at row 2 is not 0 .train., 1 .val. or 2 .test.", id="bad-code"),
    pytest.param(["train", None, "test"], [], "column 'split' has no split at row 1", id="null"),
    pytest.param(["train", "val", "test"], ["--undirected"], "--undirected adds reverse edges that have no split",
                 id="undirected"),
])
def test_split_column_errors(tmp_path, capsys, values, args, match):
    path = tmp_path / "edges.parquet"
    pq.write_table(pa.table({"src": [0, 1, 2], "dst": [1, 2, 0], "split": values}), path)
    assert main([str(path), "--parts", "1", "--out", str(tmp_path / "p"), "--method", "range", "-q"] + args) == 2
    assert re.search(match, capsys.readouterr().err)


def test_split_links_codes_errors(graph):
    from distgnn.data import DataError

    with pytest.raises(DataError, match=r"split_links: codes must be \[E\] = \[\d+\] integers 0, 1 or 2"):
        split_links(graph, codes=np.zeros(3, dtype=np.int8))
    with pytest.raises(PartitionError, match="give edge_split .--edge-split. or a split column, not both"):
        partition(graph, 1, "unused", edge_split=FR, split_column=np.zeros(graph.num_edges, dtype=np.int8))


@pytest.mark.parametrize("kwargs, match", [
    pytest.param({"edge_split": (0.5, 0.5)}, "--edge-split must be three fractions", id="fractions"),
    pytest.param({"edge_split": FR, "eval_negatives": -1}, "--eval-negatives must be an integer >= 0", id="negatives"),
    pytest.param({"edge_split": FR, "split_seed": -2}, "--split-seed must be an integer >= 0", id="seed"),
    pytest.param({"split_column": np.array([0, 1, 5])}, r"the split column must hold \[E\] = \[\d+\] codes", id="column"),
])
def test_partition_api_errors_leave_nothing(tmp_path, graph, kwargs, match):
    with pytest.raises(PartitionError, match=match):
        partition(graph, 2, tmp_path / "out", **kwargs)
    assert list(tmp_path.iterdir()) == []
