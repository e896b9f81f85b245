"""Where the partitioner reads edges from: a :class:`GraphData` in memory or a Parquet edge list.

Every stage of the partitioner reads edges only through :class:`EdgeSource.chunks`, one chunk of
rows at a time, so a Parquet edge list larger than memory can be partitioned with the ``stream``
method (memory then grows with the number of nodes, not of edges).

An :class:`EdgeChunk` holds rows ``[start, start + len)`` of the edge list:

=======  ==============  ==========================================
field    shape / dtype   meaning
=======  ==============  ==========================================
start    int             edge id of the first row
src      ``[C]`` int64   source node ids (original ids)
dst      ``[C]`` int64   target node ids
attr     ``[C, S]``      edge features, or ``None``
=======  ==============  ==========================================
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Iterator, Protocol, runtime_checkable

import numpy as np

from ..data.dataset import DataError, GraphData
from ..data.tables import check_plausible_ids, default_features
from .format import EDGE_COLUMNS, NODE_COLUMNS, FieldSpec
from .storage import _first_line, open_fs

log = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 1 << 22


@dataclass
class EdgeChunk:
    start: int
    src: np.ndarray
    dst: np.ndarray
    attr: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.src)


@runtime_checkable
class EdgeSource(Protocol):
    """A directed edge list read in chunks (see the module docstring)."""

    name: str
    num_nodes: int
    num_edges: int
    edge_fields: tuple[FieldSpec, ...]  # () or (FieldSpec("features", dtype, (S,)),)

    def chunks(self, rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[EdgeChunk]:
        ...


@dataclass
class GraphInput:
    """What :func:`~distgnn.partition.partition` partitions: edges plus node columns.

    ``node_columns`` maps a nodes.parquet column name to its ``[N]`` or ``[N, F]`` array;
    ``chunk_rows`` is how many edges every stage reads at a time (memory ~ 150 bytes per row).
    """

    edges: EdgeSource
    node_columns: dict[str, np.ndarray] = field(default_factory=dict)
    name: str = "graph"
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    transforms: tuple[str, ...] = ()  # feature transforms already applied (recorded in the manifest)

    def chunks(self) -> Iterator[EdgeChunk]:
        return self.edges.chunks(self.chunk_rows)

    @property
    def num_nodes(self) -> int:
        return self.edges.num_nodes

    @property
    def train_mask(self) -> np.ndarray | None:
        return self.node_columns.get(NODE_COLUMNS["train_mask"])

    @property
    def node_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(
            FieldSpec(name, a.dtype.name, tuple(int(s) for s in a.shape[1:]))
            for name, a in self.node_columns.items()
        )


class GraphEdges:
    """The edges of an in-memory :class:`GraphData`, served as chunks (numpy views, no copies)."""

    def __init__(self, data: GraphData) -> None:
        ei = data.edge_index.detach().cpu().numpy()
        self.src, self.dst = ei[0], ei[1]
        self.attr = None if data.edge_attr is None else data.edge_attr.detach().cpu().numpy()
        self.name = data.name
        self.num_nodes = int(data.num_nodes)
        self.num_edges = int(ei.shape[1])
        self.edge_fields: tuple[FieldSpec, ...] = ()
        if self.attr is not None:
            self.edge_fields = (FieldSpec(EDGE_COLUMNS["edge_attr"], self.attr.dtype.name, tuple(self.attr.shape[1:])),)

    def chunks(self, rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[EdgeChunk]:
        rows = max(1, int(rows))
        for start in range(0, self.num_edges, rows):
            end = min(start + rows, self.num_edges)
            attr = None if self.attr is None else self.attr[start:end]
            yield EdgeChunk(start, self.src[start:end], self.dst[start:end], attr)


def graph_input(data: GraphData) -> GraphInput:
    """A :class:`GraphInput` over an in-memory graph (validated again: it may have been edited)."""
    if not isinstance(data, GraphData):
        raise TypeError(f"partition() needs a GraphData or a GraphInput, got {type(data).__name__}")
    data.validate()
    cols = {}
    for attr, col in NODE_COLUMNS.items():
        value = getattr(data, attr)
        if value is not None:
            cols[col] = value.detach().cpu().numpy()
    return GraphInput(GraphEdges(data), cols, data.name, transforms=tuple(data.transforms))


class ParquetEdges:
    """A Parquet edge list read a record batch at a time (never whole).

    Args:
        path: a local path or pyarrow filesystem URI of a ``.parquet`` file.
        src, dst: the integer id columns; ids must lie in ``[0, num_nodes)``.
        edge_features: ``None`` for the default columns (the ``feat_*``/``x_*`` scalar columns, or
            the one list column named ``features``/``feat``/``x``/``feat_*``/``x_*``; none if there
            are none), a list of scalar column names, or the name of one list column.
        num_nodes: ``N``; by default ``max id + 1``, taken from the row-group statistics (or
            from one extra pass over the id columns when a file has none), which must be
            plausible for the edge count (:func:`~distgnn.data.tables.plausible_num_nodes`).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        src: str = "src",
        dst: str = "dst",
        edge_features: str | list[str] | None = None,
        num_nodes: int | None = None,
        name: str | None = None,
    ) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path = os.fspath(path)
        fs, p = open_fs(self.path)
        try:
            # no pre-buffering: it keeps every row group read so far cached (memory grows with E)
            self._file = pq.ParquetFile(fs.open_input_file(p), pre_buffer=False, buffer_size=1 << 20)
        except (OSError, pa.ArrowException) as err:
            raise DataError(f"{self.path}: unreadable as Parquet ({_first_line(err)})") from None
        schema = self._file.schema_arrow
        for col in (src, dst):
            if col not in schema.names:
                raise DataError(f"{self.path}: missing id column {col!r} (columns: {', '.join(schema.names)})")
            if not pa.types.is_integer(schema.field(col).type):
                raise DataError(f"{self.path}: column {col!r} must hold integer node ids, got {schema.field(col).type}")
        self.src_col, self.dst_col = src, dst
        self._feature_cols, self._list_feature = self._feature_columns(schema, edge_features)
        self.name = name or os.path.splitext(os.path.basename(self.path))[0]
        self.num_edges = int(self._file.metadata.num_rows)
        self.edge_fields: tuple[FieldSpec, ...] = ()
        width = self._feature_width(schema)
        if width:
            self.edge_fields = (FieldSpec(EDGE_COLUMNS["edge_attr"], "float32", (width,)),)
        hi = self._max_id()
        if num_nodes is None:
            check_plausible_ids(hi, self.num_edges, lambda: self._locate(hi), self.path)
            num_nodes = hi + 1
        elif hi >= num_nodes:
            raise DataError(
                f"{self.path}: node id {hi} out of range for num_nodes={num_nodes} (ids must be < num_nodes)"
            )
        self.num_nodes = int(num_nodes)

    def _locate(self, value: int) -> tuple[str, int]:
        """``(column, row)`` of the first occurrence of id ``value`` (for an error message)."""
        for chunk in self._batches(1 << 22, check=False):
            for name, ids in ((self.src_col, chunk.src), (self.dst_col, chunk.dst)):
                rows = np.flatnonzero(ids == value)
                if rows.size:
                    return name, chunk.start + int(rows[0])
        return self.src_col, -1

    def _feature_columns(self, schema, spec) -> tuple[list[str], bool]:
        import pyarrow as pa

        if spec is None:
            spec = default_features(schema, self.path, "edge_features")
        if isinstance(spec, str):
            if spec not in schema.names:
                raise DataError(f"{self.path}: missing edge feature column {spec!r}")
            t = schema.field(spec).type
            if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
                raise DataError(f"{self.path}: edge feature column {spec!r} must be a list column, got {t}")
            return [spec], True
        cols = list(spec) if spec is not None else []
        for c in cols:
            if c not in schema.names:
                raise DataError(f"{self.path}: missing edge feature column {c!r}")
            t = schema.field(c).type
            if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
                raise DataError(f"{self.path}: edge feature column {c!r} must be numeric, got {t}")
        return cols, False

    def _feature_width(self, schema) -> int:
        import pyarrow as pa

        if not self._feature_cols:
            return 0
        if not self._list_feature:
            return len(self._feature_cols)
        t = schema.field(self._feature_cols[0]).type
        if pa.types.is_fixed_size_list(t):
            return t.list_size
        if self.num_edges == 0:
            return 0
        first = next(self._file.iter_batches(batch_size=1, columns=self._feature_cols))
        return len(first.column(0)[0])

    def _max_id(self) -> int:
        """Largest id, from row-group statistics when every row group has them; checks ids >= 0."""
        meta = self._file.metadata
        names = self._file.schema_arrow.names
        cols = {self.src_col: names.index(self.src_col), self.dst_col: names.index(self.dst_col)}
        lo = {c: 0 for c in cols}
        hi = -1
        complete = True
        for rg in range(meta.num_row_groups):
            for c, i in cols.items():
                stats = meta.row_group(rg).column(i).statistics
                if stats is None or not stats.has_min_max or stats.null_count:
                    complete = False
                    break
                lo[c], hi = min(lo[c], stats.min), max(hi, stats.max)
            if not complete:
                break
        if not complete:  # one pass over the two id columns
            lo = {c: 0 for c in cols}
            hi = -1
            for chunk in self._batches(1 << 22, check=False):
                if len(chunk):
                    lo[self.src_col] = min(lo[self.src_col], int(chunk.src.min()))
                    lo[self.dst_col] = min(lo[self.dst_col], int(chunk.dst.min()))
                    hi = max(hi, int(chunk.src.max()), int(chunk.dst.max()))
        for c, low in lo.items():
            if low < 0:
                raise DataError(f"{self.path}: column {c!r} has a negative node id ({low})")
        return int(hi)

    def chunks(self, rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[EdgeChunk]:
        return self._batches(rows, check=True)

    def _batches(self, rows: int, check: bool) -> Iterator[EdgeChunk]:
        import pyarrow as pa

        cols = [self.src_col, self.dst_col] + (self._feature_cols if check else [])
        start = 0
        try:
            batches = self._file.iter_batches(batch_size=max(1, int(rows)), columns=cols)
            for batch in batches:
                src = self._ids(batch.column(0), self.src_col, start, check)
                dst = self._ids(batch.column(1), self.dst_col, start, check)
                attr = self._features(batch, start) if check and self._feature_cols else None
                yield EdgeChunk(start, src, dst, attr)
                start += batch.num_rows
        except pa.ArrowException as err:
            raise DataError(f"{self.path}: unreadable as Parquet near row {start} ({_first_line(err)})") from None

    def _ids(self, col, name: str, start: int, check: bool) -> np.ndarray:
        if col.null_count:
            import pyarrow.compute as pc

            row = start + int(pc.index(pc.is_null(col), True).as_py())
            raise DataError(f"{self.path}: column {name!r} has a missing node id (row {row})")
        ids = col.to_numpy().astype(np.int64, copy=False)
        if check and len(ids):
            bad = np.flatnonzero((ids < 0) | (ids >= self.num_nodes))
            if bad.size:
                row = int(bad[0])
                raise DataError(
                    f"{self.path}: column {name!r} has node id {int(ids[row])} (row {start + row}) "
                    f"outside [0, {self.num_nodes})"
                )
        return ids

    def _features(self, batch, start: int) -> np.ndarray:
        import pyarrow.compute as pc

        width = self.edge_fields[0].shape[0]
        cols = [batch.column(batch.schema.get_field_index(c)) for c in self._feature_cols]
        if not self._list_feature:
            for c, col in zip(self._feature_cols, cols):
                if col.null_count:
                    raise DataError(f"{self.path}: edge feature column {c!r} has a missing value")
            out = np.stack([c.to_numpy(zero_copy_only=False).astype(np.float32) for c in cols], axis=1)
        else:
            col = cols[0]
            lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
            bad = np.flatnonzero(lengths != width)
            if bad.size:
                raise DataError(
                    f"{self.path}: edge feature rows of column {self._feature_cols[0]!r} have different "
                    f"lengths (row 0 has {width}, row {start + int(bad[0])} has {lengths[bad[0]]})"
                )
            flat = col.flatten().to_numpy(zero_copy_only=False)
            out = flat.astype(np.float32, copy=False).reshape(len(col), width)
        if not np.isfinite(out).all():
            row = start + int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
            raise DataError(f"{self.path}: edge features have NaN or infinite values (row {row})")
        return out


def parquet_input(path: str | os.PathLike, **kwargs) -> GraphInput:
    """A :class:`GraphInput` streaming a Parquet edge list (no node table: no node columns)."""
    edges = ParquetEdges(path, **kwargs)
    return GraphInput(edges, {}, edges.name)


class TrainingEdges:
    """The training edges of an edge split, as an :class:`EdgeSource` over another source.

    Every chunk of ``inner`` keeps the rows whose split code (``codes(chunk)``, an ``[C]`` int8
    array: 0 train, 1 val, 2 test) is 0, in input order; chunk starts count training edges only,
    so edge ids become ``0..E_train-1``. Construction reads ``inner`` once, counting the training
    edges and keeping the validation/test edges (``eval_src``, ``eval_dst``, ``eval_split``,
    original ids, in input order).
    """

    def __init__(self, inner: EdgeSource, codes) -> None:
        self.inner, self._codes = inner, codes
        self.name, self.num_nodes, self.edge_fields = inner.name, inner.num_nodes, inner.edge_fields
        self.path = getattr(inner, "path", None)
        train, src, dst, split = 0, [], [], []
        for chunk in inner.chunks():
            c = np.asarray(codes(chunk), dtype=np.int8)
            keep = c == 0
            train += int(keep.sum())
            ev = ~keep
            src.append(chunk.src[ev])
            dst.append(chunk.dst[ev])
            split.append(c[ev])
        self.num_edges = train
        self.num_input_edges = int(inner.num_edges)
        cat = (lambda xs, t: np.concatenate(xs).astype(t, copy=False) if xs else np.zeros(0, t))
        self.eval_src, self.eval_dst = cat(src, np.int64), cat(dst, np.int64)
        self.eval_split = cat(split, np.int8)

    def chunks(self, rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[EdgeChunk]:
        start = 0
        for chunk in self.inner.chunks(rows):
            keep = np.asarray(self._codes(chunk), dtype=np.int8) == 0
            attr = None if chunk.attr is None else chunk.attr[keep]
            out = EdgeChunk(start, chunk.src[keep], chunk.dst[keep], attr)
            start += len(out)
            yield out
