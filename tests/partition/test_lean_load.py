"""Lean part loading: Arrow columns to arrays with one copy (any chunking, batch by batch), and
merge_parts filling one block per field (optionally freeing each part as it goes), equal to the
plain concatenate-and-sort reference."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from distgnn.launch.shard import merge_parts
from distgnn.partition import load_manifest, load_part
from distgnn.partition import reader as reader_mod
from distgnn.partition.errors import PartitionError
from distgnn.partition.reader import column_numpy, fill_column


def test_column_numpy_one_block_from_many_chunks():
    feats = pa.chunked_array([pa.FixedSizeListArray.from_arrays(pa.array(np.arange(6, dtype=np.float32)), 3),
                              pa.FixedSizeListArray.from_arrays(pa.array(np.arange(6, 12, dtype=np.float32)), 3)[1:]])
    ids = pa.chunked_array([pa.array([3, 1], pa.int32()), pa.array([], pa.int32()), pa.array([7], pa.int32())])
    mask = pa.chunked_array([pa.array([True, False]), pa.array([True])])
    table = pa.table({"f": feats, "id": ids, "m": mask})
    f = column_numpy(table, "f", (3,))
    assert f.dtype == np.float32 and f.flags.c_contiguous and f.flags.writeable
    assert np.array_equal(f, [[0, 1, 2], [3, 4, 5], [9, 10, 11]])  # the sliced chunk's offset respected
    i = column_numpy(table, "id", dtype="int64")
    assert i.dtype == np.int64 and i.tolist() == [3, 1, 7]
    assert column_numpy(table, "id").dtype == np.int32 and column_numpy(table, "m").tolist() == [True, False, True]
    with pytest.raises(PartitionError, match="4 values for 1 rows of 3"):
        fill_column([pa.FixedSizeListArray.from_arrays(pa.array(np.arange(4.0)), 4)], np.empty((1, 3)))


@pytest.fixture
def parts_dir(tmp_path):
    g = torch.Generator().manual_seed(0)
    n, e = 60, 400
    ei = torch.randint(0, n, (2, e), generator=g)
    assignment = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 5, generator=g)
    y = torch.randint(0, 4, (n,), generator=g)
    attr = torch.randn(e, 2, generator=g)
    from distgnn.data import GraphData
    from distgnn.partition import partition
    from tests.launch.shards import FixedPartitioner

    data = GraphData(edge_index=ei, num_nodes=n, x=x, y=y, train_mask=torch.ones(n, dtype=torch.bool),
                     edge_attr=attr, name="lean")
    partition(data, 3, tmp_path / "p", method=FixedPartitioner(tuple(int(a) for a in assignment)))
    return str(tmp_path / "p")


def test_load_part_batch_by_batch_equals_one_batch(parts_dir, monkeypatch):
    m = load_manifest(parts_dir)
    whole = [load_part(parts_dir, k, m) for k in range(3)]
    monkeypatch.setattr(reader_mod, "_BATCH_BYTES", 64)  # a handful of rows per batch
    small = [load_part(parts_dir, k, m) for k in range(3)]
    for a, b in zip(whole, small):
        for name in ("x", "y", "edge_index", "eid", "edge_attr", "in_degree", "out_degree", "halo_ids"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        assert a.x.is_contiguous() and a.edge_index.is_contiguous() and a.edge_index.dtype == torch.long


def _reference(parts):
    """The plain merge: concatenate, then sort the edges by original edge id."""
    eid = torch.cat([p.eid for p in parts])
    order = torch.argsort(eid)
    return {"edge_index": torch.cat([p.edge_index for p in parts], 1)[:, order], "eid": eid[order],
            "edge_attr": torch.cat([p.edge_attr for p in parts])[order], "x": torch.cat([p.x for p in parts]),
            "y": torch.cat([p.y for p in parts]), "in_degree": torch.cat([p.in_degree for p in parts])}


@pytest.mark.parametrize("consume", [False, True])
@pytest.mark.parametrize("shuffled", [False, True], ids=["stored-order", "shuffled-edges"])
def test_merge_parts_equals_concatenate_and_sort(parts_dir, consume, shuffled):
    m = load_manifest(parts_dir)
    parts = [load_part(parts_dir, k, m) for k in range(3)]
    if shuffled:  # parts whose edges are not in edge-id order take the sorting path
        for p in parts:
            perm = torch.randperm(p.eid.numel(), generator=torch.Generator().manual_seed(p.part_id))
            p.edge_index, p.eid, p.edge_attr = p.edge_index[:, perm], p.eid[perm], p.edge_attr[perm]
    ref = _reference(parts)
    starts = [0, m.num_nodes]
    shard = merge_parts(parts, 0, starts, consume=consume)
    for name, want in ref.items():
        assert torch.equal(getattr(shard, name), want), name
    fields = ("x", "y", "edge_index", "eid", "edge_attr", "in_degree", "train_mask")
    if consume:
        assert all(getattr(p, f) is None for p in parts for f in fields)
        assert all(p.halo_ids is not None for p in parts)  # fields merge_parts does not merge stay
    else:
        assert all(getattr(p, f) is not None for p in parts for f in fields)


def test_merge_parts_one_part_takes_its_tensors(parts_dir):
    m = load_manifest(parts_dir)
    part = load_part(parts_dir, 1, m)
    x = part.x
    shard = merge_parts([part], 0, [m.parts[1].node_start, m.parts[1].node_end], consume=True)
    assert shard.x is x and part.x is None
