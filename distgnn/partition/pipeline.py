"""``partition()``: assign, relabel, split edges, compute halos, write the shards atomically.

Stages (each reported to ``progress``; see :mod:`.format` for what is written):

1. *weights*: the second balance constraint (training nodes, or in-degrees for edge balance).
2. *assign*: the method decides the owner of every node (:mod:`.methods`).
3. *relabel*: new ids, contiguous per part, in original order inside a part; ``nodes-map``.
4. *edges*: one pass over the edge chunks: each edge goes to its target's owner (new ids),
   whole-graph degrees are counted and the hop-1 halo marked, in ``O(N * K / 8)`` bytes.
5. *halo*: for ``halo_hops > 1``, one more pass per extra ring (:func:`.halo.expand_halo`).
6. *nodes*: the owned rows of every node column, gathered a row group at a time.
7. *manifest*: counts, schema, quality figures and checksums, written last; then the rename.

With an edge split (``edge_split``, link prediction) the edges are split first
(:class:`.sources.TrainingEdges`: one pass) and every stage sees only the training edges; the
validation/test edges and their fixed negatives are written per part as ``link_edges.parquet``
after stage 6 (see :mod:`.format`).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import replace

import numpy as np

from ..data.dataset import DataError, GraphData
from .errors import PartitionError
from .format import (
    BALANCES, DEFAULT_ROW_GROUP_SIZE, EDGES, HALO, HALO_EDGES, LINK_EDGES, MANIFEST, NODE_COLUMNS, NODES, NODES_MAP,
    FileInfo, Manifest, PartInfo, edges_schema, halo_schema, link_edges_schema, nodes_map_schema, nodes_schema,
    part_dir,
)
from .halo import PartBits, expand_halo, foreign, owner_of, split_by_owner
from .methods import Assignment, Partitioner, get_method
from .progress import Progress, no_progress
from .sources import DEFAULT_CHUNK_ROWS, GraphInput, TrainingEdges, graph_input
from .storage import AtomicOutput, ShardWriter, join, open_fs, write_bytes, write_table

log = logging.getLogger(__name__)

_NODE_GROUP_BYTES = 64 << 20  # a nodes.parquet row group holds at most ~64 MiB of rows
_EDGE_BUFFER_BYTES = 256 << 20  # all parts' edge row groups being filled, together


def partition(
    data: GraphData | GraphInput,
    num_parts: int,
    out: str | os.PathLike,
    method: str | Partitioner = "metis",
    halo_hops: int = 1,
    balance: str = "edges",
    seed: int = 0,
    overwrite: bool = False,
    *,
    name: str | None = None,
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Progress = no_progress,
    inputs: tuple[str, ...] = (),
    edge_split: tuple[float, float, float] | None = None,
    split_seed: int = 0,
    eval_negatives: int = 1,
    split_column: np.ndarray | None = None,
) -> Manifest:
    """Partition a graph into ``num_parts`` halo-aware Parquet shards under ``out``.

    Args:
        data: a :class:`~distgnn.data.GraphData`, or a :class:`~.sources.GraphInput` (e.g.
            :func:`~.sources.parquet_input` to stream an edge list bigger than memory).
        num_parts: ``K >= 1``, at most the number of nodes.
        out: the output directory: a local path or a pyarrow filesystem URI (``s3://...``).
        method: ``"metis"``, ``"random"``, ``"range"``, ``"stream"`` or a
            :class:`~.methods.Partitioner`.
        halo_hops: rings of halo to store (``>= 1``; see :mod:`.format` for what ``> 1`` adds).
        balance: what to balance besides node counts: ``"edges"`` (stored edges = in-degrees),
            ``"train"`` (training nodes) or ``"none"``. ``random`` and ``stream`` balance node
            counts only.
        seed: makes ``metis``, ``random`` and ``stream`` reproducible.
        overwrite: replace a non-empty ``out`` (refused otherwise).
        name: the graph name in the manifest (default: the data's name).
        row_group_size: Parquet row-group size in rows (fewer for wide node features, and for
            edges when ``K`` files buffering a row group each would exceed 256 MiB).
        chunk_rows: edges handled per vectorised chunk.
        progress: a stage reporter (:mod:`.progress`); the CLI passes tqdm bars.
        inputs: local paths the run reads, which ``overwrite`` must never delete (a streamed
            Parquet edge list is added by itself).
        edge_split: ``(train, val, test)`` fractions for link prediction (default ``None``: no
            split); split_seed: its seed (default 0); eval_negatives: fixed negatives per
            validation/test edge (default 1). The same split and negatives as
            :func:`distgnn.data.links.split_links` on the same graph and seed (see :mod:`.format`).
        split_column: instead of ``edge_split``: ``[E]`` split codes of the input edges (0 train,
            1 val, 2 test; an edge table's ``split`` column), recorded as ``source: "column"``.

    Returns:
        The :class:`~.format.Manifest` written to ``out/manifest.json``.

    Raises:
        PartitionError: bad arguments, an existing non-empty ``out`` without ``overwrite`` (or with
            it, one that is not a partition or holds the input), a graph too large for this
            machine's memory (checked before anything of its size is allocated).
        DataError: malformed input data (naming the field or file): besides shapes and dtypes,
            node columns must hold finite features, labels in ``[-1, N)`` and no masked node
            without a label.
    """
    graph = data if isinstance(data, GraphInput) else graph_input(data)  # a GraphData validates itself
    part_method = get_method(method)
    n = graph.num_nodes
    _check_args(graph, num_parts, halo_hops, balance, seed, row_group_size, chunk_rows)
    _check_memory(graph.name, n, num_parts)
    if isinstance(data, GraphInput):
        _check_node_columns(graph)
    graph = replace(graph, chunk_rows=int(chunk_rows))
    fs, root = open_fs(out)
    inputs = tuple(inputs) + tuple(p for p in (getattr(graph.edges, "path", None),) if isinstance(p, str))
    output = AtomicOutput(fs, root, overwrite=overwrite, inputs=inputs)  # refuses a bad `out` before any work
    started = time.perf_counter()
    link = None
    if edge_split is not None and split_column is not None:
        raise PartitionError("give edge_split (--edge-split) or a split column, not both")
    if edge_split is not None or split_column is not None:
        graph, link = _split_edges(graph, edge_split, split_seed, eval_negatives, progress, split_column)

    weights = _balance_weights(graph, part_method, balance, progress)
    log.info("assigning %d nodes to %d parts with %s", n, num_parts, part_method.name)
    assignment = part_method.assign(graph, num_parts, weights=weights, seed=seed, progress=progress)
    part = _checked_part(assignment, n, num_parts, part_method.name)
    del weights
    log.info("assignment done in %.1fs", time.perf_counter() - started)

    with output as tmp:
        writer = _ShardWriterSet(graph, part, num_parts, fs, tmp, halo_hops, row_group_size, progress)
        files, parts, quality = writer.run()
        quality.update(assignment.quality)
        link_split = writer.link_edges(link) if link is not None else None
        manifest = Manifest(
            name=name or graph.name, num_nodes=n, num_edges=graph.edges.num_edges, num_parts=num_parts,
            method=part_method.name, balance=balance, seed=seed, halo_hops=halo_hops,
            row_group_size=row_group_size, parts=tuple(parts), node_fields=graph.node_fields,
            edge_fields=graph.edges.edge_fields, quality=quality, files=files, transforms=graph.transforms,
            link_split=link_split,
        )
        write_bytes(fs, join(tmp, MANIFEST), manifest.to_json().encode())
        output.commit()
    log.info("wrote %d parts to %s in %.1fs", num_parts, out, time.perf_counter() - started)
    return manifest


def _split_edges(graph: GraphInput, fractions, seed, k: int, progress, column=None) -> tuple[GraphInput, dict]:
    """The graph with only its training edges, and what writing ``link_edges.parquet`` needs."""
    from ..data.links import _check_fractions, edge_split_codes

    try:
        if column is None:
            f = _check_fractions(fractions, "--edge-split")
        else:
            column = np.asarray(column)
            e = graph.edges.num_edges
            if column.shape != (e,) or column.dtype.kind not in "iu" or (e and (column.min() < 0 or column.max() > 2)):
                raise ValueError(f"{graph.name}: the split column must hold [E] = [{e}] codes 0 (train), 1 (val) or "
                                 "2 (test)")
            column = column.astype(np.int8, copy=False)
            f = tuple(round(float(v), 6) for v in np.bincount(column, minlength=3) / max(e, 1))
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"--split-seed must be an integer >= 0, got {seed!r}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"--eval-negatives must be an integer >= 0, got {k!r}")
    except ValueError as err:
        raise PartitionError(str(err)) from None
    bar = progress("edge split", total=graph.edges.num_edges)
    if column is None:
        edges = TrainingEdges(graph.edges, lambda c: edge_split_codes(c.src, c.dst, f, int(seed)))
    else:
        edges = TrainingEdges(graph.edges, lambda c: column[c.start:c.start + len(c)])
    bar.update(edges.num_input_edges)
    bar.close()
    log.info("edge split %s: %d training edges of %d", f, edges.num_edges, edges.num_input_edges)
    return replace(graph, edges=edges), {"fractions": list(f), "seed": int(seed), "eval_negatives": int(k),
                                         "source": "hash" if column is None else "column"}


def _check_args(graph: GraphInput, k, hops, balance, seed, row_group_size, chunk_rows) -> None:
    n = graph.num_nodes
    for label, value, low in (("num_parts", k, 1), ("halo_hops", hops, 1), ("row_group_size", row_group_size, 1),
                              ("chunk_rows", chunk_rows, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise PartitionError(f"{label} must be an integer >= {low}, got {value!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise PartitionError(f"seed must be a non-negative integer, got {seed!r}")
    if k > n:
        raise PartitionError(f"{graph.name}: cannot cut {n} nodes into {k} parts (more parts than nodes)")
    if balance not in BALANCES:
        raise PartitionError(f"unknown balance {balance!r} (choose from {', '.join(BALANCES)})")
    if balance == "train" and graph.train_mask is None:
        raise PartitionError(f"{graph.name}: balance='train' needs a train_mask, and this graph has none")


_BYTES_PER_NODE = 48  # part id, old<->new id maps, two degree arrays, balance weights (int64 each)


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(name: str, n: int, k: int) -> None:
    """Refuse, in one line, a node count whose per-node arrays alone exceed this machine's memory."""
    total = _physical_memory()
    need = n * (_BYTES_PER_NODE + (k + 7) // 8)
    if total and need > total:
        raise PartitionError(
            f"{name}: {n} nodes need about {need / 2**30:,.1f} GiB of memory to partition, more than this "
            f"machine's {total / 2**30:,.1f} GiB (is the node count right? ids must be 0..N-1)"
        )


def _check_node_columns(graph: GraphInput) -> None:
    """The value checks :class:`GraphData` makes, on the node columns of a :class:`GraphInput`."""
    n, cols, where = graph.num_nodes, graph.node_columns, graph.name
    for name, a in cols.items():
        if len(a) != n:
            raise DataError(f"{where}: node column {name!r} has {len(a)} rows, the graph has {n} nodes")
    x = cols.get(NODE_COLUMNS["x"])
    if x is not None and np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        row = int(np.flatnonzero(~np.isfinite(x.reshape(n, -1)).all(axis=1))[0])
        raise DataError(f"{where}: features have NaN or infinite values (first at node {row})")
    y = cols.get(NODE_COLUMNS["y"])
    if y is None:
        return
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: labels must be integer class ids, got {y.dtype}")
    if n and (y.min() < -1 or y.max() >= n):
        row = int(np.flatnonzero((y < -1) | (y >= n))[0])
        raise DataError(f"{where}: label {int(y[row])} at node {row} lies outside [-1, {n}) (class ids are "
                        "0..C-1 with C at most the number of nodes; -1 is unlabelled)")
    for attr in ("train_mask", "val_mask", "test_mask"):
        m = cols.get(NODE_COLUMNS[attr])
        if m is not None and (m.astype(bool) & (y < 0)).any():
            row = int(np.flatnonzero(m.astype(bool) & (y < 0))[0])
            raise DataError(f"{where}: node {row} is in {attr} but has no label (-1)")


def _balance_weights(graph: GraphInput, method, balance: str, progress) -> np.ndarray | None:
    if balance == "none":
        return None
    if not method.uses_weights:
        log.info("%s balances node counts only; balance=%r is not used", method.name, balance)
        return None
    if balance == "train":
        return graph.train_mask.astype(np.int64)
    bar = progress("in-degrees", total=graph.edges.num_edges)
    deg = np.zeros(graph.num_nodes, dtype=np.int64)
    for chunk in graph.chunks():
        _count(deg, chunk.dst)
        bar.update(len(chunk))
    bar.close()
    return deg


def _count(acc: np.ndarray, ids: np.ndarray) -> None:
    """``acc[i] += (number of times i occurs in ids)``, cheap whether ``ids`` is long or short."""
    if len(ids) * 4 >= len(acc):
        acc += np.bincount(ids, minlength=len(acc))
    elif len(ids):
        uniq, cnt = np.unique(ids, return_counts=True)
        acc[uniq] += cnt


def _checked_part(assignment: Assignment, n: int, k: int, method: str) -> np.ndarray:
    part = np.asarray(assignment.part)
    if part.shape != (n,) or not np.issubdtype(part.dtype, np.integer):
        raise PartitionError(
            f"method {method!r} returned parts of shape {part.shape} {part.dtype}, expected ({n},) int"
        )
    if n and (int(part.min()) < 0 or int(part.max()) >= k):
        raise PartitionError(f"method {method!r} returned a part id outside [0, {k})")
    return part.astype(np.int32, copy=False)


def _balance(values: np.ndarray) -> float:
    mean = float(values.mean()) if len(values) else 0.0
    return round(float(values.max()) / mean, 6) if mean > 0 else 1.0


class _ShardWriterSet:
    """Stages 3-6 of the module docstring, writing into the temporary directory ``tmp``."""

    def __init__(self, graph, part, k, fs, tmp, hops, row_group_size, progress) -> None:
        self.graph, self.part, self.k, self.fs, self.tmp = graph, part, k, fs, tmp
        self.hops, self.rgs, self.progress = hops, row_group_size, progress
        # K edge files fill at once: keep their buffered rows under _EDGE_BUFFER_BYTES together
        row_bytes = 24 + sum(np.dtype(f.dtype).itemsize * int(np.prod(f.shape, dtype=np.int64))
                             for f in graph.edges.edge_fields)
        self.edge_rgs = min(row_group_size, max(1 << 16, _EDGE_BUFFER_BYTES // (k * row_bytes)))
        self.n = graph.num_nodes
        self.files: dict[str, FileInfo] = {}

    def path(self, k: int, name: str) -> str:
        return join(self.tmp, part_dir(k), name)

    def record(self, rel: str, info: FileInfo) -> None:
        self.files[rel] = info

    def run(self):
        n, k = self.n, self.k
        counts = np.bincount(self.part, minlength=k)
        self.starts = np.zeros(k + 1, dtype=np.int64)
        np.cumsum(counts, out=self.starts[1:])
        bar = self.progress("relabel", total=n, unit="nodes")
        self.new_to_old = np.argsort(self.part, kind="stable").astype(np.int64)
        self.old_to_new = np.empty(n, dtype=np.int64)
        self.old_to_new[self.new_to_old] = np.arange(n, dtype=np.int64)
        self.record(NODES_MAP, write_table(
            self.fs, join(self.tmp, NODES_MAP), nodes_map_schema(),
            [np.arange(n, dtype=np.int64), self.old_to_new, self.part], self.rgs,
        ))
        bar.update(n)
        bar.close()
        for p in range(k):
            self.fs.create_dir(join(self.tmp, part_dir(p)), recursive=False)

        edge_counts, cut, hop1, in_deg, out_deg = self._edges()
        rings, halo_edge_counts = self._halo(hop1)
        del hop1
        self._nodes(in_deg, out_deg)
        del in_deg, out_deg

        parts = []
        for p in range(k):
            halo_ids = np.concatenate(rings[p]) if rings[p] else np.zeros(0, np.int64)
            hop = np.repeat(np.arange(1, len(rings[p]) + 1, dtype=np.int32), [len(r) for r in rings[p]])
            rel = f"{part_dir(p)}/{HALO}"
            self.record(rel, write_table(
                self.fs, join(self.tmp, rel), halo_schema(),
                [halo_ids.astype(np.int64), owner_of(halo_ids, self.starts), hop], self.rgs,
            ))
            parts.append(PartInfo(
                part=p, path=part_dir(p), node_start=int(self.starts[p]), node_end=int(self.starts[p + 1]),
                num_edges=int(edge_counts[p]), num_halo=int(len(halo_ids)),
                num_halo_edges=int(halo_edge_counts[p]),
            ))
        train = self.graph.train_mask
        train_counts = None if train is None else np.bincount(self.part[train], minlength=k)
        e = self.graph.edges.num_edges
        quality = {
            "edge_cut": int(cut),
            "edge_cut_fraction": round(cut / e, 6) if e else 0.0,
            "node_balance": _balance(counts),
            "edge_balance": _balance(edge_counts),
            "train_balance": None if train_counts is None or not train_counts.sum() else _balance(train_counts),
            "halo_nodes": int(sum(len(r[0]) for r in rings)),
        }
        return self.files, parts, quality

    def link_edges(self, link: dict) -> dict:
        """Write every part's ``link_edges.parquet``; return the manifest's ``link_split``."""
        from ..data.links import SPLIT_TEST, SPLIT_VAL, candidate_table

        edges, k = self.graph.edges, int(link["eval_negatives"])
        p = len(edges.eval_src)
        table = candidate_table(edges.eval_src, edges.eval_dst, edges.eval_split, np.arange(p, dtype=np.int64), k,
                                max(self.n, 1), link["seed"])
        src, dst = self.old_to_new[table["src"]], self.old_to_new[table["dst"]]  # new ids
        owner = np.repeat(owner_of(self.old_to_new[edges.eval_dst], self.starts), 1 + k)  # the positive's target
        rows_of = dict(split_by_owner(owner, self.k))
        empty = np.zeros(0, dtype=np.int64)
        for part in range(self.k):
            rows = rows_of.get(part, empty)
            rel = f"{part_dir(part)}/{LINK_EDGES}"
            self.record(rel, write_table(self.fs, join(self.tmp, rel), link_edges_schema(),
                                         [src[rows], dst[rows], table["split"][rows], table["label"][rows],
                                          table["query"][rows]], self.rgs))
        counts = {"train": int(edges.num_edges), "val": int((edges.eval_split == SPLIT_VAL).sum()),
                  "test": int((edges.eval_split == SPLIT_TEST).sum())}
        return {**link, "num_input_edges": int(edges.num_input_edges), "counts": counts}

    def _new_chunks(self):
        """The edge list again, in new ids: ``(src, dst, eid, attr)`` chunks."""
        for chunk in self.graph.chunks():
            eid = np.arange(chunk.start, chunk.start + len(chunk), dtype=np.int64)
            yield self.old_to_new[chunk.src], self.old_to_new[chunk.dst], eid, chunk.attr

    def _edges(self):
        n, k = self.n, self.k
        schema = edges_schema(self.graph.edges.edge_fields)
        writers = [ShardWriter(self.fs, self.path(p, EDGES), schema, self.edge_rgs) for p in range(k)]
        in_deg = np.zeros(n, dtype=np.int64)
        out_deg = np.zeros(n, dtype=np.int64)
        hop1 = PartBits(n, k)
        cut = 0
        bar = self.progress("edges", total=self.graph.edges.num_edges)
        try:
            for src, dst, eid, attr in self._new_chunks():
                _count(in_deg, dst)
                _count(out_deg, src)
                owner = owner_of(dst, self.starts)
                for p, rows in split_by_owner(owner, k):
                    s = src[rows]
                    cols = [s, dst[rows], eid[rows]] + ([attr[rows]] if attr is not None else [])
                    writers[p].append(cols)
                    f = foreign(s, int(self.starts[p]), int(self.starts[p + 1]))
                    cut += len(f)
                    hop1.add(p, f)
                bar.update(len(src))
            edge_counts = np.zeros(k, dtype=np.int64)
            for p, w in enumerate(writers):
                self.record(f"{part_dir(p)}/{EDGES}", w.close())
                edge_counts[p] = w.rows
        except BaseException:
            for w in writers:
                w.abort()
            raise
        finally:
            bar.close()
        return edge_counts, cut, hop1, in_deg, out_deg

    def _halo(self, hop1: PartBits):
        k = self.k
        halo_edge_counts = np.zeros(k, dtype=np.int64)
        if self.hops == 1:
            return expand_halo(lambda: (), self.starts, hop1, 1), halo_edge_counts
        schema = edges_schema(self.graph.edges.edge_fields)
        writers = [ShardWriter(self.fs, self.path(p, HALO_EDGES), schema, self.edge_rgs) for p in range(k)]
        bar = self.progress(f"halo rings 2..{self.hops}", total=self.graph.edges.num_edges * (self.hops - 1))

        def emit(p, chunk):
            src, dst, eid, attr = chunk
            writers[p].append([src, dst, eid] + ([attr] if attr is not None else []))

        def chunks():
            for c in self._new_chunks():
                yield c
                bar.update(len(c[0]))

        try:
            rings = expand_halo(chunks, self.starts, hop1, self.hops, emit)
            for p, w in enumerate(writers):
                self.record(f"{part_dir(p)}/{HALO_EDGES}", w.close())
                halo_edge_counts[p] = w.rows
        except BaseException:
            for w in writers:
                w.abort()
            raise
        finally:
            bar.close()
        return rings, halo_edge_counts

    def _nodes(self, in_deg: np.ndarray, out_deg: np.ndarray) -> None:
        fields = self.graph.node_fields
        schema = nodes_schema(fields)
        row_bytes = 24 + sum(
            np.dtype(f.dtype).itemsize * int(np.prod(f.shape, dtype=np.int64)) for f in fields
        )
        group = max(1024, min(self.rgs, _NODE_GROUP_BYTES // row_bytes))
        columns = list(self.graph.node_columns.values())
        bar = self.progress("nodes", total=self.n, unit="nodes")
        for p in range(self.k):
            start, end = int(self.starts[p]), int(self.starts[p + 1])
            w = ShardWriter(self.fs, self.path(p, NODES), schema, group)
            try:
                for lo in range(start, end, group):
                    hi = min(lo + group, end)
                    old = self.new_to_old[lo:hi]
                    w.append([np.arange(lo, hi, dtype=np.int64)] + [c[old] for c in columns]
                             + [in_deg[lo:hi], out_deg[lo:hi]])
                    bar.update(hi - lo)
                self.record(f"{part_dir(p)}/{NODES}", w.close())
            except BaseException:
                w.abort()
                raise
        bar.close()
