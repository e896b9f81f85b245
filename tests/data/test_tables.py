"""Parquet/CSV edge lists and the NumPy format: exact round trips and every error path."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import torch

from distgnn.data import DataError, GraphData, load_edge_list, load_numpy, save_numpy, sbm

# A 4-node graph whose ids (10, 3, 7, 42) become 0..3 in node-table order.
NODE_IDS = [10, 3, 7, 42]
FEATS = [[1.0, 0.5], [2.0, -1.0], [0.0, 0.25], [3.5, 4.0]]
LABELS = [1, 0, 2, 1]
TRAIN, VAL, TEST = [True, True, False, False], [False, False, True, False], [False, False, False, True]
SRC, DST = [10, 3, 7, 42, 10], [3, 7, 42, 10, 7]
EXPECTED_EDGES = torch.tensor([[0, 1, 2, 3, 0], [1, 2, 3, 0, 2]])
EDGE_W = [0.5, 1.5, 2.5, 3.5, 4.5]


def _write(table: pa.Table, path: Path) -> Path:
    if path.suffix == ".csv":
        pa_csv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


def _edges(tmp_path: Path, suffix: str = ".parquet", **cols) -> Path:
    data = {"src": pa.array(SRC, pa.int64()), "dst": pa.array(DST, pa.int64()), "feat_w": EDGE_W}
    data.update(cols)
    return _write(pa.table({k: v for k, v in data.items() if v is not None}), tmp_path / f"edges{suffix}")


def _nodes(tmp_path: Path, suffix: str = ".parquet", **cols) -> Path:
    data = {
        "id": pa.array(NODE_IDS, pa.int64()),
        "feat_0": [r[0] for r in FEATS],
        "feat_1": [r[1] for r in FEATS],
        "label": pa.array(LABELS, pa.int64()),
        "train_mask": TRAIN,
        "val_mask": VAL,
        "test_mask": TEST,
    }
    data.update(cols)
    return _write(pa.table({k: v for k, v in data.items() if v is not None}), tmp_path / f"nodes{suffix}")


def _check_expected(data: GraphData) -> None:
    assert data.num_nodes == 4
    assert torch.equal(data.edge_index, EXPECTED_EDGES)
    assert torch.equal(data.x, torch.tensor(FEATS))
    assert torch.equal(data.y, torch.tensor(LABELS))
    assert torch.equal(data.train_mask, torch.tensor(TRAIN))
    assert torch.equal(data.val_mask, torch.tensor(VAL))
    assert torch.equal(data.test_mask, torch.tensor(TEST))
    assert torch.equal(data.edge_attr, torch.tensor(EDGE_W).unsqueeze(1))


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_round_trip_scalar_feature_columns(tmp_path, suffix):
    data = load_edge_list(_edges(tmp_path, suffix), _nodes(tmp_path, suffix))
    _check_expected(data)
    assert data.name == "edges"


@pytest.mark.parametrize(
    "list_type", [pa.list_(pa.float32()), pa.list_(pa.float64(), 2), pa.large_list(pa.float32())],
    ids=["list", "fixed_size_list", "large_list"],
)
def test_round_trip_list_feature_column(tmp_path, list_type):
    nodes = _nodes(tmp_path, feat_0=None, feat_1=None, emb=pa.array(FEATS, list_type))
    _check_expected(load_edge_list(_edges(tmp_path), nodes, features="emb"))


def test_named_columns(tmp_path):
    edges = _write(pa.table({"a": SRC, "b": DST, "w": EDGE_W}), tmp_path / "e.parquet")
    nodes = _write(pa.table({"key": NODE_IDS, "f0": [r[0] for r in FEATS], "f1": [r[1] for r in FEATS],
                             "cls": LABELS, "tr": TRAIN, "va": VAL, "te": TEST}), tmp_path / "n.parquet")
    data = load_edge_list(edges, nodes, src="a", dst="b", node_id="key", features=["f0", "f1"],
                          label="cls", masks=("tr", "va", "te"), edge_features=["w"])
    _check_expected(data)


def test_optional_columns_absent(tmp_path):
    nodes = _nodes(tmp_path, feat_0=None, feat_1=None, label=None, train_mask=None, val_mask=None, test_mask=None)
    data = load_edge_list(_edges(tmp_path, feat_w=None), nodes)
    assert torch.equal(data.edge_index, EXPECTED_EDGES)
    assert data.x is None and data.y is None and data.train_mask is None and data.edge_attr is None


def test_null_labels_are_unlabelled(tmp_path):
    nodes = _nodes(tmp_path, label=pa.array([1, None, 2, None], pa.int32()))
    assert load_edge_list(_edges(tmp_path), nodes, masks=None).y.tolist() == [1, -1, 2, -1]
    # an unlabelled node in a mask would be trained or scored on label -1
    with pytest.raises(DataError, match=r"nodes\.parquet: y is -1 \(no label\) at node 1, which is in "):
        load_edge_list(_edges(tmp_path), nodes)


def test_float_and_list_labels_are_targets(tmp_path):
    """Float labels are regression targets (null = NaN, allowed outside the masks); a list per node
    is an ``[N, C]`` label block (multi-label 0/1 or several targets)."""
    nodes = _nodes(tmp_path, label=pa.array([0.5, -2.0, None, 3.25]), test_mask=[False] * 4)
    y = load_edge_list(_edges(tmp_path), nodes).y
    assert y.dtype == torch.float32 and y[[0, 1, 3]].tolist() == [0.5, -2.0, 3.25] and torch.isnan(y[2])
    multi = pa.array([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 0, 0]], pa.list_(pa.int8()))
    y = load_edge_list(_edges(tmp_path), _nodes(tmp_path, label=multi)).y
    assert y.dtype == torch.float32 and y.tolist() == [[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 0, 0]]


def test_numpy_float_targets(tmp_path):
    targets = np.array([[0.5, 1.0], [2.0, -1.0], [0.0, 0.25]])
    path = _npz("t.npz", y=targets)(tmp_path)
    y = load_numpy(path).y
    assert y.dtype == torch.float32 and torch.equal(y, torch.tensor(targets, dtype=torch.float32))


@pytest.mark.parametrize("name", ["features", "feat", "x", "feat_emb"])
def test_one_list_column_named_like_features_is_taken(tmp_path, name):
    nodes = _nodes(tmp_path, feat_0=None, feat_1=None, **{name: pa.array(FEATS, pa.list_(pa.float32()))})
    assert torch.equal(load_edge_list(_edges(tmp_path), nodes).x, torch.tensor(FEATS))
    edges = _edges(tmp_path, feat_w=None, features=pa.array([[1.0, 2.0]] * 5, pa.list_(pa.float64(), 2)))
    assert load_edge_list(edges).edge_attr.shape == (5, 2)


def test_a_sparse_id_is_taken_when_num_nodes_confirms_it(tmp_path):
    edges = _edges(tmp_path, dst=pa.array([3, 7, 42, 10, 2**24]))
    assert load_edge_list(edges, num_nodes=2**24 + 1).num_nodes == 2**24 + 1


def test_without_node_table(tmp_path):
    edges = _write(pa.table({"src": [0, 2, 5], "dst": [1, 0, 2]}), tmp_path / "e.csv")
    data = load_edge_list(edges)
    assert data.num_nodes == 6 and torch.equal(data.edge_index, torch.tensor([[0, 2, 5], [1, 0, 2]]))
    assert load_edge_list(edges, num_nodes=9).num_nodes == 9
    empty = _write(pa.table({"src": pa.array([], pa.int64()), "dst": pa.array([], pa.int64())}), tmp_path / "z.parquet")
    assert load_edge_list(empty).num_nodes == 0 and load_edge_list(empty, num_nodes=3).num_edges == 0


def test_undirected_adds_missing_reverses_only(tmp_path):
    edges = _write(pa.table({"src": [0, 1, 1, 2], "dst": [1, 0, 2, 2], "feat_w": [1.0, 2.0, 3.0, 4.0]}),
                   tmp_path / "e.parquet")
    data = load_edge_list(edges, undirected=True)
    assert data.edge_index.tolist() == [[0, 1, 1, 2, 2], [1, 0, 2, 2, 1]]
    assert data.edge_attr.flatten().tolist() == [1.0, 2.0, 3.0, 4.0, 3.0]


def test_import_does_not_load_pyarrow_or_ray():
    code = "import sys, distgnn.data; bad = [m for m in ('pyarrow', 'ray', 'scipy') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- error paths
def _bad_nodes(**cols):
    return lambda tmp: (_edges(tmp), _nodes(tmp, **cols), {})


def _garbage(name: str, content: bytes = b"not a table\x00\x01"):
    def make(tmp):
        (tmp / name).write_bytes(content)
        return tmp / name, None, {}
    return make


ERRORS = [
    pytest.param(lambda tmp: (tmp / "nope.parquet", None, {}), r"nope\.parquet: file not found", id="missing-file"),
    pytest.param(_garbage("e.parquet"), r"e\.parquet: unreadable as Parquet", id="not-parquet"),
    pytest.param(_garbage("e.csv", b"src,dst\n1,2,3\n\x00"), r"e\.csv: unreadable as CSV", id="bad-csv"),
    pytest.param(_garbage("e.txt"), r"e\.txt: not a \.parquet or \.csv file", id="wrong-suffix"),
    pytest.param(lambda tmp: (_edges(tmp, src=None), None, {}), r"edges\.parquet: missing src column 'src'",
                 id="missing-column"),
    pytest.param(lambda tmp: (_edges(tmp), _nodes(tmp), {"features": "emb"}),
                 r"nodes\.parquet: missing features column 'emb'", id="missing-feature-column"),
    pytest.param(lambda tmp: (_edges(tmp), _nodes(tmp), {"label": "cls"}),
                 r"nodes\.parquet: missing label column 'cls'", id="missing-explicit-label"),
    pytest.param(lambda tmp: (_edges(tmp, src=pa.array([10, -3, 7, 42, 10])), None, {}),
                 r"edges\.parquet: column 'src' has a negative node id -3 \(row 1\)", id="negative-id"),
    pytest.param(lambda tmp: (_edges(tmp, dst=pa.array([3, 7, 42, 10, 8])), _nodes(tmp), {}),
                 r"edges\.parquet: column 'dst' names node 8 \(row 4\) which is not in the node table",
                 id="id-not-in-node-table"),
    pytest.param(lambda tmp: (_edges(tmp), None, {"num_nodes": 20}),
                 r"edges\.parquet: node id 42 out of range for num_nodes=20", id="id-out-of-range"),
    pytest.param(lambda tmp: (_edges(tmp, src=pa.array([1.0, 2, 3, 4, 5])), None, {}),
                 r"column 'src' must hold integer node ids, got double", id="float-ids"),
    pytest.param(lambda tmp: (_edges(tmp, dst=pa.array([1, None, 3, 4, 5], pa.int64())), None, {}),
                 r"column 'dst' has a missing value \(row 1\)", id="null-id"),
    pytest.param(_bad_nodes(id=pa.array([10, 3, 10, 42])), r"nodes\.parquet: duplicate node id 10",
                 id="duplicate-node-id"),
    pytest.param(_bad_nodes(feat_1=[0.5, math.nan, 0.25, 4.0]),
                 r"nodes\.parquet: x has NaN or infinite values \(first at node 1\)", id="nan-feature"),
    pytest.param(_bad_nodes(feat_0=[1.0, 2.0, math.inf, 3.5]),
                 r"nodes\.parquet: x has NaN or infinite values \(first at node 2\)", id="inf-feature"),
    pytest.param(lambda tmp: (_edges(tmp, feat_w=[0.5, 1.5, math.nan, 3.5, 4.5]), _nodes(tmp), {}),
                 r"edges\.parquet: edge_attr has NaN", id="nan-edge-feature"),
    pytest.param(_bad_nodes(feat_0=["a", "b", "c", "d"]), r"feature column 'feat_0' must be numeric, got string",
                 id="string-feature"),
    pytest.param(lambda tmp: (_edges(tmp), _nodes(tmp, emb=pa.array([[1.0], [2.0, 3.0], [4.0], [5.0]])),
                              {"features": "emb"}),
                 r"nodes\.parquet: feature rows of column 'emb' have different lengths \(row 0 has 1, row 1 has 2\)",
                 id="ragged-features"),
    pytest.param(_bad_nodes(train_mask=pa.array([1, 0, 0, 1], pa.int8())),
                 r"nodes\.parquet: mask column 'train_mask' must be boolean, got int8", id="mask-not-bool"),
    pytest.param(_bad_nodes(label=["a", "b", "c", "d"]),
                 r"nodes\.parquet: label column 'label' must hold integer class ids, float targets or a list per "
                 r"node \(multi-label / several targets\), got string", id="label-string"),
    pytest.param(_bad_nodes(label=pa.array([1, -2, 0, 1])), r"nodes\.parquet: y has a label below -1",
                 id="label-below-minus-one"),
    pytest.param(lambda tmp: (_edges(tmp), _nodes(tmp), {"num_nodes": 5}),
                 r"nodes\.parquet: num_nodes=5 but the node table has 4 rows", id="num-nodes-mismatch"),
    pytest.param(lambda tmp: (_edges(tmp), None, {"features": "emb"}),
                 r"edges\.parquet: features='emb' needs a node table", id="features-without-nodes"),
    pytest.param(_bad_nodes(label=pa.array([1, 0, 4, 1])), r"nodes\.parquet: y has class id 4 but only 4 nodes",
                 id="label-beyond-nodes"),
    pytest.param(_bad_nodes(features=pa.array([[1.0], [2.0], [4.0], [5.0]])),
                 r"nodes\.parquet: both a list column 'features' and scalar feature columns \(feat_0, feat_1\); "
                 r"pass features=\.\.\. to choose", id="list-and-scalar-features"),
    pytest.param(_bad_nodes(feat_0=None, feat_1=None, x=pa.array([[1.0]] * 4), feat=pa.array([[2.0]] * 4)),
                 r"nodes\.parquet: several list columns could hold the features \(x, feat\)", id="two-list-features"),
    pytest.param(lambda tmp: (_edges(tmp, dst=pa.array([3, 7, 42, 10, 2**40])), None, {}),
                 r"edges\.parquet: node id 1099511627776 \(column 'dst', row 4\) but only 5 edges, which name at "
                 r"most 10 distinct nodes", id="implausible-id"),
]


@pytest.mark.parametrize("make, match", ERRORS)
def test_edge_list_errors(tmp_path, make, match):
    edges, nodes, kwargs = make(tmp_path)
    with pytest.raises(DataError, match=match):
        load_edge_list(edges, nodes, **kwargs)


# ----------------------------------------------------------------------------- NumPy format
def test_numpy_round_trip(tmp_path):
    data = sbm(num_nodes=300, num_classes=3, avg_degree=4.0, num_features=5, train_per_class=5,
               num_val=30, num_test=60, seed=1)
    data = data.with_(edge_attr=torch.rand(data.num_edges, 2, dtype=torch.float64))
    save_numpy(data, tmp_path / "g.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["g.npz"]  # no temporary file left behind
    back = load_numpy(tmp_path / "g.npz")
    assert back.num_nodes == 300 and back.name == "g"
    for key in ("edge_index", "x", "y", "train_mask", "val_mask", "test_mask", "edge_attr"):
        assert torch.equal(getattr(back, key), getattr(data, key)), key
        assert getattr(back, key).dtype == getattr(data, key).dtype, key


def test_numpy_minimal(tmp_path):
    np.savez(tmp_path / "m.npz", edge_index=np.array([[0, 1], [1, 2]], dtype=np.int32), num_nodes=3)
    data = load_numpy(tmp_path / "m.npz")
    assert data.edge_index.dtype == torch.long and data.edge_index.tolist() == [[0, 1], [1, 2]]
    assert data.num_nodes == 3 and data.x is None and data.y is None


def _npz(name: str, **arrays):
    def make(tmp):
        base = {"edge_index": np.array([[0, 1], [1, 2]]), "num_nodes": np.int64(3)}
        base.update(arrays)
        np.savez(tmp / name, **{k: v for k, v in base.items() if v is not None})
        return tmp / name
    return make


NPZ_ERRORS = [
    pytest.param(lambda tmp: tmp / "none.npz", r"none\.npz: file not found", id="missing-file"),
    pytest.param(lambda tmp: (tmp / "b.npz").write_bytes(b"garbage") and tmp / "b.npz",
                 r"b\.npz: not an \.npz archive", id="garbage"),
    pytest.param(_npz("k.npz", num_nodes=None), r"k\.npz: missing array 'num_nodes'", id="missing-key"),
    pytest.param(_npz("e.npz", edge_index=np.array([[0, 1], [1, 3]])),
                 r"e\.npz: edge_index refers to node 3 but num_nodes is 3", id="id-out-of-range"),
    pytest.param(_npz("f.npz", edge_index=np.array([[0.0, 1], [1, 2]])), r"f\.npz: edge_index must hold integers",
                 id="float-edges"),
    pytest.param(_npz("m.npz", train_mask=np.array([1, 0, 1])), r"m\.npz: train_mask must be a bool tensor",
                 id="mask-not-bool"),
    pytest.param(_npz("x.npz", x=np.array([[0.0], [np.nan], [1.0]])), r"x\.npz: x has NaN", id="nan"),
    pytest.param(_npz("y.npz", y=np.array(["a", "b", "c"])), r"y\.npz: y must hold integer class ids or float targets",
                 id="label-string"),
    pytest.param(_npz("o.npz", x=np.array([[0.0], [1.0], [2.0]], dtype=object)), r"o\.npz: unreadable as \.npz",
                 id="object-array"),
]


@pytest.mark.parametrize("make, match", NPZ_ERRORS)
def test_numpy_errors(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(DataError, match=match):
        load_numpy(path)
