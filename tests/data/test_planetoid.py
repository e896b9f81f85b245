"""Planetoid loader: Cora's published numbers, the preprocessing on a crafted dataset, and safety.

Cora must be present (``../shared/datasets/planetoid`` or ``$DISTGNN_DATA/planetoid``): a missing
dataset fails these tests on purpose.
"""
from __future__ import annotations

import os
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from distgnn.data import DataError, default_data_dir, load_planetoid

PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")


@pytest.fixture(scope="module")
def cora():
    return load_planetoid("cora")


def _edge_keys(edge_index: torch.Tensor, n: int) -> torch.Tensor:
    return edge_index[0] * n + edge_index[1]


def test_cora_counts(cora):
    assert (cora.num_nodes, cora.num_edges, cora.num_features, cora.num_classes) == (2708, 10556, 1433, 7)
    assert cora.x.dtype == torch.float32 and cora.y.dtype == torch.long
    assert torch.bincount(cora.y).tolist() == [351, 217, 418, 818, 426, 298, 180]
    # Raw bag-of-words: 0/1 entries, 49216 of them set (as in PyG's Cora).
    assert set(cora.x.unique().tolist()) == {0.0, 1.0}
    assert int(cora.x.sum()) == 49216


def test_cora_split(cora):
    train, val, test = cora.train_mask, cora.val_mask, cora.test_mask
    assert (int(train.sum()), int(val.sum()), int(test.sum())) == (140, 500, 1000)
    assert train.nonzero().flatten().tolist() == list(range(140))
    assert val.nonzero().flatten().tolist() == list(range(140, 640))
    assert test.nonzero().flatten().min() == 1708 and test.nonzero().flatten().max() == 2707
    assert not bool((train & val).any() or (train & test).any() or (val & test).any())
    assert torch.bincount(cora.y[train]).tolist() == [20] * 7


def test_cora_edges_symmetric_simple(cora):
    ei, n = cora.edge_index, cora.num_nodes
    assert int((ei[0] == ei[1]).sum()) == 0
    keys = _edge_keys(ei, n)
    assert len(keys.unique()) == cora.num_edges  # no duplicates
    assert torch.equal(keys, keys.sort().values)  # sorted by source, then target
    assert torch.equal(keys.sort().values, _edge_keys(ei.flip(0), n).sort().values)  # symmetric
    assert int(torch.bincount(ei[0], minlength=n).min()) >= 1  # Cora has no isolated node


def test_cora_normalize_features(cora):
    norm = load_planetoid("cora", normalize_features=True)
    assert torch.allclose(norm.x.sum(dim=1), torch.ones(2708))
    assert torch.allclose(norm.x, cora.x / cora.x.sum(dim=1, keepdim=True))
    assert torch.equal(norm.edge_index, cora.edge_index) and torch.equal(norm.y, cora.y)


def test_cora_loads_without_warnings():
    """numpy>=2 pickles' ``numpy.core`` path is mapped to ``numpy._core`` (no DeprecationWarning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_planetoid("cora").num_nodes == 2708


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("DISTGNN_DATA", raising=False)
    repo = Path(__file__).resolve().parents[2]
    assert default_data_dir() == repo.parent / "shared" / "datasets"
    monkeypatch.setenv("DISTGNN_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path


def _copy_cora(dst: Path) -> Path:
    src = default_data_dir() / "planetoid"
    for part in PARTS:
        shutil.copy(src / f"ind.cora.{part}", dst / f"ind.cora.{part}")
    return dst


def test_missing_file(tmp_path, monkeypatch):
    _copy_cora(tmp_path)
    (tmp_path / "ind.cora.graph").unlink()
    with pytest.raises(DataError, match=r"ind\.cora\.graph is missing.*DISTGNN_DATA"):
        load_planetoid("cora", root=tmp_path)
    monkeypatch.setenv("DISTGNN_DATA", str(tmp_path))  # root=None -> $DISTGNN_DATA/planetoid
    with pytest.raises(DataError, match=r"planetoid/ind\.cora\.x is missing"):
        load_planetoid("cora")


class _Reduce:
    """Pickles as a call ``fn(*args)``: what a tampered dataset file would contain."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize(
    "payload, forbidden",
    [
        pytest.param(b"cos\nsystem\n(S'touch PWNED'\ntR.", "os.system", id="os.system"),
        pytest.param(pickle.dumps(_Reduce(os.system, "touch PWNED"), protocol=2), "posix.system", id="posix"),
        pytest.param(pickle.dumps(_Reduce(eval, "1+1"), protocol=4), "builtins.eval", id="eval"),
        pytest.param(pickle.dumps(_Reduce(getattr, [], "append"), protocol=2), "__builtin__.getattr", id="getattr"),
    ],
)
def test_unpickler_refuses_foreign_globals(tmp_path, monkeypatch, payload, forbidden):
    _copy_cora(tmp_path)
    (tmp_path / "ind.cora.x").write_bytes(payload)
    monkeypatch.chdir(tmp_path)
    msg = rf"ind\.cora\.x: refusing to unpickle '{forbidden}' \(only numpy/scipy-sparse/builtin"
    with pytest.raises(DataError, match=msg):
        load_planetoid("cora", root=tmp_path)
    assert not (tmp_path / "PWNED").exists()


def _csr_pickle(shape, data, indices, indptr) -> bytes:
    """A pickle of a ``scipy.sparse`` CSR matrix with any declared state, written without SciPy."""
    state = {"_shape": shape, "data": np.asarray(data, np.float32), "indices": np.asarray(indices, np.int32),
             "indptr": np.asarray(indptr, np.int32), "maxprint": 50}
    body = pickle.dumps(state, protocol=3)[2:-1]  # the dict, without PROTO and STOP
    return b"\x80\x03cscipy.sparse._csr\ncsr_matrix\n)\x81" + body + b"b."


@pytest.mark.parametrize("payload, match", [
    pytest.param(_csr_pickle((1708, 58_548_009), [1.0], [0], [0] + [1] * 1708),
                 r"declares a 1708 x 58548009 matrix \(1e\+11 cells", id="huge-shape"),
    pytest.param(_csr_pickle((1708, 1433, 1), [1.0], [0], [0] + [1] * 1708), r"a CSR matrix without a valid 2-D shape",
                 id="3d-shape"),
    pytest.param(_csr_pickle((1708, -1), [1.0], [0], [0] + [1] * 1708), r"a CSR matrix without a valid 2-D shape",
                 id="negative-shape"),
    pytest.param(_csr_pickle((1708, 1433), [1.0], [0], [0, 1]), r"inconsistent CSR matrix \(indptr of 2 entries "
                 r"for 1708 rows", id="short-indptr"),
    pytest.param(_csr_pickle((1708, 1433), [1.0, 2.0], [0], [0] + [1] * 1708), r"inconsistent CSR matrix",
                 id="data-indices-mismatch"),
    pytest.param(_csr_pickle((1708, 1433), [1.0], [5000], [0] + [1] * 1708),
                 r"a column index outside \[0, 1433\) in a 1708 x 1433 CSR matrix", id="index-beyond-columns"),
])
def test_a_tampered_matrix_is_refused_before_allocation(tmp_path, payload, match):
    _copy_cora(tmp_path)
    (tmp_path / "ind.cora.allx").write_bytes(payload)
    with pytest.raises(DataError, match=rf"^ind\.cora\.allx: {match}"):
        load_planetoid("cora", root=tmp_path)


def test_tampered_test_ids_and_graph(tmp_path):
    _copy_cora(tmp_path)
    ids = (tmp_path / "ind.cora.test.index").read_text().split()
    (tmp_path / "ind.cora.test.index").write_text("\n".join([str(10**12)] + ids[1:]) + "\n")
    with pytest.raises(DataError, match=r"^ind\.cora\.test\.index: test node id 1000000000000 is beyond the "
                                        r"graph's last node 2707; the file is corrupt$"):
        load_planetoid("cora", root=tmp_path)
    (tmp_path / "ind.cora.test.index").write_text("")
    with pytest.raises(DataError, match=r"^ind\.cora\.test\.index: no test node ids"):
        load_planetoid("cora", root=tmp_path)
    _copy_cora(tmp_path)
    (tmp_path / "ind.cora.graph").write_bytes(pickle.dumps({0: ["a"]}, protocol=2))
    with pytest.raises(DataError, match=r"^ind\.cora\.graph: adjacency lists must map integer ids"):
        load_planetoid("cora", root=tmp_path)


def test_corrupted_pickle(tmp_path):
    _copy_cora(tmp_path)
    data = (tmp_path / "ind.cora.allx").read_bytes()
    (tmp_path / "ind.cora.allx").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"ind\.cora\.allx: not a readable Planetoid pickle"):
        load_planetoid("cora", root=tmp_path)


def _write_planetoid(folder: Path, name: str, parts: dict) -> None:
    for part, value in parts.items():
        path = folder / f"ind.{name}.{part}"
        if part == "test.index":
            path.write_text("".join(f"{i}\n" for i in value))
        else:
            path.write_bytes(pickle.dumps(value, protocol=4))


def test_preprocessing_on_crafted_dataset(tmp_path):
    """CiteSeer-like layout: test ids out of order with a gap (node 504 has no features/label)."""
    rng = np.random.default_rng(0)
    m, f, c = 503, 4, 3  # 503 non-test nodes: 3 train, 500 val
    allx = rng.integers(0, 2, (m, f)).astype(np.float32)
    ally = np.eye(c, dtype=np.float32)[rng.integers(0, c, m)]
    tx = np.arange(3 * f, dtype=np.float32).reshape(3, f) + 1
    ty = np.eye(c, dtype=np.float32)[[2, 0, 1]]
    test_index = [506, 503, 505]
    graph = {0: [1, 1, 0, 506], 1: [0], 2: [504], 503: [505]}  # duplicate, self-loop, one-way edges
    _write_planetoid(tmp_path, "toy", dict(x=allx[:3], y=ally[:3], allx=allx, ally=ally, tx=tx, ty=ty,
                                           graph=graph, **{"test.index": test_index}))
    data = load_planetoid("toy", root=tmp_path)

    assert data.num_nodes == 507
    assert torch.equal(data.x[:m], torch.from_numpy(allx))
    assert torch.equal(data.x[[506, 503, 505]], torch.from_numpy(tx))  # row k of tx is node test_index[k]
    assert torch.equal(data.x[504], torch.zeros(f))
    assert data.y[m:].tolist() == [0, -1, 1, 2]
    assert torch.equal(data.y[:m], torch.from_numpy(ally.argmax(1)))
    assert data.train_mask.nonzero().flatten().tolist() == [0, 1, 2]
    assert data.val_mask.nonzero().flatten().tolist() == list(range(3, 503))
    assert data.test_mask.nonzero().flatten().tolist() == [503, 505, 506]
    pairs = {tuple(e) for e in data.edge_index.t().tolist()}
    assert pairs == {(0, 1), (1, 0), (0, 506), (506, 0), (2, 504), (504, 2), (503, 505), (505, 503)}
    assert data.num_edges == 8


def test_unsupported_layout(tmp_path):
    allx = np.zeros((503, 2), dtype=np.float32)
    ally = np.eye(2, dtype=np.float32)[np.zeros(503, dtype=int)]
    _write_planetoid(tmp_path, "bad", dict(x=allx[:3], y=ally[:3], allx=allx, ally=ally, tx=allx[:2],
                                           ty=ally[:2], graph={}, **{"test.index": [600, 601]}))
    with pytest.raises(DataError, match=r"ind\.bad\.test\.index: expected 2 distinct ids from 503 on"):
        load_planetoid("bad", root=tmp_path)
