"""``load_part`` checks every shard as it reads it: sha256 and size, then values (one line each)."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from distgnn.partition import PartitionError, load_manifest, load_nodes_map, load_part, partition, reassemble
from distgnn.partition.reader import manifest_digest

from .conftest import make_graph
from .edit import rewrite_shard as _rewrite


def _set(name, fn):
    def edit(table):
        i = table.schema.get_field_index(name)
        col = table.column(name)
        if pa.types.is_fixed_size_list(col.type):
            width = col.type.list_size
            values = fn(col.combine_chunks().flatten().to_numpy().reshape(-1, width).copy())
            array = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), col.type.value_type), width)
        else:
            array = pa.array(fn(col.to_numpy().copy()), type=col.type)
        return table.set_column(i, table.schema.field(i), array)
    return edit


def _at(i, value):
    def fn(a):
        a[i] = value
        return a
    return fn


def test_good_parts_load_with_and_without_checksums(good):
    m = load_manifest(good)
    for k in range(m.num_parts):
        a, b = load_part(good, k), load_part(good, k, checksums=False)
        assert a.num_nodes == m.parts[k].num_nodes and np.array_equal(a.x.numpy(), b.x.numpy())
    assert len(load_nodes_map(good)) == m.num_nodes
    assert len(manifest_digest(good)) == 64


@pytest.mark.parametrize("rel", ["part-00001/nodes.parquet", "part-00001/edges.parquet", "part-00001/halo.parquet",
                                 "part-00001/halo_edges.parquet", "nodes-map.parquet"])
def test_any_changed_byte_is_refused_before_decoding(copy, rel):
    path = copy / rel
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(PartitionError, match=rf"^{rel}: sha256 mismatch \(changed or damaged after it was written"):
        load_nodes_map(copy) if rel == "nodes-map.parquet" else load_part(copy, 1)
    with pytest.raises(PartitionError, match=rf"^{rel}: sha256 mismatch"):
        reassemble(copy)
    load_part(copy, 0)  # the other parts are intact


def test_size_and_listing_are_checked(copy):
    path = copy / "part-00002" / "edges.parquet"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(PartitionError, match=r"^part-00002/edges\.parquet: \d+ bytes, the manifest says \d+ \(truncated"):
        load_part(copy, 2)
    man = json.loads((copy / "manifest.json").read_text())
    del man["files"]["part-00000/halo.parquet"]
    (copy / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(PartitionError, match=r"^part-00000/halo\.parquet: not listed in the manifest's files"):
        load_part(copy, 0)
    load_part(copy, 0, checksums=False)


@pytest.mark.parametrize("rel, column, fn, match", [
    pytest.param("part-00001/nodes.parquet", "features", _at((4, 1), np.nan),
                 r"features have NaN or infinite values \(first at node \d+\)", id="nan-feature"),
    pytest.param("part-00001/nodes.parquet", "label", _at(2, 10**9), r"label 1000000000 at node \d+ lies outside "
                 r"\[-1, 3000\)", id="label-too-large"),
    pytest.param("part-00001/nodes.parquet", "label", _at(2, -5), r"label -5 at node \d+ lies outside", id="label-below"),
    pytest.param("part-00001/edges.parquet", "src", _at(0, 10**12), r"source id 1000000000000 \(row 0\) lies outside "
                 r"\[0, 3000\)", id="source-id"),
    pytest.param("part-00001/edges.parquet", "dst", _at(0, 0), r"target id 0 \(row 0\) lies outside", id="target-id"),
    pytest.param("part-00001/edges.parquet", "eid", _at(0, -1), r"edge id -1 \(row 0\) lies outside", id="edge-id"),
    pytest.param("part-00001/halo.parquet", "id", _at(0, 3000), r"halo id 3000 \(row 0\) lies outside", id="halo-id"),
    pytest.param("part-00001/halo.parquet", "owner", _at(0, 7), r"owner 7 \(row 0\) lies outside \[0, 3\)", id="owner"),
])
def test_values_are_checked_even_with_good_checksums(copy, rel, column, fn, match):
    _rewrite(copy, rel, _set(column, fn))
    with pytest.raises(PartitionError, match=rf"^{rel}: {match}"):
        load_part(copy, 1)


def test_a_masked_node_without_label_is_refused(tmp_path):
    g = make_graph([0, 1, 2, 3], [1, 2, 3, 0], 4)
    partition(g, 2, tmp_path / "p", method="range")
    rel = "part-00001/nodes.parquet"
    _rewrite(tmp_path / "p", rel, _set("label", lambda y: np.full_like(y, -1)))
    _rewrite(tmp_path / "p", rel, _set("val_mask", lambda m: np.ones_like(m)))
    with pytest.raises(PartitionError, match=rf"^{rel}: node 2 is a (training|validation) node without a label \(-1\)$"):
        load_part(tmp_path / "p", 1)
    _rewrite(tmp_path / "p", "nodes-map.parquet", _set("new_id", _at(0, 99)))
    with pytest.raises(PartitionError, match=r"^nodes-map\.parquet: new id 99 \(row 0\) lies outside \[0, 4\)"):
        load_nodes_map(tmp_path / "p")


def test_edge_features_are_checked(tmp_path):
    g = make_graph([0, 1, 2, 3], [1, 2, 3, 0], 4, edge_features=2)
    partition(g, 2, tmp_path / "p", method="range")
    rel = "part-00000/edges.parquet"
    _rewrite(tmp_path / "p", rel, _set("features", _at((0, 1), np.inf)))
    with pytest.raises(PartitionError, match=rf"^{rel}: edge features have NaN or infinite values \(first at row 0\)"):
        load_part(tmp_path / "p", 0)
