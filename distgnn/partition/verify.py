"""``verify(path)``: check every invariant of the format (:mod:`.format`) on a partition.

Checks, in order (the first failure raises :class:`VerifyError` with a one-line message naming the
file): the manifest parses and its part ranges tile ``[0, N)``; every expected file exists, has the
recorded size and sha256 and no unexpected file is listed; every file has the documented columns,
types and row counts; ``nodes-map`` is a bijection consistent with the ranges; each part's node ids
are its range; every edge is stored exactly once, at its target's owner, with ids in range; the
stored degrees equal the whole-graph degrees; each halo is exactly the foreign sources of its
part's edges (and, for ``halo_hops > 1``, the further rings and their in-edges), with the right
owners; the manifest's counts and quality figures match the shards; and, with an edge split,
every ``link_edges.parquet`` has ids in range, valid labels and splits, one positive per query with
its target owned by the part and its negatives beside it, and the split counts of the manifest.

Edges are read a row group at a time; memory is ``O(N * (16 + K / 8) + E)`` bytes.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from .errors import PartitionError, VerifyError
from .format import (
    EDGES, HALO, HALO_EDGES, LINK_EDGES, MANIFEST, NODES, NODES_MAP, Manifest, arrow_type, edges_schema,
    halo_schema, link_edges_schema, nodes_map_schema, nodes_schema, part_dir,
)
from .halo import PartBits, expand_halo, foreign, owner_of
from .progress import Progress, no_progress
from .reader import column_numpy, load_manifest
from .storage import _first_line, join, open_fs, sha256_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyReport:
    """What a successful :func:`verify` checked."""

    path: str
    num_parts: int
    num_nodes: int
    num_edges: int
    num_files: int
    checksums: bool

    def __str__(self) -> str:
        sums = "checksums and " if self.checksums else ""
        return (f"ok: {self.path}: {self.num_parts} parts, {self.num_nodes} nodes, {self.num_edges} edges, "
                f"{self.num_files} files; {sums}all invariants hold")


def verify(path: str | os.PathLike, *, checksums: bool = True, progress: Progress = no_progress) -> VerifyReport:
    """Check the partition at ``path``; raise :class:`VerifyError` on the first broken invariant."""
    try:
        m = load_manifest(path)
    except VerifyError:
        raise
    except PartitionError as err:
        raise VerifyError(str(err)) from None
    fs, root = open_fs(path)
    v = _Verifier(fs, root, m, progress)
    try:
        v.structure()
        if checksums:
            v.checksums()
        v.schemas()
        v.nodes_map()
        v.edges_and_halo()
        v.link_edges()
    except VerifyError:
        raise
    except PartitionError as err:  # e.g. an unreadable file
        raise VerifyError(str(err)) from None
    return VerifyReport(os.fspath(path), m.num_parts, m.num_nodes, m.num_edges, len(v.expected), checksums)


def _fail(where: str, message: str) -> None:
    raise VerifyError(f"{where}: {message}")


class _Verifier:
    def __init__(self, fs, root: str, m: Manifest, progress: Progress) -> None:
        self.fs, self.root, self.m, self.progress = fs, root, m, progress
        self.starts = np.array([0] + [p.node_end for p in m.parts], dtype=np.int64)
        self.expected = [NODES_MAP]
        for k in range(m.num_parts):
            names = [NODES, EDGES, HALO] + ([HALO_EDGES] if m.halo_hops > 1 else [])
            names += [LINK_EDGES] if m.link_split is not None else []
            self.expected += [f"{part_dir(k)}/{name}" for name in names]

    # ------------------------------------------------------------------ manifest and files
    def structure(self) -> None:
        m = self.m
        if m.num_parts < 1:
            _fail(MANIFEST, f"num_parts must be >= 1, got {m.num_parts}")
        if m.halo_hops < 1:
            _fail(MANIFEST, f"halo_hops must be >= 1, got {m.halo_hops}")
        end = 0
        for k, p in enumerate(m.parts):
            if p.part != k or p.path != part_dir(k):
                _fail(MANIFEST, f"parts[{k}] is part {p.part} at {p.path!r}, expected part {k} at {part_dir(k)!r}")
            if p.node_start != end or p.node_end < p.node_start:
                _fail(MANIFEST, f"part {k} owns [{p.node_start}, {p.node_end}), expected a range starting at {end}")
            end = p.node_end
        if end != m.num_nodes:
            _fail(MANIFEST, f"the part ranges cover [0, {end}) but num_nodes is {m.num_nodes}")
        total = sum(p.num_edges for p in m.parts)
        if total != m.num_edges:
            _fail(MANIFEST, f"the parts hold {total} edges but num_edges is {m.num_edges}")
        missing = [f for f in self.expected if f not in m.files]
        if missing:
            _fail(missing[0], "expected by the format but not listed in the manifest")
        extra = sorted(set(m.files) - set(self.expected))
        if extra:
            _fail(extra[0], "listed in the manifest but not part of the format")
        import pyarrow.fs as pafs

        for rel in self.expected:
            info = self.fs.get_file_info(join(self.root, rel))
            if info.type != pafs.FileType.File:
                _fail(rel, "missing (a deleted part or an incomplete copy)")
            if info.size != m.files[rel].bytes:
                _fail(rel, f"{info.size} bytes, manifest says {m.files[rel].bytes} (truncated or rewritten)")

    def checksums(self) -> None:
        bar = self.progress("checksums", total=len(self.expected), unit="files")
        for rel in self.expected:
            digest, _ = sha256_of(self.fs, join(self.root, rel))
            if digest != self.m.files[rel].sha256:
                _fail(rel, "sha256 mismatch (the file was changed or corrupted after it was written)")
            bar.update(1)
        bar.close()

    def _parquet(self, rel: str):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.fs.open_input_file(join(self.root, rel)), pre_buffer=False, buffer_size=1 << 20)
        except (OSError, pa.ArrowException) as err:
            _fail(rel, f"unreadable as Parquet ({_first_line(err)})")

    def schemas(self) -> None:
        m = self.m
        for f in m.node_fields + m.edge_fields:
            try:
                arrow_type(f)
            except (TypeError, ValueError, PartitionError) as err:
                _fail(MANIFEST, f"field {f.name!r} has an unusable dtype/shape ({err})")
        want = {NODES_MAP: nodes_map_schema()}
        for k, p in enumerate(m.parts):
            d = part_dir(k)
            want[f"{d}/{NODES}"] = nodes_schema(m.node_fields)
            want[f"{d}/{EDGES}"] = edges_schema(m.edge_fields)
            want[f"{d}/{HALO}"] = halo_schema()
            if m.halo_hops > 1:
                want[f"{d}/{HALO_EDGES}"] = edges_schema(m.edge_fields)
            if m.link_split is not None:
                want[f"{d}/{LINK_EDGES}"] = link_edges_schema()
        rows = {NODES_MAP: m.num_nodes}
        for k, p in enumerate(m.parts):
            d = part_dir(k)
            rows.update({f"{d}/{NODES}": p.num_nodes, f"{d}/{EDGES}": p.num_edges, f"{d}/{HALO}": p.num_halo})
            if m.halo_hops > 1:
                rows[f"{d}/{HALO_EDGES}"] = p.num_halo_edges
            if m.link_split is not None:
                rows[f"{d}/{LINK_EDGES}"] = m.files[f"{d}/{LINK_EDGES}"].rows
        for rel in self.expected:
            pf = self._parquet(rel)
            got = pf.schema_arrow
            for fld in want[rel]:
                if fld.name not in got.names:
                    _fail(rel, f"missing column {fld.name!r}")
                if got.field(fld.name).type != fld.type:
                    _fail(rel, f"column {fld.name!r} is {got.field(fld.name).type}, the manifest says {fld.type}")
            if pf.metadata.num_rows != rows[rel]:
                _fail(rel, f"{pf.metadata.num_rows} rows, manifest says {rows[rel]}")
            if pf.metadata.num_rows != m.files[rel].rows and rel in m.files:
                _fail(rel, f"{pf.metadata.num_rows} rows, manifest files entry says {m.files[rel].rows}")

    def _batches(self, rel: str, columns: list[str]):
        import pyarrow as pa

        pf = self._parquet(rel)
        try:
            for batch in pf.iter_batches(columns=columns, batch_size=1 << 20):
                yield batch
        except pa.ArrowException as err:
            _fail(rel, f"unreadable ({_first_line(err)})")

    # ------------------------------------------------------------------ contents
    def nodes_map(self) -> None:
        n = self.m.num_nodes
        seen = np.zeros(n, dtype=bool)
        row = 0
        for b in self._batches(NODES_MAP, ["id", "new_id", "part"]):
            ids, new, part = (b.column(i).to_numpy() for i in range(3))
            if not np.array_equal(ids, np.arange(row, row + len(ids))):
                _fail(NODES_MAP, f"column 'id' must be 0..{n - 1} in order (wrong near row {row})")
            if len(new) and (new.min() < 0 or new.max() >= n):
                _fail(NODES_MAP, f"a new_id lies outside [0, {n})")
            if seen[new].any() or len(np.unique(new)) != len(new):
                _fail(NODES_MAP, "two nodes share a new id (a node would be owned twice)")
            seen[new] = True
            if not np.array_equal(part, owner_of(new, self.starts)):
                bad = int(np.flatnonzero(part != owner_of(new, self.starts))[0])
                _fail(NODES_MAP, f"node {row + bad} has part {part[bad]} but its new id {new[bad]} "
                                 "lies in another part's range")
            row += len(ids)
        if not seen.all():
            _fail(NODES_MAP, f"new id {int(np.flatnonzero(~seen)[0])} is owned by no node")

    def edges_and_halo(self) -> None:
        m, n, e, k = self.m, self.m.num_nodes, self.m.num_edges, self.m.num_parts
        seen = np.zeros(e, dtype=np.uint8)
        in_deg = np.zeros(n, dtype=np.int64)
        out_deg = np.zeros(n, dtype=np.int64)
        hop1 = PartBits(n, k)
        cut = 0
        bar = self.progress("verify edges", total=e)
        for p in m.parts:
            rel = f"{p.path}/{EDGES}"
            last = -1
            for b in self._batches(rel, ["src", "dst", "eid"]):
                src, dst, eid = (b.column(i).to_numpy() for i in range(3))
                if len(src) == 0:
                    continue
                if src.min() < 0 or src.max() >= n:
                    _fail(rel, f"a source id lies outside [0, {n})")
                if dst.min() < p.node_start or dst.max() >= p.node_end:
                    bad = int(np.flatnonzero((dst < p.node_start) | (dst >= p.node_end))[0])
                    _fail(rel, f"edge {eid[bad]} has target {dst[bad]}, owned by part "
                               f"{int(owner_of(dst[bad:bad + 1], self.starts)[0])}, not part {p.part}")
                if eid.min() < 0 or eid.max() >= e:
                    _fail(rel, f"an edge id lies outside [0, {e})")
                if eid[0] <= last or (np.diff(eid) <= 0).any():
                    _fail(rel, "edge ids are not strictly increasing (an edge is stored twice, or out of order)")
                last = int(eid[-1])
                if seen[eid].any():
                    bad = int(eid[np.flatnonzero(seen[eid])[0]])
                    _fail(rel, f"edge {bad} is also stored in another part")
                seen[eid] = 1
                in_deg += np.bincount(dst, minlength=n)
                out_deg += np.bincount(src, minlength=n)
                f = foreign(src, p.node_start, p.node_end)
                cut += len(f)
                hop1.add(p.part, f)
                bar.update(len(src))
        bar.close()
        if e and not seen.all():
            _fail(f"{MANIFEST}", f"edge {int(np.flatnonzero(seen == 0)[0])} is stored in no part")
        del seen
        self._degrees(in_deg, out_deg)
        del in_deg, out_deg
        self._halo(hop1)
        q = m.quality
        if "edge_cut" in q and q["edge_cut"] != cut:
            _fail(MANIFEST, f"quality.edge_cut is {q['edge_cut']} but the shards cut {cut} edges")

    def link_edges(self) -> None:
        """The candidates of an edge split (see the module docstring); nothing without a split."""
        m, n = self.m, self.m.num_nodes
        ls = m.link_split
        if ls is None:
            return
        k = ls["eval_negatives"]
        counts = {1: 0, 2: 0}
        queries = []
        for p in m.parts:
            rel = f"{p.path}/{LINK_EDGES}"
            table = self._read(rel, ["src", "dst", "split", "label", "query"])
            src, dst, split, label, query = (column_numpy(table, c) for c in ("src", "dst", "split", "label", "query"))
            if len(src) and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n):
                _fail(rel, f"a node id lies outside [0, {n})")
            if not np.isin(label, (0, 1)).all() or not np.isin(split, (1, 2)).all():
                _fail(rel, "label must be 0 or 1 and split 1 (val) or 2 (test)")
            if len(src) % (1 + k):
                _fail(rel, f"{len(src)} rows is not a whole number of queries of 1 positive + {k} negatives")
            q = query.reshape(-1, 1 + k)
            lab = label.reshape(-1, 1 + k)
            if not (lab[:, 0] == 1).all() or (lab[:, 1:] != 0).any() or (q != q[:, :1]).any():
                _fail(rel, f"rows must come as one positive then its {k} negatives, sharing a query id")
            if (split.reshape(-1, 1 + k) != split.reshape(-1, 1 + k)[:, :1]).any():
                _fail(rel, "a negative's split differs from its positive's")
            pos_dst = dst.reshape(-1, 1 + k)[:, 0]
            if len(pos_dst) and (pos_dst.min() < p.node_start or pos_dst.max() >= p.node_end):
                _fail(rel, f"a positive's target lies outside the part's range [{p.node_start}, {p.node_end})")
            if (src.reshape(-1, 1 + k) != src.reshape(-1, 1 + k)[:, :1]).any():
                _fail(rel, "a negative's source differs from its positive's")
            for code in counts:
                counts[code] += int(((label == 1) & (split == code)).sum())
            queries.append(q[:, 0])
        allq = np.sort(np.concatenate(queries)) if queries else np.zeros(0, np.int64)
        if not np.array_equal(allq, np.arange(len(allq))):
            _fail(MANIFEST, "link_edges query ids must number the validation/test edges 0..P-1, each once")
        want = ls["counts"]
        got = {"train": m.num_edges, "val": counts[1], "test": counts[2]}
        for key in ("train", "val", "test"):
            if want.get(key) != got[key]:
                _fail(MANIFEST, f"link_split.counts.{key} is {want.get(key)} but the shards hold {got[key]}")

    def _degrees(self, in_deg: np.ndarray, out_deg: np.ndarray) -> None:
        for p in self.m.parts:
            rel = f"{p.path}/{NODES}"
            row = p.node_start
            for b in self._batches(rel, ["id", "in_degree", "out_degree"]):
                ids, ind, outd = (b.column(i).to_numpy() for i in range(3))
                if not np.array_equal(ids, np.arange(row, row + len(ids))):
                    _fail(rel, f"node ids must be {p.node_start}..{p.node_end - 1} in order (wrong near id {row})")
                for name, got, want in (("in_degree", ind, in_deg), ("out_degree", outd, out_deg)):
                    exp = want[row:row + len(ids)]
                    if not np.array_equal(got, exp):
                        bad = int(np.flatnonzero(got != exp)[0])
                        _fail(rel, f"node {row + bad} has {name} {got[bad]}, the whole graph gives {exp[bad]}")
                row += len(ids)

    def _stored_edges(self):
        for p in self.m.parts:
            for b in self._batches(f"{p.path}/{EDGES}", ["src", "dst", "eid"]):
                yield b.column(0).to_numpy(), b.column(1).to_numpy(), b.column(2).to_numpy(), None

    def _halo(self, hop1: PartBits) -> None:
        m = self.m
        emitted: list[list[tuple]] = [[] for _ in range(m.num_parts)]

        def collect(k, chunk):
            emitted[k].append((chunk[2], chunk[0], chunk[1]))

        rings = expand_halo(self._stored_edges, self.starts, hop1, m.halo_hops, collect)
        total1 = 0
        for p in m.parts:
            rel = f"{p.path}/{HALO}"
            table = self._read(rel, ["id", "owner", "hop"])
            ids, owner, hop = (column_numpy(table, c) for c in ("id", "owner", "hop"))
            want_ids = np.concatenate(rings[p.part])
            want_hop = np.repeat(np.arange(1, m.halo_hops + 1), [len(r) for r in rings[p.part]])
            total1 += len(rings[p.part][0])
            if not np.array_equal(ids, want_ids) or not np.array_equal(hop, want_hop):
                missing = np.setdiff1d(want_ids, ids)
                if missing.size:
                    _fail(rel, f"halo incomplete: node {missing[0]} is a foreign source of this part but is not listed")
                extra = np.setdiff1d(ids, want_ids)
                if extra.size:
                    _fail(rel, f"node {extra[0]} is listed in the halo but no edge of this part needs it")
                _fail(rel, "halo nodes are not sorted by hop then id, or carry the wrong hop")
            if not np.array_equal(owner, owner_of(ids, self.starts)):
                bad = int(np.flatnonzero(owner != owner_of(ids, self.starts))[0])
                _fail(rel, f"halo node {ids[bad]} has owner {owner[bad]}, but part "
                           f"{int(owner_of(ids[bad:bad + 1], self.starts)[0])} owns it")
            if m.halo_hops > 1:
                self._halo_edges(p, emitted[p.part])
        if "halo_nodes" in m.quality and m.quality["halo_nodes"] != total1:
            _fail(MANIFEST, f"quality.halo_nodes is {m.quality['halo_nodes']} but the halos hold {total1} hop-1 nodes")

    def _halo_edges(self, p, emitted) -> None:
        rel = f"{p.path}/{HALO_EDGES}"
        table = self._read(rel, ["src", "dst", "eid"])
        got = np.stack([column_numpy(table, c) for c in ("eid", "src", "dst")])
        want = np.concatenate([np.stack(t) for t in emitted], axis=1) if emitted else np.zeros((3, 0), np.int64)
        got = got[:, np.argsort(got[0], kind="stable")]
        want = want[:, np.argsort(want[0], kind="stable")]
        if got.shape != want.shape or not np.array_equal(got, want):
            _fail(rel, f"holds {got.shape[1]} halo in-edges, the halo rings need exactly {want.shape[1]} "
                       "(or their src/dst differ from the stored edges)")

    def _read(self, rel: str, columns: list[str]):
        import pyarrow as pa

        pf = self._parquet(rel)
        try:
            return pf.read(columns=columns)
        except pa.ArrowException as err:
            _fail(rel, f"unreadable ({_first_line(err)})")
