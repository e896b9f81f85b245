"""The CLI's INPUT argument: a dataset name, a generator, a file, or a partition directory.

=====================================  =========================================================
INPUT                                  read with
=====================================  =========================================================
``planetoid:cora`` (``,root=DIR``)      :func:`distgnn.data.load_planetoid`
``sbm:num_nodes=1000,avg_degree=10``   :func:`distgnn.data.sbm` (any of its keyword arguments)
``rmat:num_nodes=65536,num_edges=1e6``  :func:`distgnn.data.rmat`
``ogb:DIR`` (``,split=S,undirected=B``)  :func:`distgnn.data.load_ogb` (an ``ogb`` download, read offline)
``synthetic:products`` (``,scale=S``)   :func:`distgnn.data.synthetic.products` (or ``synthetic:N``: an sbm)
``graph.npz``                          :func:`distgnn.data.load_numpy`
``edges.parquet`` / ``edges.csv``      :func:`distgnn.data.load_edge_list` (``--nodes`` table),
                                       or streamed chunk by chunk (:class:`.sources.ParquetEdges`)
                                       for ``--method stream`` on a Parquet file without a node
                                       table, so it need not fit in memory
a distgnn partition directory          :func:`.reader.reassemble` (original ids): re-partition
a DGL ``partition_graph`` directory    DGL's ``load_partition`` (needs ``dgl`` installed)
=====================================  =========================================================
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from ..data.dataset import DataError, GraphData
from .errors import PartitionError
from .format import MANIFEST
from .sources import GraphInput, parquet_input

log = logging.getLogger(__name__)

_GENERATORS = ("sbm", "rmat")
_TABLE_SUFFIXES = (".parquet", ".pq", ".csv")


def parse_kwargs(text: str, spec: str) -> dict:
    """``"a=1,b=0.5,c=x"`` -> ``{"a": 1, "b": 0.5, "c": "x"}`` (ints, floats, booleans, strings)."""
    out: dict = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PartitionError(f"{spec}: expected key=value, got {item!r}")
        out[key.strip()] = _value(value.strip())
    return out


def _value(v: str):
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    for cast in (int, float):
        try:
            x = cast(v)
        except ValueError:
            continue
        return int(x) if isinstance(x, float) and x.is_integer() and "e" in v.lower() else x
    return v


def open_input(
    spec: str,
    *,
    nodes: str | None = None,
    src: str = "src",
    dst: str = "dst",
    node_id: str = "id",
    features: str | list[str] | None = None,
    label: str | None = "label",
    edge_features: str | list[str] | None = None,
    num_nodes: int | None = None,
    undirected: bool = False,
    stream: bool = False,
) -> GraphData | GraphInput:
    """Read INPUT (see the module docstring); ``stream`` asks for a chunked Parquet reader."""
    head, sep, rest = spec.partition(":")
    if sep and head == "planetoid":
        return _planetoid(rest, spec, undirected)
    if sep and head in _GENERATORS:
        return _generator(head, rest, spec, undirected)
    if sep and head == "ogb":
        return _ogb(rest, spec, undirected)
    if head == "synthetic" and (sep or not Path(spec).exists()):
        from ..data.synthetic import synthetic

        return _maybe_undirected(synthetic(rest), undirected)
    path = Path(spec)
    if path.is_dir():
        return _directory(path, undirected)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        from ..data import load_numpy

        return _maybe_undirected(load_numpy(path), undirected)
    if suffix in _TABLE_SUFFIXES:
        if not path.exists() and "://" not in spec:
            raise DataError(f"{spec}: file not found")
        if stream and suffix != ".csv" and nodes is None and not undirected:
            log.info("streaming %s in chunks (the edge list is never held whole)", spec)
            return parquet_input(spec, src=src, dst=dst, edge_features=edge_features, num_nodes=num_nodes)
        from ..data import load_edge_list

        return load_edge_list(
            path, nodes, src=src, dst=dst, node_id=node_id, features=features, label=label,
            edge_features=edge_features, undirected=undirected, num_nodes=num_nodes,
        )
    if not path.exists():
        raise DataError(f"{spec}: no such file or directory, and not planetoid:NAME, sbm:... or rmat:...")
    raise DataError(
        f"{spec}: not a recognised input (expected planetoid:NAME, sbm:..., rmat:..., a .npz, "
        ".parquet or .csv file, or a partition directory)"
    )


def _planetoid(rest: str, spec: str, undirected: bool) -> GraphData:
    from ..data import load_planetoid

    name, _, opts = rest.partition(",")
    kwargs = parse_kwargs(opts, spec)
    if not name:
        raise PartitionError(f"{spec}: name the dataset, e.g. planetoid:cora")
    return _maybe_undirected(load_planetoid(name=name, **kwargs), undirected)


def _ogb(rest: str, spec: str, undirected: bool) -> GraphData:
    from ..data.ogb import load_ogb

    root, _, opts = rest.partition(",")
    if not root:
        raise PartitionError(f"{spec}: name the dataset directory, e.g. ogb:dataset/ogbn_products")
    kwargs = parse_kwargs(opts, spec)
    unknown = sorted(set(kwargs) - {"split", "undirected", "name"})
    if unknown:
        raise PartitionError(f"{spec}: unknown option {unknown[0]!r} (ogb:DIR takes split=, undirected=, name=)")
    if str(kwargs.get("split", "")).lower() == "none":
        kwargs["split"] = None
    if undirected:  # ogb's add_inverse_edge, applied while reading (no second pass over the edge list)
        kwargs.setdefault("undirected", True)
    return load_ogb(root, **kwargs)


def _generator(kind: str, rest: str, spec: str, undirected: bool) -> GraphData:
    import distgnn.data as data_mod

    fn = getattr(data_mod, kind)
    kwargs = parse_kwargs(rest, spec)
    if kind == "rmat" and undirected:
        kwargs.setdefault("undirected", True)
    try:
        data = fn(**kwargs)
    except TypeError as err:
        raise PartitionError(f"{spec}: {err}") from None
    return _maybe_undirected(data, undirected)


def _directory(path: Path, undirected: bool) -> GraphData:
    if (path / MANIFEST).is_file():
        from .reader import reassemble

        log.info("%s is a distgnn partition: reassembling it in its original ids", path)
        return _maybe_undirected(reassemble(path, original_ids=True)[0], undirected)
    configs = [p for p in sorted(path.glob("*.json")) if _is_dgl_config(p)]
    if configs:
        return _maybe_undirected(load_dgl_partition(configs[0]), undirected)
    raise DataError(f"{path}: a directory, but neither a distgnn partition ({MANIFEST}) nor a DGL partition (*.json)")


def _is_dgl_config(p: Path) -> bool:
    try:
        meta = json.loads(p.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "num_parts" in meta and ("graph_name" in meta or "node_map" in meta)


def load_dgl_partition(config: str | os.PathLike) -> GraphData:
    """The whole graph from a DGL ``partition_graph`` output (homogeneous graphs), in DGL's ids.

    Inner edges of every part are collected by their global edge id; node data (``feat``/
    ``features``, ``label``, ``*_mask``) from the inner nodes. Needs ``dgl``.
    """
    try:
        import dgl
        from dgl.distributed import load_partition
    except ImportError:
        raise PartitionError(
            f"{config}: this is a DGL partition; reading it needs DGL, which is not installed "
            "(pip install dgl), or convert it with DGL to .npz/.parquet first"
        ) from None
    meta = json.loads(Path(config).read_text())
    srcs, dsts, eids = [], [], []
    node_data: dict[str, list] = {}
    for k in range(int(meta["num_parts"])):
        g, nfeat, _efeat, *_ = load_partition(str(config), k)
        inner_e = g.edata["inner_edge"].bool()
        u, v = g.edges()
        nid = g.ndata[dgl.NID]
        srcs.append(nid[u[inner_e]])
        dsts.append(nid[v[inner_e]])
        eids.append(g.edata[dgl.EID][inner_e])
        gids = nid[g.ndata["inner_node"].bool()]
        for key, value in nfeat.items():
            node_data.setdefault(key.split("/")[-1], []).append((gids, value))
    eid = torch.cat(eids)
    order = torch.argsort(eid)
    edge_index = torch.stack([torch.cat(srcs)[order], torch.cat(dsts)[order]]).long()
    n = int(meta.get("num_nodes") or (int(edge_index.max()) + 1 if edge_index.numel() else 0))
    fields = {}
    names = {"feat": "x", "features": "x", "label": "y", "labels": "y",
             "train_mask": "train_mask", "val_mask": "val_mask", "test_mask": "test_mask"}
    for key, pieces in node_data.items():
        if key not in names:
            continue
        first = pieces[0][1]
        full = torch.zeros((n, *first.shape[1:]), dtype=first.dtype)
        for gids, value in pieces:
            full[gids.long()] = value
        attr = names[key]
        fields[attr] = full.bool() if attr.endswith("mask") else (full.long() if attr == "y" else full.float())
    return GraphData(edge_index=edge_index, num_nodes=n, name=str(meta.get("graph_name", "dgl")), **fields)


def _maybe_undirected(data: GraphData, undirected: bool) -> GraphData:
    """Add ``dst -> src`` for every edge whose reverse is missing (edge features copied)."""
    if not undirected or data.num_edges == 0:
        return data
    n = data.num_nodes
    src, dst = data.edge_index
    key = src * n + dst
    missing = ~torch.isin(dst * n + src, key)
    edge_index = torch.cat([data.edge_index, torch.stack([dst[missing], src[missing]])], dim=1)
    attr = None if data.edge_attr is None else torch.cat([data.edge_attr, data.edge_attr[missing]])
    log.info("--undirected added %d reverse edges", int(missing.sum()))
    return data.with_(edge_index=edge_index, edge_attr=attr)


def read_split_column(spec: str, column: str = "split"):
    """The ``[E]`` int8 split codes of a Parquet edge table's ``column`` (train/val/test or 0/1/2;
    :func:`distgnn.data.links.split_codes_from_column`), read alone; ``None`` when ``spec`` is not a
    Parquet file or has no such column."""
    import numpy as np

    from ..data.links import split_codes_from_column

    if Path(spec).suffix.lower() not in (".parquet", ".pq") or not Path(spec).is_file():
        return None
    import pyarrow.parquet as pq

    f = pq.ParquetFile(spec)
    if column not in f.schema_arrow.names:
        return None
    parts, row = [], 0
    for batch in f.iter_batches(columns=[column], batch_size=1 << 20):
        col = batch.column(0)
        if col.null_count:
            import pyarrow.compute as pc

            bad = row + int(pc.index(pc.is_null(col), True).as_py())
            raise DataError(f"{spec}: column {column!r} has no split at row {bad} (train, val or test)")
        values = col.to_numpy(zero_copy_only=False)
        try:
            parts.append(split_codes_from_column(values, f"{spec}: column {column!r}", row))
        except ValueError as err:
            raise DataError(str(err)) from None
        row += len(values)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int8)
