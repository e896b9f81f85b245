"""load_ogb on tiny datasets written in the exact layout the ``ogb`` package downloads."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from distgnn.data import DataError, load_dataset, load_ogb
from distgnn.data import ogb as ogb_mod
from distgnn.partition.errors import PartitionError
from distgnn.partition.inputs import open_input

EDGES = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 0], [0, 2]])  # 6 edges, 5 nodes
FEAT = np.arange(15, dtype=np.float32).reshape(5, 3) / 4
LABELS = np.array([2, 0, 1, 1, 0])


def _write(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        for row in rows:
            f.write(",".join(str(v) for v in np.atleast_1d(row)) + "\n")


def _csv_dataset(root: Path, *, counts: bool = True, labels=LABELS, feat=FEAT, edges=EDGES,
                 scheme: str = "sales_ranking", edge_feat=None) -> Path:
    raw = root / "raw"
    _write(raw / "edge.csv.gz", edges)
    if counts:
        _write(raw / "num-node-list.csv.gz", [len(labels)])
        _write(raw / "num-edge-list.csv.gz", [len(edges)])
    if feat is not None:
        _write(raw / "node-feat.csv.gz", feat)
    if edge_feat is not None:
        _write(raw / "edge-feat.csv.gz", edge_feat)
    _write(raw / "node-label.csv.gz", labels)
    split = root / "split" / scheme
    _write(split / "train.csv.gz", [0, 3])
    _write(split / "valid.csv.gz", [1])
    _write(split / "test.csv.gz", [2, 4])
    (root / "RELEASE_v1.txt").write_text("")
    return root


def _masks(n, ids):
    m = torch.zeros(n, dtype=torch.bool)
    m[list(ids)] = True
    return m


def test_products_layout_adds_reverse_edges_after_each_edge(tmp_path):
    data = load_ogb(_csv_dataset(tmp_path / "ogbn_products"))
    want = np.empty((2, 12), dtype=np.int64)
    want[:, 0::2], want[:, 1::2] = EDGES.T, EDGES.T[::-1]  # ogb's add_inverse_edge order
    assert torch.equal(data.edge_index, torch.from_numpy(want))
    assert data.num_nodes == 5 and data.name == "ogbn-products"
    assert data.x.dtype == torch.float32 and torch.equal(data.x, torch.from_numpy(FEAT))
    assert torch.equal(data.y, torch.from_numpy(LABELS))
    assert torch.equal(data.train_mask, _masks(5, [0, 3]))
    assert torch.equal(data.val_mask, _masks(5, [1]))
    assert torch.equal(data.test_mask, _masks(5, [2, 4]))


@pytest.mark.parametrize("counts", [True, False], ids=["with-count-files", "without-count-files"])
def test_arxiv_layout_is_directed_and_read_in_many_blocks(tmp_path, monkeypatch, counts):
    monkeypatch.setattr(ogb_mod, "_BLOCK_BYTES", 16)  # a block is a line or a few: many blocks per file
    blocks = []
    real = ogb_mod._csv_blocks

    def counting(path, *args):
        for b in real(path, *args):
            if path.name == "edge.csv.gz":
                blocks.append(len(b))
            yield b

    monkeypatch.setattr(ogb_mod, "_csv_blocks", counting)
    data = load_ogb(_csv_dataset(tmp_path / "ogbn_arxiv", counts=counts, scheme="time"))
    assert torch.equal(data.edge_index, torch.from_numpy(EDGES.T.copy()))
    assert torch.equal(data.x, torch.from_numpy(FEAT)) and torch.equal(data.y, torch.from_numpy(LABELS))
    assert len(blocks) >= 2 and sum(blocks) == len(EDGES)


def test_undirected_and_split_options_override_the_known_defaults(tmp_path):
    root = _csv_dataset(tmp_path / "ogbn_products")
    data = load_ogb(root, undirected=False, split=None, name="p")
    assert data.num_edges == 6 and data.train_mask is None and data.name == "p"


def test_nan_labels_become_minus_one_and_several_columns_stay_float(tmp_path):
    nan = float("nan")
    data = load_ogb(_csv_dataset(tmp_path / "a", labels=np.array([2, 0, 1, 1, nan]), feat=None,
                                 scheme="s"), split=None)
    assert data.x is None and data.y.tolist() == [2, 0, 1, 1, -1]
    multi = np.array([[0, 1], [1, 1], [0, 0], [1, 0], [nan, 1]])
    data = load_ogb(_csv_dataset(tmp_path / "b", labels=multi, feat=None, scheme="s"), split=None)
    assert data.y.dtype == torch.float32 and data.y.shape == (5, 2)
    assert torch.equal(torch.isnan(data.y), torch.from_numpy(np.isnan(multi)))
    frac = load_ogb(_csv_dataset(tmp_path / "c", labels=np.array([0.5, 1, 2, 3, 4]), scheme="s"), split=None)
    assert frac.y.dtype == torch.float32 and frac.y[0].item() == 0.5


def test_edge_features_are_repeated_with_the_reverse_edges(tmp_path):
    attr = np.arange(12, dtype=np.float32).reshape(6, 2)
    data = load_ogb(_csv_dataset(tmp_path / "ogbn_proteins", edge_feat=attr, feat=None, scheme="species"))
    assert data.edge_attr.shape == (12, 2)
    assert torch.equal(data.edge_attr, torch.from_numpy(np.repeat(attr, 2, axis=0)))


def _binary_dataset(root: Path, compressed: bool) -> Path:
    raw = root / "raw"
    raw.mkdir(parents=True)
    save = np.savez_compressed if compressed else np.savez
    save(raw / "data.npz", edge_index=EDGES.T.astype(np.int64), node_feat=FEAT.astype(np.float16),
         num_nodes_list=np.array([5]), num_edges_list=np.array([6]))
    save(raw / "node-label.npz", node_label=np.array([[2], [0], [np.nan], [1], [0]], dtype=np.float32))
    split = root / "split" / "time"
    _write(split / "train.csv.gz", [0, 3])
    _write(split / "valid.csv.gz", [1])
    _write(split / "test.csv.gz", [4])
    return root


@pytest.mark.parametrize("compressed", [False, True], ids=["savez", "savez_compressed"])
def test_papers100m_binary_layout(tmp_path, monkeypatch, compressed):
    monkeypatch.setattr(ogb_mod, "_BLOCK_BYTES", 16)  # npz members read in chunks of a few values
    data = load_ogb(_binary_dataset(tmp_path / "ogbn_papers100M", compressed))
    assert torch.equal(data.edge_index, torch.from_numpy(EDGES.T.copy()))  # papers100M: directed
    assert data.x.dtype == torch.float32 and torch.equal(data.x, torch.from_numpy(FEAT.astype(np.float16)).float())
    assert data.y.tolist() == [2, 0, -1, 1, 0]
    assert torch.equal(data.train_mask, _masks(5, [0, 3])) and torch.equal(data.test_mask, _masks(5, [4]))


def test_ogb_inputs_for_partition_and_train(tmp_path):
    root = _csv_dataset(tmp_path / "ogbn_arxiv", scheme="time")
    data = open_input(f"ogb:{root}")
    assert data.num_edges == 6
    assert open_input(f"ogb:{root},undirected=true,split=none").num_edges == 12
    assert open_input(f"ogb:{root}", undirected=True).num_edges == 12
    loaded = load_dataset(f"ogb:{root}")
    assert torch.equal(loaded.edge_index, data.edge_index) and loaded.transforms == ()
    with pytest.raises(PartitionError, match="unknown option 'scale'"):
        open_input(f"ogb:{root},scale=2")
    with pytest.raises(PartitionError, match="name the dataset directory"):
        open_input("ogb:")


def test_partition_cli_reads_an_ogb_directory(tmp_path):
    from distgnn.partition.cli import main
    from distgnn.partition.reader import reassemble

    root = _csv_dataset(tmp_path / "ogbn_products")
    assert main([f"ogb:{root}", "--parts", "2", "--method", "random", "--out", str(tmp_path / "p")]) == 0
    back = reassemble(tmp_path / "p", original_ids=True)[0]
    assert back.num_edges == 12 and torch.equal(back.x, torch.from_numpy(FEAT))


def _remove(root: Path, rel: str) -> Path:
    (root / rel).unlink()
    return root


@pytest.mark.parametrize("make, match", [
    pytest.param(lambda p: p / "nowhere", "no such directory", id="missing-dir"),
    pytest.param(lambda p: (p / "empty").mkdir() or p / "empty", "no raw/ directory", id="no-raw"),
    pytest.param(lambda p: _remove(_csv_dataset(p / "d"), "raw/edge.csv.gz"), r"missing raw/edge\.csv\.gz",
                 id="no-edges"),
    pytest.param(lambda p: _remove(_csv_dataset(p / "d"), "raw/node-label.csv.gz"),
                 r"missing raw/node-label\.csv\.gz", id="no-labels"),
    pytest.param(lambda p: _remove(_csv_dataset(p / "d"), "split/sales_ranking/valid.csv.gz"),
                 r"missing sales_ranking/valid\.csv\.gz", id="no-split-file"),
    pytest.param(lambda p: _csv_dataset(p / "d", edges=np.array([[0, 1, 2]] * 6)), "3 columns on line 1, expected 2",
                 id="three-column-edges"),
    pytest.param(lambda p: _csv_dataset(p / "d", edges=np.array([[0, 1]] * 5 + [[0, 9]])),
                 r"node id 9 outside \[0, 5\)", id="edge-id-out-of-range"),
    pytest.param(lambda p: _csv_dataset(p / "d", feat=FEAT[:4]), "4 lines, but the dataset has 5 nodes",
                 id="short-features"),
    pytest.param(lambda p: _csv_dataset(p / "d", labels=np.array([2, 0, 1, 1, -3])), "negative class id",
                 id="negative-label"),
    pytest.param(lambda p: _csv_dataset(p / "d", labels=np.array([2, 0, float("nan"), 1, 0])),
                 "is -1 .no label. at node 2, which is in test_mask", id="split-node-unlabelled"),
])
def test_errors_name_the_file_and_the_fix(tmp_path, make, match):
    with pytest.raises(DataError, match=match):
        load_ogb(make(tmp_path))


def test_more_layout_errors(tmp_path):
    root = _csv_dataset(tmp_path / "d")
    (root / "raw" / "num-edge-list.csv.gz").unlink()
    _write(root / "raw" / "num-edge-list.csv.gz", [7])
    with pytest.raises(DataError, match="6 lines, but num-edge-list.csv.gz gives 7 edges"):
        load_ogb(root)
    _write(root / "raw" / "num-edge-list.csv.gz", [3, 3])
    with pytest.raises(DataError, match="lists 2 graphs"):
        load_ogb(root)
    _write(root / "raw" / "num-edge-list.csv.gz", [6])
    _write(root / "split" / "other" / "train.csv.gz", [0])
    with pytest.raises(DataError, match=r"several split schemes \(other, sales_ranking\); name one with split="):
        load_ogb(root)
    with pytest.raises(DataError, match="no split scheme 'time'"):
        load_ogb(root, split="time")
    _write(root / "split" / "sales_ranking" / "test.csv.gz", [2, 5])
    with pytest.raises(DataError, match=r"test.csv.gz: node id 5 outside \[0, 5\)"):
        load_ogb(root, split="sales_ranking")
    _write(root / "raw" / "edge.csv.gz", [["src", "dst"]] + list(EDGES))
    with pytest.raises(DataError, match="not a CSV of 2 numeric columns"):
        load_ogb(root, split=None)
    (root / "raw" / "num-node-dict.csv.gz").write_text("")
    with pytest.raises(DataError, match="heterogeneous dataset"):
        load_ogb(root)
    bare = tmp_path / "bare"
    (bare / "raw").mkdir(parents=True)
    _write(bare / "raw" / "edge.csv.gz", EDGES)
    _write(bare / "raw" / "node-label.csv.gz", LABELS)
    with pytest.raises(DataError, match="no split/<scheme>/ directory"):
        load_ogb(bare)
    outer = tmp_path / "outer"
    _csv_dataset(outer / "ogbn_arxiv")
    with pytest.raises(DataError, match="did you mean .*ogbn_arxiv"):
        load_ogb(outer)


def test_binary_layout_errors(tmp_path):
    root = _binary_dataset(tmp_path / "b", compressed=False)
    np.savez(root / "raw" / "data.npz", edges=EDGES, num_nodes_list=np.array([5]))
    with pytest.raises(DataError, match="no 'edge_index' array .* not an OGB data.npz"):
        load_ogb(root)
    np.savez(root / "raw" / "data.npz", edge_index=EDGES.T, num_nodes_list=np.array([5]))
    (root / "raw" / "node-label.npz").unlink()
    with pytest.raises(DataError, match=r"missing raw/node-label\.npz"):
        load_ogb(root)
    np.savez(root / "raw" / "node-label.npz", node_label=np.zeros((4, 1)))
    with pytest.raises(DataError, match="4 labels, but data.npz has 5 nodes"):
        load_ogb(root)
    (root / "raw" / "data.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz archive"):
        load_ogb(root)
