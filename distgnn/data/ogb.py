"""OGB node-property datasets read offline from the directory the ``ogb`` package downloads.

``ogb`` itself is never imported (it prompts on stdin when a release changed and reloads its cache
with an unsafe ``torch.load``). :func:`load_ogb` reads the files as ``ogb`` leaves them:

.. code-block:: text

    ogbn_products/                      (DIR: the dataset's own directory)
    ├── raw/
    │   ├── edge.csv.gz                 E lines "src,dst" (no header)
    │   ├── num-node-list.csv.gz        one line: N            (optional: else from the node files)
    │   ├── num-edge-list.csv.gz        one line: E            (optional: sizes the edge array up front)
    │   ├── node-feat.csv.gz            N lines of F numbers   (optional: ogbn-proteins has none)
    │   ├── edge-feat.csv.gz            E lines of S numbers   (optional: ogbn-proteins)
    │   └── node-label.csv.gz           N lines of T numbers ("nan" = no label)
    └── split/<scheme>/                 e.g. sales_ranking, time, species
        ├── train.csv.gz                one node id per line
        ├── valid.csv.gz
        └── test.csv.gz

The binary variant (``ogbn-papers100M``) replaces the CSV files of ``raw/`` by ``raw/data.npz``
(arrays ``edge_index [2, E]``, ``num_nodes_list``, ``num_edges_list``, ``node_feat [N, F]``,
optionally ``edge_feat [E, S]``) and ``raw/node-label.npz`` (``node_label [N, T]``).

Streaming: CSV files are read block by block with ``pyarrow.csv.open_csv`` and ``.npz`` members
chunk by chunk from the zip archive; each block is written into one preallocated array, so the
edge list is never held as Python objects nor twice (except when ``num-edge-list.csv.gz`` is
absent: the blocks are then concatenated once at the end).

Conversions (the numbers ``ogb``'s own loaders give):

* ``undirected`` (``ogb``'s ``add_inverse_edge``): every edge ``(u, v)`` is followed by ``(v, u)``
  (edge features repeated), so ``E`` doubles. The default follows ``ogb``'s table for the known
  datasets (``ogbn-products``, ``ogbn-proteins``: yes; ``ogbn-arxiv``, ``ogbn-papers100M``: no)
  and is ``False`` for any other directory name.
* Labels: one column of whole numbers -> ``y [N]`` int64 class ids, ``nan`` -> ``-1``; one column
  with fractions -> ``[N]`` float targets; several columns -> ``[N, T]`` float32 (``ogbn-proteins``'
  112 binary tasks: ``--task multi-label``).
* Features: ``x [N, F]`` float32 (integer features cast); splits become ``train_mask``,
  ``val_mask`` and ``test_mask``.

Heterogeneous datasets (``ogbn-mag``) are refused.
"""
from __future__ import annotations

import gzip
import logging
import os
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .dataset import DataError, GraphData

log = logging.getLogger(__name__)

__all__ = ["load_ogb", "OGB_DEFAULTS"]

# ogb's own table for the homogeneous node-property datasets: (add_inverse_edge, split scheme).
OGB_DEFAULTS = {
    "ogbn_products": (True, "sales_ranking"),
    "ogbn_proteins": (True, "species"),
    "ogbn_arxiv": (False, "time"),
    "ogbn_papers100M": (False, "time"),
}

_BLOCK_BYTES = 1 << 24  # CSV block / npz chunk size (16 MiB)


def load_ogb(
    root: str | os.PathLike,
    *,
    split: str | None = "auto",
    undirected: bool | None = None,
    name: str | None = None,
) -> GraphData:
    """A node-property dataset from an ``ogb`` download directory (layout in the module docstring).

    Args:
        root: the dataset's directory (the one holding ``raw/`` and ``split/``, e.g.
            ``dataset/ogbn_products``).
        split: the scheme under ``split/``; ``"auto"`` (default): the only one there, or ``ogb``'s
            default for a known dataset; ``None``: no masks.
        undirected: add every reverse edge after its edge (``ogb``'s ``add_inverse_edge``);
            ``None`` (default): ``ogb``'s choice for a known dataset, else ``False``.
        name: the graph's name (default: ``ogbn-...`` from the directory name).

    Returns:
        :class:`GraphData` with ``edge_index [2, E]`` int64 (``[2, 2E]`` when ``undirected``), ``x
        [N, F]`` float32 or ``None``, ``y`` (see the module docstring), the three masks, and
        ``edge_attr [E, S]`` float32 when ``edge-feat`` exists.

    Raises:
        DataError: a missing directory or file, a heterogeneous dataset, files whose line or column
            counts disagree, a node id out of range, or a split naming a node without a label.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"ogb:{root}: no such directory (give the dataset's directory, e.g. dataset/ogbn_products)")
    raw = root / "raw"
    if not raw.is_dir():
        inner = sorted(p.name for p in root.iterdir() if (p / "raw").is_dir())
        hint = f" (did you mean {root / inner[0]}?)" if inner else ""
        raise DataError(f"ogb:{root}: no raw/ directory, so not an OGB dataset directory{hint}")
    if (raw / "num-node-dict.csv.gz").exists() or (raw / "relations").is_dir():
        raise DataError(f"ogb:{root}: a heterogeneous dataset (like ogbn-mag); load_ogb reads homogeneous ones only")
    key = root.resolve().name.replace("-", "_")
    known = OGB_DEFAULTS.get(key)
    if undirected is None:
        undirected = bool(known and known[0])
    binary = (raw / "data.npz").is_file()
    if binary:
        n, edge_index, x, edge_attr, labels = _read_binary(raw, undirected)
    else:
        n, edge_index, x, edge_attr, labels = _read_csv(raw, undirected)
    y = _labels(labels, raw / ("node-label.npz" if binary else "node-label.csv.gz"))
    masks = _splits(root, split, known[1] if known else None, n)
    data = GraphData(edge_index=edge_index, num_nodes=n, x=x, y=y, edge_attr=edge_attr,
                     name=name or key.replace("_", "-"), meta={"source": "ogb", "root": str(root),
                                                              "undirected": undirected}, **masks)
    log.info("read %r from %s", data, root)
    return data


# ---------------------------------------------------------------------------------------------- CSV


def _require_file(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"ogb:{path.parent.parent}: missing {path.parent.name}/{path.name} "
                        "(an incomplete download? fetch the dataset again)")
    return path


def _num_columns(path: Path) -> int:
    """Columns on the first line of a (gzipped) CSV file; 0 for an empty file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as f:
            line = f.readline().strip()
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: unreadable ({err})") from None
    return len(line.split(",")) if line else 0


def _csv_blocks(path: Path, columns: int, kind: str) -> Iterator[np.ndarray]:
    """``[rows, columns]`` blocks of a header-less numeric CSV file (``kind``: "int" or "float").

    Float columns (parsed as float32): empty or ``nan`` cells become NaN. Int columns: a missing or non-integer cell is
    a :class:`DataError` naming the file and the row.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"c{j}" for j in range(columns)]
    pa_type = pa.int64() if kind == "int" else pa.float32()  # float32: what x and y are stored as
    dtype = np.int64 if kind == "int" else np.float32
    try:
        reader = pacsv.open_csv(
            pa.input_stream(str(path), compression="detect"),
            read_options=pacsv.ReadOptions(column_names=names, block_size=_BLOCK_BYTES),
            convert_options=pacsv.ConvertOptions(column_types={c: pa_type for c in names}),
        )
    except pa.ArrowException as err:
        raise DataError(f"{path}: not a CSV of {columns} numeric columns ({_first_line(err)})") from None
    row = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            pa.default_memory_pool().release_unused()  # Arrow's pool keeps freed blocks otherwise
            return
        except pa.ArrowException as err:
            raise DataError(f"{path}: not a CSV of {columns} numeric columns near line {row + 1} "
                            f"({_first_line(err)})") from None
        block = np.empty((batch.num_rows, columns), dtype=dtype)
        for j in range(columns):
            col = batch.column(j)
            if kind == "int" and col.null_count:
                import pyarrow.compute as pc

                at = row + int(pc.index(pc.is_null(col), True).as_py()) + 1
                raise DataError(f"{path}: missing value in column {j + 1} of line {at}")
            block[:, j] = col.to_numpy(zero_copy_only=False)
        row += batch.num_rows
        yield block


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _single_count(path: Path, what: str) -> int | None:
    """The one number in ``num-node-list``/``num-edge-list`` (None when the file is absent)."""
    if not path.is_file():
        return None
    values = np.concatenate([b[:, 0] for b in _csv_blocks(path, 1, "int")] or [np.zeros(0, np.int64)])
    if len(values) != 1:
        raise DataError(f"{path}: lists {len(values)} graphs; load_ogb reads node-property datasets (one graph)")
    if values[0] < 0:
        raise DataError(f"{path}: negative {what} ({int(values[0])})")
    return int(values[0])


def _read_matrix(path: Path, rows: int | None, kind: str, what: str) -> np.ndarray:
    """A whole CSV file as one ``[rows, C]`` array, filled block by block."""
    cols = _num_columns(path)
    if cols == 0:
        return np.zeros((0, 0), dtype=np.int64 if kind == "int" else np.float32)
    out_dtype = np.int64 if kind == "int" else np.float32
    if rows is None:
        blocks = [b.astype(out_dtype, copy=False) for b in _csv_blocks(path, cols, kind)]
        return np.concatenate(blocks) if blocks else np.zeros((0, cols), out_dtype)
    out = np.empty((rows, cols), dtype=out_dtype)
    at = 0
    for block in _csv_blocks(path, cols, kind):
        if at + len(block) > rows:
            raise DataError(f"{path}: more than {rows} lines, but the dataset has {rows} {what}")
        out[at : at + len(block)] = block
        at += len(block)
    if at != rows:
        raise DataError(f"{path}: {at} lines, but the dataset has {rows} {what}")
    return out


def _read_edges(path: Path, num_edges: int | None, undirected: bool) -> np.ndarray:
    """``[2, E]`` (``[2, 2E]`` interleaved with the reverse edges when ``undirected``) int64."""
    cols = _num_columns(path)
    if cols not in (0, 2):
        raise DataError(f"{path}: {cols} columns on line 1, expected 2 (src,dst): not an OGB edge list")
    step = 2 if undirected else 1
    if num_edges is not None:
        out = np.empty((2, step * num_edges), dtype=np.int64)
        at = 0
        for block in _csv_blocks(path, 2, "int") if cols else ():
            if at + len(block) > num_edges:
                raise DataError(f"{path}: more lines than the {num_edges} edges num-edge-list.csv.gz gives")
            _put_edges(out, block, at, step)
            at += len(block)
        if at != num_edges:
            raise DataError(f"{path}: {at} lines, but num-edge-list.csv.gz gives {num_edges} edges")
        return out
    blocks = list(_csv_blocks(path, 2, "int")) if cols else []
    total = sum(len(b) for b in blocks)
    out = np.empty((2, step * total), dtype=np.int64)
    at = 0
    while blocks:
        block = blocks.pop(0)  # each block released once copied
        _put_edges(out, block, at, step)
        at += len(block)
    return out


def _put_edges(out: np.ndarray, block: np.ndarray, at: int, step: int) -> None:
    """Write rows ``at..`` of a ``[C, 2]`` (src, dst) block into ``out [2, step*E]``."""
    lo, hi = step * at, step * (at + len(block))
    out[0, lo:hi:step], out[1, lo:hi:step] = block[:, 0], block[:, 1]
    if step == 2:
        out[0, lo + 1 : hi : 2], out[1, lo + 1 : hi : 2] = block[:, 1], block[:, 0]


def _read_csv(raw: Path, undirected: bool):
    edge_file = _require_file(raw / "edge.csv.gz")
    label_file = _require_file(raw / "node-label.csv.gz")
    n = _single_count(raw / "num-node-list.csv.gz", "node count")
    e = _single_count(raw / "num-edge-list.csv.gz", "edge count")
    x = None
    if (raw / "node-feat.csv.gz").is_file():
        feat = _read_matrix(raw / "node-feat.csv.gz", n, "float", "nodes")
        n = len(feat) if n is None else n
        x = torch.from_numpy(feat)
    labels = _read_matrix(label_file, n, "float", "nodes")
    n = len(labels) if n is None else n
    edges = _read_edges(edge_file, e, undirected)
    edge_attr = None
    if (raw / "edge-feat.csv.gz").is_file():
        attr = _read_matrix(raw / "edge-feat.csv.gz", edges.shape[1] // (2 if undirected else 1), "float", "edges")
        edge_attr = torch.from_numpy(np.repeat(attr, 2, axis=0) if undirected else attr)
    return n, _edge_tensor(edges, n, raw / "edge.csv.gz"), x, edge_attr, labels


def _edge_tensor(edges: np.ndarray, n: int, path: Path) -> torch.Tensor:
    if edges.size:
        lo, hi = int(edges.min()), int(edges.max())
        if lo < 0 or hi >= n:
            bad = lo if lo < 0 else hi
            raise DataError(f"{path}: node id {bad} outside [0, {n}) (the dataset has {n} nodes)")
    return torch.from_numpy(edges)


# ------------------------------------------------------------------------------------------- binary


def _npz_members(path: Path) -> dict[str, str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return {m[:-4]: m for m in zf.namelist() if m.endswith(".npy")}
    except (OSError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a readable .npz archive ({err})") from None


def _npz_array(path: Path, member: str, dtype) -> np.ndarray:
    """One array of an ``.npz`` archive, read chunk by chunk into an array of ``dtype``."""
    with zipfile.ZipFile(path) as zf, zf.open(member) as f:
        version = np.lib.format.read_magic(f)
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, src_dtype = header(f)
        if src_dtype.hasobject:
            raise DataError(f"{path}: {member} holds Python objects; expected a numeric array")
        out = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
        flat = out.reshape(-1, order="F" if fortran else "C")  # a view
        per = max(1, _BLOCK_BYTES // max(1, src_dtype.itemsize))
        at = 0
        while at < flat.size:
            count = min(per, flat.size - at)
            buf = f.read(count * src_dtype.itemsize)
            if len(buf) != count * src_dtype.itemsize:
                raise DataError(f"{path}: {member} is truncated")
            flat[at : at + count] = np.frombuffer(buf, dtype=src_dtype)
            at += count
    return out


def _read_binary(raw: Path, undirected: bool):
    data_file = raw / "data.npz"
    label_file = _require_file(raw / "node-label.npz")
    members = _npz_members(data_file)
    for need in ("edge_index", "num_nodes_list"):
        if need not in members:
            raise DataError(f"{data_file}: no {need!r} array (has {', '.join(sorted(members)) or 'none'}); "
                            "not an OGB data.npz")
    counts = _npz_array(data_file, members["num_nodes_list"], np.int64).reshape(-1)
    if len(counts) != 1:
        raise DataError(f"{data_file}: lists {len(counts)} graphs; load_ogb reads node-property datasets (one graph)")
    n = int(counts[0])
    edges = _npz_array(data_file, members["edge_index"], np.int64)
    if edges.ndim != 2 or edges.shape[0] != 2:
        raise DataError(f"{data_file}: edge_index has shape {edges.shape}, expected [2, E]")
    if undirected:
        both = np.empty((2, 2 * edges.shape[1]), dtype=np.int64)
        _put_edges(both, edges.T, 0, 2)
        edges = both
    x = None
    if "node_feat" in members:
        feat = _npz_array(data_file, members["node_feat"], np.float32)
        if feat.ndim != 2 or feat.shape[0] != n:
            raise DataError(f"{data_file}: node_feat has shape {feat.shape}, expected [{n}, F]")
        x = torch.from_numpy(np.ascontiguousarray(feat))
    edge_attr = None
    if "edge_feat" in members:
        attr = _npz_array(data_file, members["edge_feat"], np.float32)
        edge_attr = torch.from_numpy(np.repeat(attr, 2, axis=0) if undirected else np.ascontiguousarray(attr))
    label_members = _npz_members(label_file)
    if "node_label" not in label_members:
        raise DataError(f"{label_file}: no 'node_label' array; not an OGB node-label.npz")
    labels = _npz_array(label_file, label_members["node_label"], np.float32)
    labels = labels.reshape(len(labels), -1) if labels.ndim != 2 else labels
    if len(labels) != n:
        raise DataError(f"{label_file}: {len(labels)} labels, but data.npz has {n} nodes")
    return n, _edge_tensor(edges, n, data_file), x, edge_attr, labels


# ---------------------------------------------------------------------------------- labels, splits


def _labels(labels: np.ndarray, path: Path) -> torch.Tensor | None:
    """``[N, T]`` float -> ``y`` as in the module docstring."""
    if labels.shape[1] == 0:
        return None
    if labels.shape[1] > 1:
        return torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32))
    col = labels[:, 0]
    known = ~np.isnan(col)
    if np.array_equal(col[known], np.floor(col[known])):
        if known.any() and col[known].min() < 0:
            raise DataError(f"{path}: negative class id {int(col[known].min())}")
        y = np.full(len(col), -1, dtype=np.int64)
        y[known] = col[known]
        return torch.from_numpy(y)
    return torch.from_numpy(col.astype(np.float32))


def _splits(root: Path, split: str | None, default: str | None, n: int) -> dict[str, torch.Tensor]:
    if split is None:
        return {}
    base = root / "split"
    schemes = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    if split == "auto":
        if not schemes:
            raise DataError(f"ogb:{root}: no split/<scheme>/ directory (pass split=None to read no masks)")
        if len(schemes) == 1:
            split = schemes[0]
        elif default in schemes:
            split = default
        else:
            raise DataError(f"ogb:{root}: several split schemes ({', '.join(schemes)}); name one with split=")
    if split not in schemes:
        raise DataError(f"ogb:{root}: no split scheme {split!r} (has: {', '.join(schemes) or 'none'})")
    masks = {}
    for file, field in (("train", "train_mask"), ("valid", "val_mask"), ("test", "test_mask")):
        path = _require_file(base / split / f"{file}.csv.gz")
        cols = _num_columns(path)
        if cols > 1:
            raise DataError(f"{path}: {cols} columns, expected one node id per line")
        ids = np.concatenate([b[:, 0] for b in _csv_blocks(path, 1, "int")] if cols else [np.zeros(0, np.int64)])
        if ids.size and (ids.min() < 0 or ids.max() >= n):
            bad = int(ids.min() if ids.min() < 0 else ids.max())
            raise DataError(f"{path}: node id {bad} outside [0, {n})")
        mask = torch.zeros(n, dtype=torch.bool)
        mask[torch.from_numpy(ids)] = True
        masks[field] = mask
    return masks
