"""Reading a partition back: the manifest, one part as tensors, or the whole graph."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..data.dataset import GraphData
from .errors import PartitionError
from .format import (
    EDGE_COLUMNS, EDGES, HALO, HALO_EDGES, MANIFEST, NODE_COLUMNS, NODES, NODES_MAP, Manifest, part_dir,
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


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read and check ``path/manifest.json`` (``path`` local or a pyarrow URI)."""
    fs, root = open_fs(path)
    where = f"{os.fspath(path)}/{MANIFEST}"
    try:
        with fs.open_input_stream(join(root, MANIFEST)) as f:
            text = f.read()
    except (FileNotFoundError, OSError) as err:
        raise PartitionError(f"{where}: cannot read the manifest ({_first_line(err)}); is this a partition?") from None
    return Manifest.from_json(text, where)


def read_table(fs, root: str, rel: str, columns=None):
    """A whole Parquet file of a partition; raise :class:`PartitionError` naming it if unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with fs.open_input_file(join(root, rel)) as f:
            return pq.read_table(f, columns=columns)
    except (OSError, pa.ArrowException) as err:
        raise PartitionError(f"{rel}: unreadable ({_first_line(err)})") from None


def column_numpy(table, name: str, shape: tuple[int, ...] = (), dtype: str | None = None) -> np.ndarray:
    """A column as a writable numpy array, ``[R, *shape]`` for fixed-size-list columns."""
    col = table.column(name)
    rows = table.num_rows
    if shape:
        flat = col.combine_chunks().flatten() if col.num_chunks else None
        values = flat.to_numpy(zero_copy_only=False) if flat is not None else np.zeros(0, dtype or "float32")
        return np.array(values.reshape(rows, *shape), dtype=dtype, copy=True)
    return np.array(col.to_numpy(), dtype=dtype, copy=True)


def _t(a: np.ndarray) -> Tensor:
    return torch.from_numpy(a)


def _edges(fs, root, m: Manifest, rel: str, rows: int):
    table = read_table(fs, root, rel)
    if table.num_rows != rows:
        raise PartitionError(f"{rel}: {table.num_rows} rows, manifest says {rows} (run verify)")
    ei = np.stack([column_numpy(table, "src"), column_numpy(table, "dst")]).astype(np.int64, copy=False)
    eid = column_numpy(table, "eid", dtype="int64")
    spec = m.edge_field(EDGE_COLUMNS["edge_attr"])
    attr = None if spec is None else _t(column_numpy(table, spec.name, spec.shape, spec.dtype))
    return _t(ei), _t(eid), attr


def load_part(path: str | os.PathLike, k: int, manifest: Manifest | None = None) -> Part:
    """Load part ``k`` of the partition at ``path`` (see :class:`Part` for the fields)."""
    fs, root = open_fs(path)
    m = manifest or load_manifest(path)
    if not 0 <= k < m.num_parts:
        raise PartitionError(f"{os.fspath(path)}: part {k} does not exist (num_parts={m.num_parts})")
    info = m.parts[k]
    d = part_dir(k)
    nodes = read_table(fs, root, f"{d}/{NODES}")
    if nodes.num_rows != info.num_nodes:
        raise PartitionError(f"{d}/{NODES}: {nodes.num_rows} rows, manifest says {info.num_nodes} (run verify)")
    fields = {}
    for attr, col in NODE_COLUMNS.items():
        spec = m.node_field(col)
        if spec is not None:
            fields[attr] = _t(column_numpy(nodes, col, spec.shape, spec.dtype))
    edge_index, eid, edge_attr = _edges(fs, root, m, f"{d}/{EDGES}", info.num_edges)
    halo = read_table(fs, root, f"{d}/{HALO}")
    if m.halo_hops > 1:
        h_index, h_eid, h_attr = _edges(fs, root, m, f"{d}/{HALO_EDGES}", info.num_halo_edges)
    else:
        h_index, h_eid, h_attr = torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, dtype=torch.long), None
    return Part(
        part_id=k, num_parts=m.num_parts, node_start=info.node_start, node_end=info.node_end,
        num_nodes_global=m.num_nodes, num_edges_global=m.num_edges,
        in_degree=_t(column_numpy(nodes, "in_degree", dtype="int64")),
        out_degree=_t(column_numpy(nodes, "out_degree", dtype="int64")),
        edge_index=edge_index, eid=eid, edge_attr=edge_attr,
        halo_ids=_t(column_numpy(halo, "id", dtype="int64")),
        halo_owner=_t(column_numpy(halo, "owner", dtype="int64")),
        halo_hop=_t(column_numpy(halo, "hop", dtype="int64")),
        halo_edge_index=h_index, halo_eid=h_eid, halo_edge_attr=h_attr,
        **fields,
    )


def load_nodes_map(path: str | os.PathLike, manifest: Manifest | None = None) -> np.ndarray:
    """``new_to_old`` ``[N]`` int64: the original id of every new id."""
    fs, root = open_fs(path)
    m = manifest or load_manifest(path)
    table = read_table(fs, root, NODES_MAP, columns=["id", "new_id"])
    if table.num_rows != m.num_nodes:
        raise PartitionError(f"{NODES_MAP}: {table.num_rows} rows, manifest says {m.num_nodes} (run verify)")
    new_to_old = np.full(m.num_nodes, -1, dtype=np.int64)
    new_to_old[column_numpy(table, "new_id", dtype="int64")] = column_numpy(table, "id", dtype="int64")
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
                     name=m.name, **fields)
    return data, torch.from_numpy(new_to_old)
