"""The on-disk format, the verifier (good and corrupted shards) and atomic writing."""
from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distgnn.partition import Manifest, PartitionError, VerifyError, load_manifest, partition, verify
from distgnn.partition.format import SCHEMA_VERSION

from .conftest import make_graph
from .edit import rewrite_shard as _rewrite


def _edit_manifest(out, fn) -> None:
    man = json.loads((out / "manifest.json").read_text())
    fn(man)
    (out / "manifest.json").write_text(json.dumps(man))


def _set(table, name, values):
    i = table.schema.get_field_index(name)
    return table.set_column(i, table.schema.field(i), pa.array(values, type=table.schema.field(i).type))


def test_verify_passes_on_good_output(good):
    report = verify(good)
    assert (report.num_parts, report.num_nodes, report.num_files) == (3, 3000, 1 + 3 * 4)
    assert str(report).startswith("ok:")


def test_flipped_byte_is_caught(copy):
    path = copy / "part-00001" / "edges.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(VerifyError, match=r"part-00001/edges.parquet: sha256 mismatch"):
        verify(copy)


def test_truncated_file_is_caught(copy):
    path = copy / "part-00002" / "nodes.parquet"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(VerifyError, match=r"part-00002/nodes.parquet: 1000 bytes, manifest says \d+ \(truncated"):
        verify(copy)
    # without checksums the damage is still found when the file is read
    with pytest.raises(VerifyError, match="part-00002/nodes.parquet"):
        verify(copy, checksums=False)


def test_deleted_part_is_caught(copy):
    shutil.rmtree(copy / "part-00001")
    with pytest.raises(VerifyError, match=r"part-00001/nodes.parquet: missing"):
        verify(copy)


@pytest.mark.parametrize("edit, match", [
    pytest.param(lambda m: m.update(num_edges=m["num_edges"] + 1), "the parts hold", id="num-edges"),
    pytest.param(lambda m: m.update(num_nodes=m["num_nodes"] - 1), "part ranges cover", id="num-nodes"),
    pytest.param(lambda m: m["parts"][1].update(node_start=m["parts"][1]["node_start"] + 1), "owns", id="node-range"),
    pytest.param(lambda m: m["quality"].update(edge_cut=0), "quality.edge_cut is 0", id="edge-cut"),
    pytest.param(lambda m: m["quality"].update(halo_nodes=1), "quality.halo_nodes is 1", id="halo-nodes"),
    pytest.param(lambda m: m.update(schema_version=SCHEMA_VERSION + 1), "schema_version 2 is not supported", id="version"),
    pytest.param(lambda m: m.update(format="other"), "not a distgnn partition manifest", id="format"),
    pytest.param(lambda m: m["files"].pop("part-00000/halo.parquet"), "not listed in the manifest", id="unlisted-file"),
    pytest.param(lambda m: m["parts"][0].update(num_halo=1), r"rows, manifest says 1", id="halo-count"),
    pytest.param(lambda m: m["node_fields"][0].update(dtype="float64"), "column 'features' is", id="feature-dtype"),
])
def test_edited_manifest_is_caught(copy, edit, match):
    _edit_manifest(copy, edit)
    with pytest.raises(VerifyError, match=match):
        verify(copy)


def test_unparsable_manifest(copy):
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(VerifyError, match="manifest.json: not valid JSON"):
        verify(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(VerifyError, match="cannot read the manifest"):
        verify(copy)


def test_edge_at_the_wrong_owner_is_caught_even_with_good_checksums(copy):
    man = load_manifest(copy)
    foreign = man.parts[2].node_start  # a node part 0 does not own
    _rewrite(copy, "part-00000/edges.parquet",
             lambda t: _set(t, "dst", np.r_[foreign, t.column("dst").to_numpy()[1:]]))
    with pytest.raises(VerifyError, match=r"part-00000/edges.parquet: edge \d+ has target \d+, owned by part 2, not part 0"):
        verify(copy)


def test_edge_stored_twice_is_caught(copy):
    _rewrite(copy, "part-00001/edges.parquet", lambda t: pa.concat_tables([t, t.slice(0, 1)]))
    _edit_manifest(copy, lambda m: (m["parts"][1].update(num_edges=m["parts"][1]["num_edges"] + 1),
                                    m.update(num_edges=m["num_edges"] + 1)))
    with pytest.raises(VerifyError, match="part-00001/edges.parquet: edge ids are not strictly increasing"):
        verify(copy)


def test_incomplete_halo_is_caught(copy):
    _rewrite(copy, "part-00000/halo.parquet", lambda t: t.slice(1))
    _edit_manifest(copy, lambda m: m["parts"][0].update(num_halo=m["parts"][0]["num_halo"] - 1))
    with pytest.raises(VerifyError, match=r"part-00000/halo.parquet: halo incomplete: node \d+"):
        verify(copy)


def test_wrong_halo_owner_is_caught(copy):
    _rewrite(copy, "part-00000/halo.parquet",
             lambda t: _set(t, "owner", np.zeros(t.num_rows, dtype=np.int32)))
    with pytest.raises(VerifyError, match=r"part-00000/halo.parquet: halo node \d+ has owner 0, but part [12] owns it"):
        verify(copy)


def test_wrong_degree_is_caught(copy):
    _rewrite(copy, "part-00002/nodes.parquet",
             lambda t: _set(t, "out_degree", t.column("out_degree").to_numpy() + 1))
    with pytest.raises(VerifyError, match=r"part-00002/nodes.parquet: node \d+ has out_degree \d+, the whole graph gives"):
        verify(copy)


def test_missing_halo_edge_is_caught(copy):
    _rewrite(copy, "part-00001/halo_edges.parquet", lambda t: t.slice(1))
    _edit_manifest(copy, lambda m: m["parts"][1].update(num_halo_edges=m["parts"][1]["num_halo_edges"] - 1))
    with pytest.raises(VerifyError, match="part-00001/halo_edges.parquet: holds"):
        verify(copy)


def test_nodes_map_must_be_a_bijection(copy):
    _rewrite(copy, "nodes-map.parquet", lambda t: _set(t, "new_id", np.r_[1, t.column("new_id").to_numpy()[1:]]))
    with pytest.raises(VerifyError, match="nodes-map.parquet"):
        verify(copy)


# ------------------------------------------------------------------------------------ format
def test_manifest_json_round_trip(good):
    m = load_manifest(good)
    assert Manifest.from_json(m.to_json()) == m
    assert m.schema_version == SCHEMA_VERSION and m.halo_hops == 2
    assert [f.name for f in m.node_fields] == ["features", "label", "train_mask", "val_mask", "test_mask"]
    assert m.node_field("features").shape == (32,) and m.node_field("label").shape == ()
    assert set(m.files) == {"nodes-map.parquet"} | {
        f"part-0000{k}/{n}" for k in range(3) for n in ("nodes.parquet", "edges.parquet", "halo.parquet", "halo_edges.parquet")
    }
    for rel, info in m.files.items():
        data = (good / rel).read_bytes()
        assert info.sha256 == hashlib.sha256(data).hexdigest() and info.bytes == len(data)


def test_shards_are_plain_arrow_with_fixed_size_lists_and_row_groups(good):
    import pyarrow.dataset as ds

    m = load_manifest(good)
    nodes = pq.ParquetFile(good / "part-00000" / "nodes.parquet")
    assert nodes.schema_arrow.field("features").type == pa.list_(pa.float32(), 32)
    assert nodes.schema_arrow.names == ["id", "features", "label", "train_mask", "val_mask", "test_mask",
                                        "in_degree", "out_degree"]
    edges = ds.dataset([str(good / f"part-0000{k}" / "edges.parquet") for k in range(3)], format="parquet")
    table = edges.to_table()
    assert table.num_rows == m.num_edges
    assert sorted(table.column("eid").to_pylist()) == list(range(m.num_edges))
    big = pq.ParquetFile(good / "part-00000" / "edges.parquet").metadata
    assert big.num_row_groups == -(-m.parts[0].num_edges // 1000)
    assert all(big.row_group(i).num_rows <= 1000 for i in range(big.num_row_groups))


def test_format_docstring_documents_every_file():
    from distgnn.partition import format as fmt

    for name in ("manifest.json", "nodes-map.parquet", "nodes.parquet", "edges.parquet", "halo.parquet",
                 "halo_edges.parquet", "schema_version", "in_degree", "owner", "hop", "eid"):
        assert name in fmt.__doc__


# ------------------------------------------------------------------------------------ atomic output
def test_existing_non_empty_output_is_refused(tmp_path):
    g = make_graph([0, 1], [1, 0], 2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(PartitionError, match="output directory exists and is not empty"):
        partition(g, 2, tmp_path / "out")
    assert os.listdir(tmp_path / "out") == ["keep.txt"] and sorted(os.listdir(tmp_path)) == ["out"]
    # --overwrite replaces partitions only: a directory without a manifest is never deleted
    with pytest.raises(PartitionError, match="refusing to overwrite a directory that is not a distgnn partition"):
        partition(g, 2, tmp_path / "out", overwrite=True)
    assert os.listdir(tmp_path / "out") == ["keep.txt"] and sorted(os.listdir(tmp_path)) == ["out"]
    (tmp_path / "out" / "keep.txt").unlink()
    partition(g, 1, tmp_path / "out")
    partition(g, 2, tmp_path / "out", overwrite=True)
    verify(tmp_path / "out")
    assert load_manifest(tmp_path / "out").num_parts == 2
    assert sorted(os.listdir(tmp_path)) == ["out"]  # the old copy is gone too


def test_existing_empty_directory_is_used(tmp_path):
    (tmp_path / "out").mkdir()
    partition(make_graph([0, 1], [1, 0], 2), 2, tmp_path / "out")
    verify(tmp_path / "out")


def test_output_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(PartitionError, match="output exists and is a file"):
        partition(make_graph([0, 1], [1, 0], 2), 2, tmp_path / "out", overwrite=True)


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_interrupted_run_leaves_nothing_behind(tmp_path, monkeypatch, error):
    from distgnn.partition import pipeline

    def boom(self, *args):
        raise error

    monkeypatch.setattr(pipeline._ShardWriterSet, "_nodes", boom)
    with pytest.raises(type(error)):
        partition(make_graph([0, 1, 2], [1, 2, 0], 3), 2, tmp_path / "out")
    assert os.listdir(tmp_path) == []


def test_interrupted_overwrite_keeps_the_old_partition(tmp_path, monkeypatch):
    from distgnn.partition import pipeline

    g = make_graph([0, 1, 2], [1, 2, 0], 3)
    partition(g, 2, tmp_path / "out")
    monkeypatch.setattr(pipeline._ShardWriterSet, "_halo", lambda self, hop1: (_ for _ in ()).throw(OSError("full")))
    with pytest.raises(OSError):
        partition(g, 3, tmp_path / "out", overwrite=True)
    assert os.listdir(tmp_path) == ["out"] and load_manifest(tmp_path / "out").num_parts == 2
    verify(tmp_path / "out")


def test_output_as_a_filesystem_uri(tmp_path):
    uri = (tmp_path / "uri-out").as_uri()
    assert uri.startswith("file:///")
    partition(make_graph([0, 1, 2], [1, 2, 0], 3), 2, uri)
    assert verify(uri).num_parts == 2
    assert load_manifest(tmp_path / "uri-out").num_nodes == 3


def test_format_docstring_example_is_a_real_run(cora, tmp_path):
    """The example manifest in format.py is what `planetoid:cora --parts 2` writes."""
    import textwrap

    from distgnn.partition import format as fmt

    doc = fmt.__doc__
    start = doc.index('    {\n      "format"')
    end = doc.index("\n    }\n", start) + len("\n    }\n")
    example = json.loads(textwrap.dedent(doc[start:end]))
    m = json.loads(partition(cora, 2, tmp_path / "out").to_json())
    for key in ("format", "schema_version", "num_nodes", "num_edges", "num_parts", "method", "balance",
                "halo_hops", "row_group_size", "parts", "node_fields", "edge_fields", "quality"):
        assert example[key] == m[key], key
    assert {k: v["rows"] for k, v in example["files"].items()} == {k: v["rows"] for k, v in m["files"].items()}
