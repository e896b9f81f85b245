"""Graphs from tables: Parquet/CSV edge and node lists, and a NumPy ``.npz`` format.

Edge table (``.parquet`` or ``.csv``)::

    src    dst    [edge feature columns]
    int    int    numeric

Node table (optional)::

    id     features                        label          train_mask  val_mask  test_mask
    int    one list column, or scalar      int (null =    bool        bool      bool
           columns (default: feat_*, x_*)  unlabelled)

Features by default: the scalar columns named ``feat_*``/``x_*``, in table order, or else the one
list column named ``features``, ``feat``, ``x`` or ``feat_*``/``x_*`` (both kinds, or several such list
columns, are an error: name the columns). The same rule picks edge features from the edge table.

Node ids may be any distinct non-negative integers; they are relabelled ``0..N-1`` in node-table
order. Without a node table ids must be ``0..N-1``: an id far beyond what the edge list can hold
(more than ``32 * E + 2**20``) is refused before anything of that size is allocated, unless
``num_nodes`` confirms the count. ``.npz`` files hold the :class:`GraphData` fields under their own names (``edge_index``,
``num_nodes``, ``x``, ``y``, ``train_mask``, ``val_mask``, ``test_mask``, ``edge_attr``).

pyarrow is imported only inside the functions that read tables.
"""
from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from .dataset import DataError, GraphData

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

_DEFAULT_LABEL = "label"
_DEFAULT_MASKS = ("train_mask", "val_mask", "test_mask")
_FEATURE_PREFIXES = ("feat_", "x_")
_FEATURE_NAMES = ("features", "feat", "x")  # a list column with one of these names holds the features
_NODE_FIELDS = ("x ", "y ", "train_mask", "val_mask", "test_mask")
_NPZ_KEYS = ("edge_index", "num_nodes", "x", "y", "train_mask", "val_mask", "test_mask", "edge_attr")

FeatureSpec = str | Sequence[str] | None


# --------------------------------------------------------------------------- reading tables
def _read_table(path: str | os.PathLike) -> "pa.Table":
    """Read a ``.parquet``/``.pq`` or ``.csv`` file into an Arrow table."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise DataError(f"{path}: not a .parquet or .csv file (rename it or convert it)")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return pq.read_table(path) if suffix != ".csv" else pa_csv.read_csv(path)
    except (pa.ArrowException, OSError) as err:
        kind = "CSV" if suffix == ".csv" else "Parquet"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: unreadable as {kind} ({first})") from None


def _owned_tensor(array: np.ndarray) -> Tensor:
    """A tensor that owns its memory (Arrow hands out read-only views of its buffers)."""
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def _column(table: "pa.Table", name: str, path: Path, what: str) -> "pa.ChunkedArray":
    if name not in table.column_names:
        raise DataError(
            f"{path}: missing {what} column {name!r} (columns: {', '.join(table.column_names)}); "
            f"pass {what}=... to name it"
        )
    return table.column(name)


def _no_nulls(col: "pa.ChunkedArray", name: str, path: Path) -> None:
    import pyarrow.compute as pc

    if col.null_count:
        row = int(pc.index(pc.is_null(col), True).as_py())
        raise DataError(f"{path}: column {name!r} has a missing value (row {row})")


def _ids(col: "pa.ChunkedArray", name: str, path: Path) -> Tensor:
    """An integer id column -> ``[R]`` int64, checked for nulls and negative values."""
    import pyarrow as pa

    if not pa.types.is_integer(col.type):
        raise DataError(f"{path}: column {name!r} must hold integer node ids, got {col.type}")
    _no_nulls(col, name, path)
    try:
        ids = _owned_tensor(col.cast(pa.int64()).to_numpy())
    except pa.ArrowInvalid:
        raise DataError(f"{path}: column {name!r} has ids beyond the int64 range") from None
    if ids.numel() and int(ids.min()) < 0:
        row = int((ids < 0).nonzero()[0, 0])
        raise DataError(f"{path}: column {name!r} has a negative node id {int(ids[row])} (row {row})")
    return ids


def default_features(schema: "pa.Schema", where: str, what: str) -> str | list[str] | None:
    """The feature columns taken when none are named (see the module docstring).

    Returns the name of one list column, a list of scalar column names, or ``None``; raises
    :class:`DataError` when the choice is ambiguous, so no list column that looks like features is
    ever dropped silently.
    """
    import pyarrow as pa

    def is_list(t) -> bool:
        return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)

    named = [f for f in schema if f.name.startswith(_FEATURE_PREFIXES) or f.name in _FEATURE_NAMES]
    lists = [f.name for f in named if is_list(f.type)]
    scalars = [f.name for f in named if not is_list(f.type) and f.name.startswith(_FEATURE_PREFIXES)]
    if lists and scalars:
        raise DataError(f"{where}: both a list column {lists[0]!r} and scalar feature columns ({', '.join(scalars)}); "
                        f"pass {what}=... to choose")
    if len(lists) > 1:
        raise DataError(f"{where}: several list columns could hold the {what} ({', '.join(lists)}); "
                        f"pass {what}=... to choose")
    return lists[0] if lists else (scalars or None)


def _feature_matrix(table: "pa.Table", spec: FeatureSpec, path: Path, what: str) -> Tensor | None:
    """Features as ``[R, F]`` float32 from one list column (``spec`` a str) or scalar columns.

    ``spec=None`` takes the default columns (:func:`default_features`; ``None`` if there are none).
    """
    if spec is None:
        spec = default_features(table.schema, str(path), what)
        if spec is None:
            return None
    if isinstance(spec, str):
        return _list_column(_column(table, spec, path, what), spec, path)
    cols = [_column(table, name, path, what) for name in spec]
    if not cols:
        raise DataError(f"{path}: {what} names no columns; pass None to skip {what}")
    return torch.stack([_scalar_column(col, name, path) for col, name in zip(cols, spec)], dim=1)


def _scalar_column(col: "pa.ChunkedArray", name: str, path: Path) -> Tensor:
    import pyarrow as pa

    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise DataError(f"{path}: feature column {name!r} must be numeric, got {col.type}")
    _no_nulls(col, name, path)
    return _owned_tensor(col.to_numpy().astype(np.float32, copy=False))


def _list_column(col: "pa.ChunkedArray", name: str, path: Path) -> Tensor:
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
        raise DataError(f"{path}: feature column {name!r} must be a list column, got {t}")
    if not (pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type)):
        raise DataError(f"{path}: feature column {name!r} must hold numbers, got {t}")
    _no_nulls(col, name, path)
    rows = len(col)
    if rows == 0:
        width = t.list_size if pa.types.is_fixed_size_list(t) else 0
        return torch.zeros(0, width)
    lengths = pc.list_value_length(col).to_numpy()
    bad = np.flatnonzero(lengths != lengths[0])
    if bad.size:
        raise DataError(
            f"{path}: feature rows of column {name!r} have different lengths "
            f"(row 0 has {lengths[0]}, row {bad[0]} has {lengths[bad[0]]})"
        )
    flat = col.combine_chunks().flatten()  # honours slices and offsets
    if flat.null_count:
        raise DataError(f"{path}: feature column {name!r} has a missing value inside a list")
    values = flat.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return _owned_tensor(values.reshape(rows, int(lengths[0])))


def _labels(table: "pa.Table", label: str | None, path: Path) -> Tensor | None:
    import pyarrow as pa

    if label is None or (label == _DEFAULT_LABEL and label not in table.column_names):
        return None
    col = _column(table, label, path, "label")
    if pa.types.is_integer(col.type):  # class ids; missing labels mean "unlabelled" (-1)
        return _owned_tensor(col.cast(pa.int64()).fill_null(-1).to_numpy())
    if pa.types.is_floating(col.type):  # regression targets; missing ones are NaN (no target)
        return _owned_tensor(col.cast(pa.float32()).to_numpy(zero_copy_only=False).astype(np.float32, copy=False))
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type):
        return _list_column(col, label, path)  # (N, C): multi-label 0/1 columns or several targets
    raise DataError(
        f"{path}: label column {label!r} must hold integer class ids, float targets or a list per node "
        f"(multi-label / several targets), got {col.type}"
    )


def _masks(table: "pa.Table", masks: Sequence[str] | None, path: Path) -> dict[str, Tensor]:
    import pyarrow as pa

    if masks is None:
        return {}
    if len(masks) != 3:
        raise DataError(f"masks must name 3 columns (train, val, test) or be None, got {list(masks)}")
    out = {}
    for field, name in zip(_DEFAULT_MASKS, masks):
        if name is None or (tuple(masks) == _DEFAULT_MASKS and name not in table.column_names):
            continue
        col = _column(table, name, path, "mask")
        if not pa.types.is_boolean(col.type):
            raise DataError(f"{path}: mask column {name!r} must be boolean, got {col.type}")
        _no_nulls(col, name, path)
        out[field] = _owned_tensor(col.to_numpy(zero_copy_only=False).astype(np.bool_, copy=False))
    return out


# --------------------------------------------------------------------------- ids and edges
def _relabel(node_ids: Tensor, ends: dict[str, Tensor], nodes: Path, edges: Path) -> list[Tensor]:
    """Map ids to their row in the node table (``0..N-1``); every edge id must be in the table.

    ``ends`` maps each edge column name to its ``[E]`` ids; returns the relabelled ``[E]`` tensors.
    """
    sorted_ids, order = torch.sort(node_ids)
    dup = (sorted_ids[1:] == sorted_ids[:-1]).nonzero()
    if dup.numel():
        raise DataError(f"{nodes}: duplicate node id {int(sorted_ids[dup[0, 0]])} in the id column")

    def lookup(ids: Tensor, name: str) -> Tensor:
        pos = torch.searchsorted(sorted_ids, ids).clamp_max(max(len(sorted_ids) - 1, 0))
        found = sorted_ids[pos] == ids if len(sorted_ids) else torch.zeros_like(ids, dtype=torch.bool)
        if not bool(found.all()):
            row = int((~found).nonzero()[0, 0])
            raise DataError(
                f"{edges}: column {name!r} names node {int(ids[row])} (row {row}) "
                f"which is not in the node table {nodes}"
            )
        return order[pos]

    return [lookup(ids, name) for name, ids in ends.items()]


def plausible_num_nodes(num_edges: int) -> int:
    """The most nodes an edge list of ``num_edges`` rows may imply by its largest id alone.

    ``E`` edges name at most ``2E`` distinct nodes; ids beyond ``32 * E + 2**20`` (a graph more
    than 93% isolated nodes, or a stray id) are taken for a mistake rather than allocated.
    """
    return 32 * int(num_edges) + (1 << 20)


def check_plausible_ids(hi: int, num_edges: int, locate, where) -> None:
    """Refuse a largest id ``hi`` no edge list of ``num_edges`` rows can need (one line, no allocation).

    ``locate()`` returns ``(column, row)`` of that id, for the message.
    """
    if hi + 1 > plausible_num_nodes(num_edges):
        column, row = locate()
        raise DataError(
            f"{where}: node id {hi} (column {column!r}, row {row}) but only {num_edges} edges, which name at "
            f"most {2 * num_edges} distinct nodes: ids must be 0..N-1 (give a node table to relabel arbitrary "
            "ids, or num_nodes / --num-nodes to confirm the count)"
        )


def _locate(value: int, columns: dict[str, Tensor]) -> tuple[str, int]:
    for name, ids in columns.items():
        rows = (ids == value).nonzero()
        if rows.numel():
            return name, int(rows[0, 0])
    return next(iter(columns)), -1


def _add_reverse_edges(src: Tensor, dst: Tensor, attr: Tensor | None,
                       n: int) -> tuple[Tensor, Tensor, Tensor | None]:
    """Add ``dst -> src`` for every edge whose reverse is absent (attributes copied)."""
    key = src * n + dst
    missing = ~torch.isin(dst * n + src, key)
    src, dst = torch.cat([src, dst[missing]]), torch.cat([dst, src[missing]])
    if attr is not None:
        attr = torch.cat([attr, attr[missing]])
    return src, dst, attr


def _assemble(fields: dict, edges: Path, nodes: Path | None) -> GraphData:
    """Build the :class:`GraphData` (which validates itself); name the file at fault on error."""
    try:
        return GraphData(**fields, name="")  # unnamed, so the message names the file alone
    except DataError as err:
        culprit = nodes if nodes is not None and str(err).startswith(_NODE_FIELDS) else edges
        raise DataError(f"{culprit}: {err}") from None


def load_edge_list(
    edges: str | os.PathLike,
    nodes: str | os.PathLike | None = None,
    *,
    src: str = "src",
    dst: str = "dst",
    node_id: str = "id",
    features: FeatureSpec = None,
    label: str | None = _DEFAULT_LABEL,
    masks: Sequence[str] | None = _DEFAULT_MASKS,
    edge_features: FeatureSpec = None,
    undirected: bool = False,
    num_nodes: int | None = None,
) -> GraphData:
    """Load a graph from an edge table and an optional node table (``.parquet`` or ``.csv``).

    Args:
        edges: the edge table, one row per edge ``src -> dst``.
        nodes: the node table; without it ids must be ``0..max`` and ``N = max + 1`` (or
            ``num_nodes``).
        src, dst, node_id: the id columns.
        features: node features: one list column (a str), a list of scalar column names, or
            ``None`` for the default columns (module docstring; no features if there are none).
        label: the label column: integer class ids (nulls become ``-1``), float regression
            targets (nulls become NaN) or a list per node (``[N, C]``: multi-label 0/1 or several
            targets); with the default name the column is optional, a name you pass must exist;
            ``None`` skips labels.
        masks: the boolean train/val/test columns, same rule as ``label``; ``None`` skips them.
        edge_features: edge features, same forms as ``features``.
        undirected: add ``dst -> src`` for every edge whose reverse is not in the table.
        num_nodes: ``N`` when there is no node table (must exceed every id; by default the largest
            id + 1, which must be plausible for the edge count: at most ``32 * E + 2**20``); with a
            node table it must equal the number of rows.

    Returns:
        :class:`GraphData`: ``edge_index`` ``[2, E]`` int64 (relabelled ids), ``x`` ``[N, F]``
        float32, ``y`` ``[N]`` int64 (or float32 ``[N]`` / ``[N, C]``), masks ``[N]`` bool, ``edge_attr`` ``[E, S]`` float32.
    """
    edges_path = Path(edges)
    nodes_path = Path(nodes) if nodes is not None else None
    if num_nodes is not None and num_nodes < 0:
        raise DataError(f"{edges_path}: num_nodes must be non-negative, got {num_nodes}")
    if nodes_path is None and features is not None:
        raise DataError(f"{edges_path}: features={features!r} needs a node table (pass nodes=...)")
    etable = _read_table(edges_path)
    s = _ids(_column(etable, src, edges_path, "src"), src, edges_path)
    d = _ids(_column(etable, dst, edges_path, "dst"), dst, edges_path)
    edge_attr = _feature_matrix(etable, edge_features, edges_path, "edge_features")

    fields: dict = {}
    if nodes_path is not None:
        ntable = _read_table(nodes_path)
        node_ids = _ids(_column(ntable, node_id, nodes_path, "node_id"), node_id, nodes_path)
        n = len(node_ids)
        if num_nodes is not None and num_nodes != n:
            raise DataError(f"{nodes_path}: num_nodes={num_nodes} but the node table has {n} rows")
        s, d = _relabel(node_ids, {src: s, dst: d}, nodes_path, edges_path)
        fields["x"] = _feature_matrix(ntable, features, nodes_path, "features")
        fields["y"] = _labels(ntable, label, nodes_path)
        fields.update(_masks(ntable, masks, nodes_path))
    else:
        hi = max(int(s.max()), int(d.max())) if len(s) else -1
        if num_nodes is None:
            check_plausible_ids(hi, len(s), lambda: _locate(hi, {src: s, dst: d}), edges_path)
        n = hi + 1 if num_nodes is None else num_nodes
        if hi >= n:
            raise DataError(
                f"{edges_path}: node id {hi} out of range for num_nodes={num_nodes} "
                "(ids must be < num_nodes; pass a larger num_nodes or a node table)"
            )
    if undirected:
        s, d, edge_attr = _add_reverse_edges(s, d, edge_attr, n)
    fields.update(edge_index=torch.stack([s, d]), num_nodes=n, edge_attr=edge_attr)
    data = _assemble(fields, edges_path, nodes_path)
    data.name = edges_path.stem
    log.info("loaded %r from %s", data, edges_path)
    return data


# --------------------------------------------------------------------------- NumPy .npz
def save_numpy(data: GraphData, path: str | os.PathLike) -> None:
    """Write ``data`` to an ``.npz`` (keys as in :func:`load_numpy`), atomically.

    Tensors are stored with their dtypes; ``name`` is not stored (:func:`load_numpy` takes it from
    the file name), nor is ``meta``.
    """
    path = Path(path)
    arrays = {"num_nodes": np.int64(data.num_nodes)}
    for key in _NPZ_KEYS:
        value = getattr(data, key)
        if key != "num_nodes" and value is not None:
            arrays[key] = value.detach().cpu().numpy()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_numpy(path: str | os.PathLike) -> GraphData:
    """Load an ``.npz`` written by :func:`save_numpy` (or by hand).

    Keys: ``edge_index`` ``[2, E]`` integer and ``num_nodes`` (scalar) are required; ``x``
    ``[N, F]`` float, ``y`` ``[N]`` integer, ``train_mask``/``val_mask``/``test_mask`` ``[N]``
    bool and ``edge_attr`` ``[E, S]`` are optional. Other keys are ignored with a warning.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not an .npz archive (write one with save_numpy or numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{path}: unreadable as .npz ({type(err).__name__}: {err})") from None
    for key in ("edge_index", "num_nodes"):
        if key not in arrays:
            raise DataError(f"{path}: missing array {key!r} (keys: {', '.join(arrays) or 'none'})")
    extra = sorted(set(arrays) - set(_NPZ_KEYS))
    if extra:
        log.warning("%s: ignoring unknown arrays %s", path, extra)
    nn = arrays["num_nodes"]
    if nn.shape != () or not np.issubdtype(nn.dtype, np.integer):
        raise DataError(f"{path}: num_nodes must be an integer scalar, got {nn.dtype} {nn.shape}")
    if "edge_index" in arrays and not np.issubdtype(arrays["edge_index"].dtype, np.integer):
        raise DataError(f"{path}: edge_index must hold integers, got {arrays['edge_index'].dtype}")
    y = arrays.get("y")
    if y is not None and not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise DataError(f"{path}: y must hold integer class ids or float targets, got {y.dtype}")
    fields = {key: torch.from_numpy(arrays[key]) for key in _NPZ_KEYS[2:] if key in arrays}
    fields["edge_index"] = torch.from_numpy(arrays["edge_index"].astype(np.int64, copy=False))
    if y is not None:  # class ids [N] as int64; float targets ([N] or [N, C]) as float32
        fields["y"] = torch.from_numpy(y.astype(np.int64 if np.issubdtype(y.dtype, np.integer) else np.float32, copy=False))
    fields["num_nodes"] = int(nn)
    data = _assemble(fields, path, None)
    data.name = path.stem
    return data
