"""``python -m distgnn.partition`` through ``main(argv)``: inputs, summary, verify, bad input."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from distgnn.data import apply_transform
from distgnn.partition import load_manifest, reassemble, verify
from distgnn.partition.cli import main

from .conftest import assert_round_trip


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cora_from_planetoid_then_verify(capsys, tmp_path, cora):
    rc, out, err = _run(capsys, "planetoid:cora", "--parts", 3, "--out", tmp_path / "cora3")
    assert rc == 0 and err == ""  # no progress bars when stderr is not a terminal
    m = load_manifest(tmp_path / "cora3")
    assert "partitioned 'cora' (2,708 nodes, 10,556 edges) into 3 parts with metis" in out
    for p in m.parts:
        assert f"[{p.node_start}, {p.node_end})" in out and f"{p.num_edges:,}" in out
    assert f"edge cut: {m.quality['edge_cut']:,} edges" in out and "peak memory" in out
    assert m.transforms == ("row-normalize",)  # the default for Planetoid, as in python -m distgnn.train
    assert_round_trip(apply_transform(cora, "row-normalize"), tmp_path / "cora3")
    rc, out, err = _run(capsys, "verify", tmp_path / "cora3")
    assert rc == 0 and out.startswith("ok:") and "3 parts, 2708 nodes, 10556 edges" in out


def test_help_explains_inputs_and_methods(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for words in ("planetoid:cora", "sbm:", "rmat:", ".npz", "--nodes", "stream", "--halo-hops", "--balance",
                  "--overwrite", "verify"):
        assert words in text
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    assert "--no-checksums" in capsys.readouterr().out


def test_module_entry_point(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    res = subprocess.run([sys.executable, "-m", "distgnn.partition", "sbm:num_nodes=400,avg_degree=4",
                          "--parts", "2", "--out", str(tmp_path / "o"), "-q"], capture_output=True, text=True, env=env)
    assert res.returncode == 0 and res.stdout == "", res.stderr
    assert load_manifest(tmp_path / "o").num_nodes == 400


@pytest.fixture(scope="module")
def files(tmp_path_factory, small_sbm):
    d = tmp_path_factory.mktemp("inputs")
    g = small_sbm
    s, e = g.edge_index.numpy()
    from distgnn.data import save_numpy

    save_numpy(g, d / "g.npz")
    ids = np.arange(g.num_nodes) * 7 + 100  # arbitrary ids, relabelled in node-table order
    pq.write_table(pa.table({"src": ids[s], "dst": ids[e]}), d / "edges.parquet", row_group_size=5000)
    pacsv.write_csv(pa.table({"src": ids[s], "dst": ids[e]}), d / "edges.csv")
    pq.write_table(pa.table({
        "id": ids, "features": pa.FixedSizeListArray.from_arrays(pa.array(g.x.numpy().ravel()), g.x.shape[1]),
        "label": g.y.numpy(), "train_mask": g.train_mask.numpy(), "val_mask": g.val_mask.numpy(),
        "test_mask": g.test_mask.numpy(),
    }), d / "nodes.parquet")
    pq.write_table(pa.table({"src": s, "dst": e, "feat_w": np.arange(len(s), dtype=np.float32)}),
                   d / "plain.parquet", row_group_size=5000)
    return d


def test_npz_input(capsys, tmp_path, files, small_sbm):
    rc, out, err = _run(capsys, files / "g.npz", "--parts", 4, "--out", tmp_path / "o", "--method", "range")
    assert rc == 0, err
    assert_round_trip(small_sbm, tmp_path / "o")


@pytest.mark.parametrize("edges", ["edges.parquet", "edges.csv"])
def test_edge_list_with_node_table(capsys, tmp_path, files, small_sbm, edges):
    rc, out, err = _run(capsys, files / edges, "--nodes", files / "nodes.parquet", "--features", "features",
                        "--parts", 3, "--out", tmp_path / "o", "--balance", "train")
    assert rc == 0, err
    # node-table order is the original order, so this is the sbm graph again
    assert_round_trip(small_sbm, tmp_path / "o")


def test_stream_reads_a_parquet_edge_list_without_loading_it(capsys, tmp_path, files, small_sbm, monkeypatch):
    import distgnn.data as data_mod

    def refuse(*a, **k):
        raise AssertionError("the edge list must be streamed, not loaded")

    monkeypatch.setattr(data_mod, "load_edge_list", refuse)
    rc, out, err = _run(capsys, files / "plain.parquet", "--method", "stream", "--parts", 4, "--out", tmp_path / "o",
                        "--chunk-rows", 3000, "--passes", 2, "--name", "sbm-stream")
    assert rc == 0, err
    m = load_manifest(tmp_path / "o")
    assert (m.name, m.method, m.num_edges, m.edge_field("features").shape) == ("sbm-stream", "stream", small_sbm.num_edges, (1,))
    back, _ = reassemble(tmp_path / "o", original_ids=True)
    assert np.array_equal(back.edge_index.numpy(), small_sbm.edge_index.numpy())
    assert np.array_equal(back.edge_attr[:, 0].numpy(), np.arange(small_sbm.num_edges, dtype=np.float32))
    assert back.x is None and verify(tmp_path / "o").num_parts == 4


@pytest.mark.parametrize("spec, nodes", [
    ("sbm:num_nodes=500,avg_degree=6,num_classes=3,seed=2", 500),
    ("rmat:num_nodes=1024,num_edges=5e3", 1024),
])
def test_generator_inputs(capsys, tmp_path, spec, nodes):
    rc, out, err = _run(capsys, spec, "--parts", 2, "--out", tmp_path / "o", "--halo-hops", 2, "--undirected")
    assert rc == 0, err
    m = load_manifest(tmp_path / "o")
    assert m.num_nodes == nodes and m.halo_hops == 2
    back, _ = reassemble(tmp_path / "o")
    pairs = set(map(tuple, back.edge_index.T.tolist()))
    assert all((v, u) in pairs for u, v in pairs)  # --undirected: every reverse edge is there


def test_repartition_a_partition(capsys, tmp_path, cora):
    assert _run(capsys, "planetoid:cora", "--parts", 2, "--out", tmp_path / "a", "--method", "random")[0] == 0
    rc, out, err = _run(capsys, tmp_path / "a", "--parts", 3, "--out", tmp_path / "b")
    assert rc == 0, err
    assert load_manifest(tmp_path / "b").transforms == ("row-normalize",)  # carried over, not applied twice
    assert_round_trip(apply_transform(cora, "row-normalize"), tmp_path / "b")


def test_overwrite_flag(capsys, tmp_path):
    args = ["sbm:num_nodes=300,avg_degree=4", "--parts", 2, "--out", tmp_path / "o", "-q"]
    assert _run(capsys, *args)[0] == 0
    rc, out, err = _run(capsys, *args)
    assert rc == 2 and "output directory exists and is not empty (pass --overwrite" in err
    assert _run(capsys, *args, "--overwrite")[0] == 0


def test_verify_cli_on_a_corrupted_partition(capsys, tmp_path):
    assert _run(capsys, "sbm:num_nodes=300,avg_degree=4", "--parts", 2, "--out", tmp_path / "o", "-q")[0] == 0
    path = tmp_path / "o" / "part-00000" / "edges.parquet"
    path.write_bytes(path.read_bytes()[:-10])
    rc, out, err = _run(capsys, "verify", tmp_path / "o")
    assert rc == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: verify failed: part-00000/edges.parquet:")
    rc, out, err = _run(capsys, "verify", tmp_path / "nowhere")
    assert rc == 1 and "cannot read the manifest" in err


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        pq.write_table(content, path)
    return path


def _bad_inputs(d):
    e2 = _write(d / "e2.parquet", pa.table({"src": [0, 1], "dst": [1, 0]}))
    nan = d / "nan.npz"
    np.savez(nan, edge_index=np.array([[0, 1], [1, 0]]), num_nodes=np.int64(2),
             x=np.array([[1.0], [np.nan]], dtype=np.float32))
    nonempty = d / "full"
    nonempty.mkdir()
    (nonempty / "x").write_text("x")
    dgl = d / "dglpart"
    dgl.mkdir()
    (dgl / "g.json").write_text(json.dumps({"graph_name": "g", "num_parts": 2}))
    return {
        "negative-id": ([_write(d / "neg.parquet", pa.table({"src": [0, -2], "dst": [1, 0]}))],
                        "neg.parquet: column 'src' has a negative node id"),
        "negative-id-stream": ([d / "neg.parquet", "--method", "stream"], "neg.parquet: column 'src' has a negative node id"),
        "id-out-of-range": ([_write(d / "oor.parquet", pa.table({"src": [0, 1], "dst": [1, 9]})), "--nodes",
                             _write(d / "n3.parquet", pa.table({"id": [0, 1, 2]}))],
                            "oor.parquet: column 'dst' names node 9 .* not in the node table"),
        "id-out-of-range-stream": ([d / "oor.parquet", "--method", "stream", "--num-nodes", 5],
                                   "oor.parquet: node id 9 out of range for num_nodes=5"),
        "duplicate-node-rows": ([e2, "--nodes", _write(d / "dup.parquet", pa.table({"id": [0, 1, 1]}))],
                                "dup.parquet: duplicate node id 1"),
        "nan-features": ([nan], "nan.npz: x has NaN or infinite values"),
        "feature-lengths": ([e2, "--nodes", _write(d / "len.parquet", pa.table({"id": [0, 1], "features": [[1.0, 2.0], [3.0]]})),
                             "--features", "features"], "len.parquet: feature rows of column 'features' have different lengths"),
        "more-parts-than-nodes": ([e2, "--parts", 3], "e2.parquet: cannot cut 2 nodes into 3 parts"),
        "non-empty-output": ([e2, "--out", nonempty], "full: output directory exists and is not empty"),
        "unreadable-file": ([_write(d / "junk.parquet", b"not parquet" * 20)], "junk.parquet: unreadable as Parquet"),
        "unreadable-file-stream": ([d / "junk.parquet", "--method", "stream"], "junk.parquet: unreadable as Parquet"),
        "missing-file": ([d / "nope.parquet"], "nope.parquet: file not found"),
        "unknown-input": ([d / "graph.txt"], "graph.txt: no such file or directory"),
        "dgl-without-dgl": ([dgl], "g.json: this is a DGL partition; reading it needs DGL"),
        "bad-generator-argument": (["sbm:bogus=3"], "sbm:bogus=3: .*unexpected keyword argument 'bogus'"),
        "passes-without-stream": ([e2, "--passes", 2], "--passes applies to --method stream only"),
        "train-balance-without-mask": ([e2, "--balance", "train"], "e2.parquet: --balance train needs a train mask"),
    }


BAD = ["negative-id", "negative-id-stream", "id-out-of-range", "id-out-of-range-stream", "duplicate-node-rows",
       "nan-features", "feature-lengths", "more-parts-than-nodes", "non-empty-output", "unreadable-file",
       "unreadable-file-stream", "missing-file", "unknown-input", "dgl-without-dgl", "bad-generator-argument",
       "passes-without-stream", "train-balance-without-mask"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_error_and_leaves_nothing(case, capsys, tmp_path):
    if case == "dgl-without-dgl" and importlib.util.find_spec("dgl") is not None:
        pytest.skip("dgl is installed")
    inputs = tmp_path / "in"
    inputs.mkdir()
    argv, match = _bad_inputs(inputs)[case]
    out_dir = tmp_path / "outs"
    out_dir.mkdir()
    argv = [str(a) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(out_dir / "o")]
    if "--parts" not in argv:
        argv += ["--parts", "2"]
    before = sorted(os.listdir(inputs))
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert re.search(match, err), err
    assert os.listdir(out_dir) == []  # no output, no temporary directory
    assert sorted(os.listdir(inputs)) == before
