"""Reading a partition back: the manifest, one part as tensors, or the whole graph.

Every shard is checked while it is read: its bytes are hashed as they arrive (one pass, no second
read) and compared with the sha256 and size the manifest records before a single value is decoded;
then its values are checked against the format (ids in range, finite features, labels in
``[-1, N)``, no training/validation/test node without a label). A failed check raises
:class:`~.errors.PartitionError` with one line naming the file.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..data.dataset import GraphData
from .errors import PartitionError
from .format import (
    EDGE_COLUMNS, EDGES, HALO, HALO_EDGES, LINK_EDGES, MANIFEST, NODE_COLUMNS, NODES, NODES_MAP, FileInfo, Manifest,
    part_dir,
)
from .storage import _first_line, join, open_fs

log = logging.getLogger(__name__)


@dataclass
class Part:
    """One part of a partitioned graph, as torch tensors ready for a worker.

    ``n = node_end - node_start`` owned nodes, ``E_k`` stored edges, ``H_k`` halo nodes,
    ``E_h`` halo in-edges (``halo_hops > 1`` only). All node ids are NEW global ids.

    ===================  =================  ===========================================================
    field                shape / dtype      meaning
    ===================  =================  ===========================================================
    part_id              int                ``k``
    num_parts            int                ``K``
    node_start/node_end  int                this part owns new ids ``[node_start, node_end)``
    num_nodes_global     int                ``N`` of the whole graph
    num_edges_global     int                ``E`` of the whole graph
    x                    ``[n, F]`` float   features of the owned nodes (or ``None``)
    y                    ``[n]`` int64      labels, ``-1`` unlabelled (or ``None``)
    train/val/test_mask  ``[n]`` bool       (or ``None``)
    in_degree            ``[n]`` int64      in-degree in the whole graph
    out_degree           ``[n]`` int64      out-degree in the whole graph
    edge_index           ``[2, E_k]`` int64 every edge whose target is owned here; row 0 source, row 1
                                            target (always in ``[node_start, node_end)``)
    eid                  ``[E_k]`` int64    original edge ids, ascending
    edge_attr            ``[E_k, S]``       edge features (or ``None``)
    halo_ids             ``[H_k]`` int64    halo nodes, sorted by hop then id
    halo_owner           ``[H_k]`` int64    the part owning each halo node
    halo_hop             ``[H_k]`` int64    each halo node's ring, ``1..halo_hops``
    halo_edge_index      ``[2, E_h]`` int64 in-edges of the halo rings ``< halo_hops`` (copies)
    halo_eid             ``[E_h]`` int64    their original edge ids
    halo_edge_attr       ``[E_h, S]``       their features (or ``None``)
    link_edges           dict of ``[L]``    with an edge split: ``link_edges.parquet`` as tensors, keys
                                            src, dst, query (int64), split, label (int8); else ``None``
    ===================  =================  ===========================================================
    """

    part_id: int
    num_parts: int
    node_start: int
    node_end: int
    num_nodes_global: int
    num_edges_global: int
    in_degree: Tensor
    out_degree: Tensor
    edge_index: Tensor
    eid: Tensor
    halo_ids: Tensor
    halo_owner: Tensor
    halo_hop: Tensor
    halo_edge_index: Tensor
    halo_eid: Tensor
    x: Tensor | None = None
    y: Tensor | None = None
    train_mask: Tensor | None = None
    val_mask: Tensor | None = None
    test_mask: Tensor | None = None
    edge_attr: Tensor | None = None
    halo_edge_attr: Tensor | None = None
    link_edges: dict[str, Tensor] | None = None

    @property
    def num_nodes(self) -> int:
        """Owned nodes ``n``."""
        return self.node_end - self.node_start

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def node_ids(self) -> Tensor:
        """``[n]`` the new ids of the owned nodes."""
        return torch.arange(self.node_start, self.node_end, dtype=torch.long)

    def __repr__(self) -> str:
        return (f"Part({self.part_id}/{self.num_parts}, nodes=[{self.node_start}, {self.node_end}), "
                f"edges={self.num_edges}, halo={len(self.halo_ids)})")


def _manifest_bytes(path: str | os.PathLike) -> bytes:
    fs, root = open_fs(path)
    where = f"{os.fspath(path)}/{MANIFEST}"
    try:
        with fs.open_input_stream(join(root, MANIFEST)) as f:
            return f.read()
    except (FileNotFoundError, OSError) as err:
        raise PartitionError(f"{where}: cannot read the manifest ({_first_line(err)}); is this a partition?") from None


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read and check ``path/manifest.json`` (``path`` local or a pyarrow URI)."""
    return Manifest.from_json(_manifest_bytes(path), f"{os.fspath(path)}/{MANIFEST}")


def manifest_digest(path: str | os.PathLike) -> str:
    """The sha256 (hex) of ``path/manifest.json``, which names the partition's exact content (the
    manifest holds the sha256 of every shard)."""
    return hashlib.sha256(_manifest_bytes(path)).hexdigest()


_BLOCK = 8 << 20  # bytes read and hashed at a time


def read_verified(fs, root: str, rel: str, info: FileInfo):
    """The bytes of ``rel`` as a pyarrow buffer, hashed while they are read (one pass).

    Raises :class:`PartitionError` naming ``rel`` when its size or sha256 differ from ``info``.
    """
    import pyarrow as pa

    try:
        with fs.open_input_file(join(root, rel)) as f:
            size = f.size()
            if size != info.bytes:
                raise PartitionError(f"{rel}: {size} bytes, the manifest says {info.bytes} (truncated or rewritten; "
                                     "run python -m distgnn.partition verify)")
            data = pa.allocate_buffer(size)  # not zero-filled: every byte is read into it
            view = memoryview(data)
            h = hashlib.sha256()
            done = 0
            while done < size:
                got = f.readinto(view[done:done + _BLOCK])
                if not got:
                    break
                h.update(view[done:done + got])
                done += got
    except (OSError, pa.ArrowException) as err:
        raise PartitionError(f"{rel}: unreadable ({_first_line(err)})") from None
    if done != size:
        raise PartitionError(f"{rel}: ended after {done} of {size} bytes (truncated while being read)")
    if h.hexdigest() != info.sha256:
        raise PartitionError(f"{rel}: sha256 mismatch (changed or damaged after it was written; "
                             "run python -m distgnn.partition verify)")
    return data


def read_table(fs, root: str, rel: str, columns=None, expect: FileInfo | None = None):
    """A whole Parquet file of a partition; raise :class:`PartitionError` naming it if unreadable.

    With ``expect`` (the manifest's entry) the file's bytes are checked against its sha256 and
    size while they are read (:func:`read_verified`), before anything is decoded.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if expect is not None:
            return pq.read_table(pa.BufferReader(read_verified(fs, root, rel, expect)), columns=columns)
        with fs.open_input_file(join(root, rel)) as f:
            return pq.read_table(f, columns=columns)
    except (OSError, pa.ArrowException) as err:
        raise PartitionError(f"{rel}: unreadable ({_first_line(err)})") from None


def _expected(m: Manifest, rel: str, checksums: bool) -> FileInfo | None:
    if not checksums:
        return None
    info = m.files.get(rel)
    if info is None:
        raise PartitionError(f"{rel}: not listed in the manifest's files, so it cannot be checked (run verify)")
    return info


def _numpy_dtype(arrow_type, dtype: str | None) -> np.dtype:
    if dtype is not None:
        return np.dtype(dtype)
    t = getattr(arrow_type, "value_type", arrow_type)  # list columns: their values' type
    return np.dtype(t.to_pandas_dtype())


def fill_column(chunks, out: np.ndarray, start: int = 0) -> int:
    """Write Arrow ``chunks`` (arrays of one column) into rows ``start..`` of ``out`` ``[R, *shape]``.

    Each chunk is flattened (a fixed-size-list column's values, a zero-copy view) and viewed as
    numpy without a copy where Arrow allows (numeric, no nulls); the write into ``out`` (with the
    cast to ``out``'s dtype, if any) is then the one copy. Returns the row after the last written.
    """
    width = int(np.prod(out.shape[1:], dtype=np.int64))
    for chunk in chunks:
        n = len(chunk)
        if not n:
            continue
        values = chunk.flatten() if hasattr(chunk, "flatten") and chunk.type.num_fields else chunk
        if len(values) != n * width:
            raise PartitionError(f"column {chunk.type}: {len(values)} values for {n} rows of {width}")
        out[start : start + n] = values.to_numpy(zero_copy_only=False).reshape(n, *out.shape[1:])
        start += n
    return start


def column_numpy(table, name: str, shape: tuple[int, ...] = (), dtype: str | None = None) -> np.ndarray:
    """A column as a writable numpy array, ``[R, *shape]`` for fixed-size-list columns.

    One copy: the Arrow chunks are written straight into one preallocated contiguous array
    (:func:`fill_column`); no intermediate combined chunk, Python objects or second copy.
    """
    col = table.column(name)
    out = np.empty((table.num_rows, *shape), dtype=_numpy_dtype(col.type, dtype))
    fill_column(col.chunks, out)
    return out


_BATCH_BYTES = 16 << 20  # decoded bytes per batch when a column is read batch by batch


class _Columns:
    """A Parquet shard decoded one column at a time, ``_BATCH_BYTES`` at a time, each batch written
    straight into its destination: the decoded table never exists whole, so loading holds the
    file's (compressed) bytes, the destination arrays and one batch."""

    def __init__(self, fs, root: str, rel: str, expect: FileInfo | None) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.rel = rel
        try:
            source = pa.BufferReader(read_verified(fs, root, rel, expect)) if expect is not None else \
                fs.open_input_file(join(root, rel))
            self.file = pq.ParquetFile(source)
        except (OSError, pa.ArrowException) as err:
            raise PartitionError(f"{rel}: unreadable ({_first_line(err)})") from None
        self.num_rows = int(self.file.metadata.num_rows)
        self.names = self.file.schema_arrow.names

    def read(self, name: str, shape: tuple[int, ...] = (), dtype: str | None = None,
             out: np.ndarray | None = None) -> np.ndarray:
        """Column ``name`` as ``[R, *shape]`` (into ``out`` when given, e.g. a row of a larger array)."""
        import pyarrow as pa

        if name not in self.names:
            raise PartitionError(f"{self.rel}: no column {name!r} (run verify)")
        if out is None:
            out = np.empty((self.num_rows, *shape), dtype=_numpy_dtype(self.file.schema_arrow.field(name).type, dtype))
        row_bytes = max(1, out.itemsize * int(np.prod(out.shape[1:], dtype=np.int64)))
        try:
            batches = self.file.iter_batches(batch_size=max(1024, _BATCH_BYTES // row_bytes), columns=[name],
                                             use_threads=False)
            end = 0
            for batch in batches:
                end = fill_column([batch.column(0)], out, end)
        except pa.ArrowException as err:
            raise PartitionError(f"{self.rel}: unreadable column {name!r} ({_first_line(err)})") from None
        if end != self.num_rows:
            raise PartitionError(f"{self.rel}: column {name!r} has {end} rows, the file {self.num_rows} (run verify)")
        if out.nbytes >= _BATCH_BYTES:  # Arrow's pool (mimalloc) keeps freed decode buffers: hand them back
            pa.default_memory_pool().release_unused()
        return out


def _t(a: np.ndarray) -> Tensor:
    return torch.from_numpy(a)


def _edges(fs, root, m: Manifest, rel: str, rows: int, checksums: bool):
    table = _Columns(fs, root, rel, _expected(m, rel, checksums))
    if table.num_rows != rows:
        raise PartitionError(f"{rel}: {table.num_rows} rows, manifest says {rows} (run verify)")
    ei = np.empty((2, rows), dtype=np.int64)  # src and dst decoded straight into their rows
    table.read("src", out=ei[0])
    table.read("dst", out=ei[1])
    eid = table.read("eid", dtype="int64")
    _in_range(rel, "source id", ei[0], 0, m.num_nodes)
    _in_range(rel, "edge id", eid, 0, m.num_edges)
    spec = m.edge_field(EDGE_COLUMNS["edge_attr"])
    attr = None
    if spec is not None:
        attr = table.read(spec.name, spec.shape, spec.dtype)
        _finite(rel, "edge features", attr, "row")
        attr = _t(attr)
    return _t(ei), _t(eid), attr


def _in_range(rel: str, what: str, values: np.ndarray, lo: int, hi: int) -> None:
    """Every value in ``[lo, hi)``, else a one-line error naming the first offender."""
    if values.size and (values.min() < lo or values.max() >= hi):
        row = int(np.flatnonzero((values < lo) | (values >= hi))[0])
        raise PartitionError(f"{rel}: {what} {int(values[row])} (row {row}) lies outside [{lo}, {hi}) (run verify)")


def _finite(rel: str, what: str, values: np.ndarray, unit: str, first: int = 0) -> None:
    if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))[0])
        raise PartitionError(f"{rel}: {what} have NaN or infinite values (first at {unit} {first + row})")


def _check_nodes(rel: str, m: Manifest, start: int, arrays: dict) -> None:
    """Values of the owned rows: finite features; class labels (``[N]`` integers) in ``[-1, N)``,
    masked nodes labelled."""
    x, y = arrays.get("x"), arrays.get("y")
    if x is not None:
        _finite(rel, "features", x, "node", start)
    if y is None or y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        return  # regression targets or a multi-label column: the task checks them (distgnn.tasks)
    top = max(m.num_nodes, 1)
    if y.size and (y.min() < -1 or y.max() >= top):
        row = int(np.flatnonzero((y < -1) | (y >= top))[0])
        raise PartitionError(f"{rel}: label {int(y[row])} at node {start + row} lies outside [-1, {top}) (class ids "
                             f"are 0..C-1 with C at most the number of nodes; -1 is unlabelled)")
    for attr, kind in (("train_mask", "training"), ("val_mask", "validation"), ("test_mask", "test")):
        mask = arrays.get(attr)
        if mask is not None and (mask & (y < 0)).any():
            row = int(np.flatnonzero(mask & (y < 0))[0])
            raise PartitionError(f"{rel}: node {start + row} is a {kind} node without a label (-1)")


def _link_edges(fs, root, m: Manifest, k: int, checksums: bool) -> dict[str, Tensor]:
    """``part-KKKKK/link_edges.parquet`` as tensors, its values checked against the format."""
    rel = f"{part_dir(k)}/{LINK_EDGES}"
    table = read_table(fs, root, rel, expect=_expected(m, rel, checksums))
    types = {"src": "int64", "dst": "int64", "split": "int8", "label": "int8", "query": "int64"}
    missing = [c for c in types if c not in table.column_names]
    if missing:
        raise PartitionError(f"{rel}: no column {missing[0]!r} (run verify)")
    cols = {c: column_numpy(table, c, dtype=t) for c, t in types.items()}
    _in_range(rel, "source id", cols["src"], 0, m.num_nodes)
    _in_range(rel, "target id", cols["dst"], 0, m.num_nodes)
    _in_range(rel, "split", cols["split"], 1, 3)
    _in_range(rel, "label", cols["label"], 0, 2)
    return {c: _t(a) for c, a in cols.items()}


def load_link_edges(path: str | os.PathLike, k: int, manifest: Manifest | None = None, *,
                    checksums: bool = True) -> dict[str, Tensor]:
    """Only ``part-KKKKK/link_edges.parquet`` of part ``k`` (as :attr:`Part.link_edges`); a one-line
    :class:`PartitionError` when the partition has no edge split."""
    fs, root = open_fs(path)
    m = manifest or load_manifest(path)
    if m.link_split is None:
        raise PartitionError(f"{os.fspath(path)}: the partition has no edge split (partition it with --edge-split)")
    if not 0 <= k < m.num_parts:
        raise PartitionError(f"{os.fspath(path)}: part {k} does not exist (num_parts={m.num_parts})")
    return _link_edges(fs, root, m, k, checksums)


def load_part(path: str | os.PathLike, k: int, manifest: Manifest | None = None, *, checksums: bool = True) -> Part:
    """Load part ``k`` of the partition at ``path`` (see :class:`Part` for the fields).

    Every file is checked against the manifest's sha256 while it is read (``checksums=False``
    skips that, not the value checks) and its values against the format (module docstring);
    a failure raises :class:`PartitionError` naming the file.
    """
    fs, root = open_fs(path)
    m = manifest or load_manifest(path)
    if not 0 <= k < m.num_parts:
        raise PartitionError(f"{os.fspath(path)}: part {k} does not exist (num_parts={m.num_parts})")
    info = m.parts[k]
    d = part_dir(k)
    rel = f"{d}/{NODES}"
    nodes = _Columns(fs, root, rel, _expected(m, rel, checksums))  # decoded column by column into their arrays
    if nodes.num_rows != info.num_nodes:
        raise PartitionError(f"{rel}: {nodes.num_rows} rows, manifest says {info.num_nodes} (run verify)")
    arrays = {}
    for attr, col in NODE_COLUMNS.items():
        spec = m.node_field(col)
        if spec is not None:
            arrays[attr] = nodes.read(col, spec.shape, spec.dtype)
    _check_nodes(rel, m, info.node_start, arrays)
    edge_index, eid, edge_attr = _edges(fs, root, m, f"{d}/{EDGES}", info.num_edges, checksums)
    _in_range(f"{d}/{EDGES}", "target id", edge_index[1].numpy(), info.node_start, info.node_end)
    rel = f"{d}/{HALO}"
    halo = read_table(fs, root, rel, expect=_expected(m, rel, checksums))
    halo_ids = column_numpy(halo, "id", dtype="int64")
    halo_owner = column_numpy(halo, "owner", dtype="int64")
    _in_range(rel, "halo id", halo_ids, 0, m.num_nodes)
    _in_range(rel, "owner", halo_owner, 0, m.num_parts)
    if m.halo_hops > 1:
        h_index, h_eid, h_attr = _edges(fs, root, m, f"{d}/{HALO_EDGES}", info.num_halo_edges, checksums)
    else:
        h_index, h_eid, h_attr = torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, dtype=torch.long), None
    link_edges = _link_edges(fs, root, m, k, checksums) if m.link_split is not None else None
    part = Part(
        part_id=k, num_parts=m.num_parts, node_start=info.node_start, node_end=info.node_end,
        num_nodes_global=m.num_nodes, num_edges_global=m.num_edges,
        in_degree=_t(nodes.read("in_degree", dtype="int64")),
        out_degree=_t(nodes.read("out_degree", dtype="int64")),
        edge_index=edge_index, eid=eid, edge_attr=edge_attr,
        halo_ids=_t(halo_ids), halo_owner=_t(halo_owner),
        halo_hop=_t(column_numpy(halo, "hop", dtype="int64")),
        halo_edge_index=h_index, halo_eid=h_eid, halo_edge_attr=h_attr,
        link_edges=link_edges, **{attr: _t(a) for attr, a in arrays.items()},
    )
    del nodes, halo
    import pyarrow as pa

    # Arrow's pool (mimalloc) keeps the part's freed decode buffers and file bytes (columns under
    # _BATCH_BYTES release nothing on the way): ~55 MiB of a 62 MiB 4-part share at scale 0.05
    pa.default_memory_pool().release_unused()
    return part


def load_nodes_map(path: str | os.PathLike, manifest: Manifest | None = None, *, checksums: bool = True) -> np.ndarray:
    """``new_to_old`` ``[N]`` int64: the original id of every new id (checked as :func:`load_part` does)."""
    fs, root = open_fs(path)
    m = manifest or load_manifest(path)
    table = read_table(fs, root, NODES_MAP, columns=["id", "new_id"], expect=_expected(m, NODES_MAP, checksums))
    if table.num_rows != m.num_nodes:
        raise PartitionError(f"{NODES_MAP}: {table.num_rows} rows, manifest says {m.num_nodes} (run verify)")
    new_id = column_numpy(table, "new_id", dtype="int64")
    _in_range(NODES_MAP, "new id", new_id, 0, m.num_nodes)
    new_to_old = np.full(m.num_nodes, -1, dtype=np.int64)
    new_to_old[new_id] = column_numpy(table, "id", dtype="int64")
    return new_to_old


def reassemble(path: str | os.PathLike, *, original_ids: bool = False) -> tuple[GraphData, Tensor]:
    """The whole graph back from its parts, and ``new_to_old`` ``[N]`` int64.

    The graph is in NEW ids (node ``i`` is new id ``i``) unless ``original_ids``, in which case it is
    in the original ids and equal to the graph that was partitioned. Either way edge ``j`` of the
    result is original edge ``j`` (edges are put back in ``eid`` order), self-loops and multi-edges
    included.
    """
    m = load_manifest(path)
    n, e = m.num_nodes, m.num_edges
    parts = [load_part(path, k, m) for k in range(m.num_parts)]
    new_to_old = load_nodes_map(path, m)
    edge_index = np.full((2, e), -1, dtype=np.int64)
    placed = np.zeros(e, dtype=np.int64)
    edge_attr = None
    if parts and parts[0].edge_attr is not None:
        edge_attr = torch.zeros((e, *parts[0].edge_attr.shape[1:]), dtype=parts[0].edge_attr.dtype)
    for p in parts:
        eid = p.eid.numpy()
        if eid.size and (eid.min() < 0 or eid.max() >= e):
            raise PartitionError(f"{part_dir(p.part_id)}/{EDGES}: edge id outside [0, {e}) (run verify)")
        edge_index[:, eid] = p.edge_index.numpy()
        placed += np.bincount(eid, minlength=e)
        if edge_attr is not None:
            edge_attr[p.eid] = p.edge_attr
    if e and (placed != 1).any():
        bad = int(np.flatnonzero(placed != 1)[0])
        raise PartitionError(f"{os.fspath(path)}: edge {bad} is stored {int(placed[bad])} times, not once (run verify)")
    fields = {}
    for attr in NODE_COLUMNS:
        values = [getattr(p, attr) for p in parts]
        if values and values[0] is not None:
            fields[attr] = torch.cat(values)
    if original_ids:
        for attr, value in fields.items():
            out = torch.empty_like(value)
            out[torch.from_numpy(new_to_old)] = value
            fields[attr] = out
        edge_index = new_to_old[edge_index]
    data = GraphData(edge_index=torch.from_numpy(edge_index), num_nodes=n, edge_attr=edge_attr,
                     name=m.name, transforms=m.transforms, **fields)
    return data, torch.from_numpy(new_to_old)
