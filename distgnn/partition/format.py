"""The distgnn partition format, version 1: the one place it is documented.

A partition of a graph ``G`` (``N`` nodes, ``E`` directed edges ``src -> dst``) into ``K`` parts
is a directory (local, or any filesystem pyarrow supports: ``s3://``, ``gs://``, ``hdfs://``)::

    OUT/
      manifest.json            what is below, with a sha256 per file (written last)
      nodes-map.parquet        original id -> new id, one row per node, in original-id order
      part-00000/
        nodes.parquet          the nodes part 0 owns, in new-id order
        edges.parquet          every edge whose target part 0 owns, in original-edge-id order
        halo.parquet           the nodes part 0 needs but does not own, with their owners
        halo_edges.parquet     only when halo_hops > 1: the in-edges of the inner halo rings
        link_edges.parquet     only with an edge split: validation/test edges and their negatives
      part-00001/
        ...

**Ids.** Nodes are relabelled so that each part owns a contiguous range of *new* ids: part ``k``
owns ``[node_start, node_end)`` (``manifest.parts[k]``), the ranges tile ``[0, N)`` in part order,
and inside a part nodes keep their original relative order (new ids follow original ids). Every
id inside a shard is a new global id; ``nodes-map.parquet`` maps back. Edge ids (``eid``) are the
positions of the edges in the input edge list, ``[0, E)``, and are not relabelled (with an edge
split: the positions among the training edges).

**Files** (all Parquet, zstd-compressed, row groups of at most ``row_group_size`` rows, so every
file can be streamed a row group at a time; columns in this order):

``nodes-map.parquet`` — ``N`` rows, sorted by ``id``:

=========  =====  ===========================================================
column     type   meaning
=========  =====  ===========================================================
id         int64  original node id (``0..N-1``, the row number)
new_id     int64  its new id
part       int32  the part that owns it
=========  =====  ===========================================================

``part-KKKKK/nodes.parquet`` — one row per owned node, sorted by ``id`` (= ``node_start + row``):

============  ===========================  ====================================================
column        type                         meaning
============  ===========================  ====================================================
id            int64                        new id
features      fixed_size_list<f32>[F]      node features (``GraphData.x``), if the graph has any
label         int64                        class label, ``-1`` unlabelled (``GraphData.y``), if any
train_mask    bool                         likewise ``val_mask``, ``test_mask``, each if present
in_degree     int64                        in-degree in the WHOLE graph (edges ``* -> id``)
out_degree    int64                        out-degree in the WHOLE graph (edges ``id -> *``)
============  ===========================  ====================================================

Which of ``features``/``label``/masks exist, and their dtypes and per-row shapes, is recorded in
``manifest.node_fields`` (features keep the input dtype: float32, float64, ...).

``part-KKKKK/edges.parquet`` — every edge ``src -> dst`` of ``G`` whose ``dst`` this part owns,
each edge of ``G`` in exactly one part, sorted by ``eid``; self-loops and multi-edges are kept:

=========  =============================  ================================================
column     type                           meaning
=========  =============================  ================================================
src        int64                          new id of the source (owned here or a halo node)
dst        int64                          new id of the target (always owned here)
eid        int64                          original edge id
features   fixed_size_list<f32>[S]        edge features (``GraphData.edge_attr``), if any
=========  =============================  ================================================

``part-KKKKK/halo.parquet`` — the halo: nodes not owned here that the part needs, sorted by
``hop`` then ``id``:

=========  =====  =================================================================
column     type   meaning
=========  =====  =================================================================
id         int64  new id of the halo node
owner      int32  the part that owns it (the ``k`` with ``node_start <= id < node_end``)
hop        int32  its distance (``1..halo_hops``) from the owned nodes, against the
                  edge direction
=========  =====  =================================================================

Hop 1 is exactly the set of sources of this part's edges that are owned elsewhere: what a layer
needs for one message-passing step. With ``halo_hops = H > 1``, hop ``h`` is the set of sources of
edges into hop ``h-1`` nodes that are neither owned here nor in an earlier hop (a breadth-first
search from the owned nodes against the edge direction, stopped at ``H``), and

``part-KKKKK/halo_edges.parquet`` (only when ``H > 1``; same columns as ``edges.parquet``, sorted
by the hop of ``dst``, then ``eid``) holds every edge whose target is a halo node of hop ``1..H-1``
— the in-edges a sampler needs to expand the halo further without asking its owner. These edges are
copies; each edge's home is still the ``edges.parquet`` of its target's owner. Hop-``H`` nodes have
no in-edges stored here.

No halo features are stored: workers fetch them from the owners at run time.

**manifest.json** — a JSON object; the reader accepts only ``schema_version`` 1 (a later version
adds a new number, never changes the meaning of an existing field). Example: Cora in 2 parts
(``python -m distgnn.partition planetoid:cora --parts 2 --out cora-2``; sha256 shortened)::

    {
      "format": "distgnn-partition",
      "schema_version": 1,
      "name": "cora",
      "num_nodes": 2708,
      "num_edges": 10556,
      "num_parts": 2,
      "method": "metis",
      "balance": "edges",
      "seed": 0,
      "halo_hops": 1,
      "row_group_size": 1048576,
      "parts": [
        {"part": 0, "path": "part-00000", "node_start": 0, "node_end": 1316,
         "num_edges": 5249, "num_halo": 121, "num_halo_edges": 0},
        {"part": 1, "path": "part-00001", "node_start": 1316, "node_end": 2708,
         "num_edges": 5307, "num_halo": 142, "num_halo_edges": 0}
      ],
      "node_fields": [
        {"name": "features", "dtype": "float32", "shape": [1433]},
        {"name": "label", "dtype": "int64", "shape": []},
        {"name": "train_mask", "dtype": "bool", "shape": []},
        {"name": "val_mask", "dtype": "bool", "shape": []},
        {"name": "test_mask", "dtype": "bool", "shape": []}
      ],
      "edge_fields": [],
      "quality": {"edge_cut": 390, "edge_cut_fraction": 0.036946, "node_balance": 1.028065,
                  "edge_balance": 1.005495, "train_balance": 1.114286, "halo_nodes": 263,
                  "metis_objective": 195},
      "transforms": ["row-normalize"],
      "files": {
        "nodes-map.parquet": {"sha256": "15c0...", "bytes": 9535, "rows": 2708},
        "part-00000/nodes.parquet": {"sha256": "a02f...", "bytes": 78582, "rows": 1316},
        "part-00000/edges.parquet": {"sha256": "1152...", "bytes": 18732, "rows": 5249},
        "part-00000/halo.parquet": {"sha256": "f5bb...", "bytes": 1059, "rows": 121},
        "part-00001/nodes.parquet": {"sha256": "a56f...", "bytes": 79132, "rows": 1392},
        "part-00001/edges.parquet": {"sha256": "57e3...", "bytes": 18368, "rows": 5307},
        "part-00001/halo.parquet": {"sha256": "c095...", "bytes": 1133, "rows": 142}
      },
      "created_by": "distgnn.partition"
    }

**Edge split (link prediction).** ``python -m distgnn.partition ... --edge-split 0.85,0.05,0.10
[--eval-negatives K] [--split-seed S]`` (or :func:`~distgnn.partition.partition`'s ``edge_split``)
splits the input edges exactly as :func:`distgnn.data.links.split_links` does (a keyed hash of the
unordered pair and the seed: both directions of a pair in the same split; ``K`` fixed negatives
per validation/test edge keyed by its query id). Validation and test edges are then removed
before partitioning: the assignment, ``edges.parquet``, degrees and halos see only the training
edges, which keep the input order and are renumbered ``0..E_train-1`` (their ``eid``; ``num_edges``
counts them). Each part gets ``part-KKKKK/link_edges.parquet``, the candidates whose *positive*
has its target owned by the part (a negative lives with its positive), in query order, each
query's positive first:

=========  =====  ===================================================================
column     type   meaning
=========  =====  ===================================================================
src        int64  new id of the source (a negative keeps its positive's source)
dst        int64  new id of the target (any part's node for a negative)
split      int8   1 validation, 2 test (a negative takes its positive's split)
label      int8   1 the edge exists (positive), 0 a negative
query      int64  the positive's number among all validation/test edges in input order,
                  shared by its negatives
=========  =====  ===================================================================

and the manifest gains ``"link_split": {"fractions": [0.85, 0.05, 0.1], "seed": 0,
"eval_negatives": 1, "source": "hash", "num_input_edges": 10556, "counts": {"train": 9044,
"val": 500, "test": 1012}}`` (``counts``: positive edges per split). A Parquet edge table with a
``split`` column (``train``/``val``/``test`` or ``0``/``1``/``2``) is split by that column when
``--edge-split`` is not given: ``"source": "column"`` and ``fractions`` then record the shares
found (the negatives are still keyed by ``--split-seed``). Without a split the key is
absent (``null``) and so are the files; manifests written before it existed read as no split.

``quality`` (all over the directed edge list): ``edge_cut`` = edges whose source and target are
owned by different parts (each makes its target wait for a halo feature), ``edge_cut_fraction`` = ``edge_cut / E``,
``*_balance`` = largest part / mean part for owned nodes, stored edges and training nodes
(``null`` without a train mask), ``halo_nodes`` = sum of the hop-1 halo sizes, and, for
``metis`` only, ``metis_objective`` = the cut METIS reports for the undirected simple graph it
partitioned (each cut node pair counted once).

``transforms`` lists the feature transforms applied to ``features`` before partitioning, in order
(:mod:`distgnn.data.transforms`: ``"row-normalize"``; ``[]`` for raw features). A manifest
without the key (written before it was recorded) reads as ``[]``.

**Writing.** Everything is written into a temporary directory ``.OUT.tmp-<random>`` beside
``OUT``, ``manifest.json`` last, then renamed to ``OUT``: an interrupted run leaves no directory
that looks like a partition (on object stores, where a rename is a copy, a directory without
``manifest.json`` is incomplete). ``python -m distgnn.partition verify OUT`` checks every
invariant above.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import PartitionError

FORMAT_NAME = "distgnn-partition"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
NODES_MAP = "nodes-map.parquet"
NODES = "nodes.parquet"
EDGES = "edges.parquet"
HALO = "halo.parquet"
HALO_EDGES = "halo_edges.parquet"
LINK_EDGES = "link_edges.parquet"
DEFAULT_ROW_GROUP_SIZE = 1 << 20
COMPRESSION = "zstd"

#: GraphData attribute -> column name in nodes.parquet, in column order.
NODE_COLUMNS = {
    "x": "features",
    "y": "label",
    "train_mask": "train_mask",
    "val_mask": "val_mask",
    "test_mask": "test_mask",
}
#: GraphData attribute -> column name in edges.parquet.
EDGE_COLUMNS = {"edge_attr": "features"}

METHODS = ("metis", "random", "range", "stream")
BALANCES = ("train", "edges", "none")


def part_dir(k: int) -> str:
    """The folder of part ``k``: ``part-00000``, ``part-00001``, ..."""
    return f"part-{k:05d}"


@dataclass(frozen=True)
class FieldSpec:
    """One data column: its name, numpy dtype name and per-row shape (``()`` for a scalar)."""

    name: str
    dtype: str
    shape: tuple[int, ...] = ()

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, d: Any, where: str) -> "FieldSpec":
        _require(isinstance(d, dict), where, f"a field must be an object, got {d!r}")
        try:
            shape = tuple(int(s) for s in d["shape"])
            return cls(name=str(d["name"]), dtype=str(d["dtype"]), shape=shape)
        except (KeyError, TypeError, ValueError):
            raise PartitionError(f"{where}: malformed field {d!r} (needs name, dtype, shape)") from None


@dataclass(frozen=True)
class PartInfo:
    """Part ``part`` owns new ids ``[node_start, node_end)`` and stores ``num_edges`` edges."""

    part: int
    path: str
    node_start: int
    node_end: int
    num_edges: int
    num_halo: int
    num_halo_edges: int = 0

    @property
    def num_nodes(self) -> int:
        return self.node_end - self.node_start


@dataclass(frozen=True)
class FileInfo:
    """A file's sha256 (hex), size in bytes and number of rows."""

    sha256: str
    bytes: int
    rows: int


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.json`` (fields as in the module docstring)."""

    name: str
    num_nodes: int
    num_edges: int
    num_parts: int
    method: str
    balance: str
    seed: int
    halo_hops: int
    row_group_size: int
    parts: tuple[PartInfo, ...]
    node_fields: tuple[FieldSpec, ...]
    edge_fields: tuple[FieldSpec, ...]
    quality: dict
    files: dict = field(default_factory=dict)  # relative path -> FileInfo
    transforms: tuple[str, ...] = ()  # feature transforms applied before partitioning
    link_split: dict | None = None  # the edge split for link prediction (None: no split)
    schema_version: int = SCHEMA_VERSION
    format: str = FORMAT_NAME
    created_by: str = "distgnn.partition"

    @property
    def node_ranges(self) -> list[tuple[int, int]]:
        return [(p.node_start, p.node_end) for p in self.parts]

    def node_field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.node_fields if f.name == name), None)

    def edge_field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.edge_fields if f.name == name), None)

    def to_json(self) -> str:
        d = {
            "format": self.format,
            "schema_version": self.schema_version,
            "name": self.name,
            "num_nodes": self.num_nodes,
            "num_edges": self.num_edges,
            "num_parts": self.num_parts,
            "method": self.method,
            "balance": self.balance,
            "seed": self.seed,
            "halo_hops": self.halo_hops,
            "row_group_size": self.row_group_size,
            "parts": [asdict(p) for p in self.parts],
            "node_fields": [f.to_json() for f in self.node_fields],
            "edge_fields": [f.to_json() for f in self.edge_fields],
            "quality": self.quality,
            "transforms": list(self.transforms),
            **({"link_split": self.link_split} if self.link_split is not None else {}),
            "files": {k: asdict(v) for k, v in self.files.items()},
            "created_by": self.created_by,
        }
        return json.dumps(d, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, where: str = MANIFEST) -> "Manifest":
        """Parse and check a manifest; raise :class:`PartitionError` naming ``where`` if malformed."""
        try:
            d = json.loads(text)
        except (ValueError, UnicodeDecodeError) as err:
            raise PartitionError(f"{where}: not valid JSON ({err})") from None
        _require(isinstance(d, dict), where, "must hold a JSON object")
        _require(d.get("format") == FORMAT_NAME, where,
                 f"not a distgnn partition manifest (format={d.get('format')!r})")
        version = d.get("schema_version")
        _require(
            version == SCHEMA_VERSION, where,
            f"schema_version {version!r} is not supported (this distgnn reads version {SCHEMA_VERSION})",
        )
        ints = ("num_nodes", "num_edges", "num_parts", "seed", "halo_hops", "row_group_size")
        for key in ints:
            _require(isinstance(d.get(key), int) and not isinstance(d.get(key), bool), where,
                     f"{key} must be an integer, got {d.get(key)!r}")
        for key in ("num_nodes", "num_edges", "num_parts", "halo_hops"):
            _require(d[key] >= 0, where, f"{key} must be >= 0, got {d[key]}")
        try:
            parts = tuple(PartInfo(**p) for p in d["parts"])
            files = {str(k): FileInfo(**v) for k, v in d["files"].items()}
            node_fields = tuple(FieldSpec.from_json(f, where) for f in d["node_fields"])
            edge_fields = tuple(FieldSpec.from_json(f, where) for f in d["edge_fields"])
        except (KeyError, TypeError, AttributeError) as err:
            raise PartitionError(f"{where}: malformed parts/files/fields ({err})") from None
        _require(len(parts) == d["num_parts"], where,
                 f"num_parts={d['num_parts']} but {len(parts)} parts are listed")
        transforms = d.get("transforms", [])  # absent in manifests written before it was recorded
        _require(isinstance(transforms, list) and all(isinstance(t, str) and t for t in transforms), where,
                 f"transforms must be a list of transform names, got {transforms!r}")
        link_split = d.get("link_split")  # absent: no edge split (and older manifests)
        if link_split is not None:
            _check_link_split(link_split, where)
        return cls(
            name=str(d.get("name", "graph")), num_nodes=d["num_nodes"], num_edges=d["num_edges"],
            num_parts=d["num_parts"], method=str(d.get("method")), balance=str(d.get("balance")),
            seed=d["seed"], halo_hops=d["halo_hops"], row_group_size=d["row_group_size"],
            parts=parts, node_fields=node_fields, edge_fields=edge_fields,
            quality=dict(d.get("quality") or {}), files=files, transforms=tuple(transforms), link_split=link_split,
            schema_version=version,
            created_by=str(d.get("created_by", "")),
        )


LINK_SPLIT_SOURCES = ("hash", "column")


def _check_link_split(ls: Any, where: str) -> None:
    _require(isinstance(ls, dict), where, f"link_split must be an object, got {ls!r}")
    fr = ls.get("fractions")
    _require(isinstance(fr, list) and len(fr) == 3 and all(isinstance(v, (int, float)) for v in fr), where,
             f"link_split.fractions must be three numbers, got {fr!r}")
    for key in ("seed", "eval_negatives"):
        v = ls.get(key)
        _require(isinstance(v, int) and not isinstance(v, bool) and v >= 0, where,
                 f"link_split.{key} must be an integer >= 0, got {v!r}")
    _require(ls.get("source") in LINK_SPLIT_SOURCES, where,
             f"link_split.source must be one of {', '.join(LINK_SPLIT_SOURCES)}, got {ls.get('source')!r}")
    counts = ls.get("counts")
    _require(isinstance(counts, dict) and all(isinstance(counts.get(k), int) for k in ("train", "val", "test")),
             where, f"link_split.counts must hold integer train, val and test counts, got {counts!r}")


def _require(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise PartitionError(f"{where}: {message}")


# --------------------------------------------------------------------------- Arrow schemas
def arrow_type(spec: FieldSpec):
    """The Arrow type of a column described by ``spec`` (a fixed-size list for vector rows)."""
    import pyarrow as pa

    base = pa.from_numpy_dtype(spec.dtype)
    if not spec.shape:
        return base
    if len(spec.shape) != 1:
        raise PartitionError(f"field {spec.name!r}: only scalar or vector rows are stored, got shape {spec.shape}")
    return pa.list_(base, spec.shape[0])


def nodes_schema(fields: tuple[FieldSpec, ...]):
    import pyarrow as pa

    cols = [pa.field("id", pa.int64(), nullable=False)]
    cols += [pa.field(f.name, arrow_type(f), nullable=False) for f in fields]
    cols += [pa.field("in_degree", pa.int64(), nullable=False), pa.field("out_degree", pa.int64(), nullable=False)]
    return pa.schema(cols)


def edges_schema(fields: tuple[FieldSpec, ...]):
    import pyarrow as pa

    cols = [pa.field(c, pa.int64(), nullable=False) for c in ("src", "dst", "eid")]
    cols += [pa.field(f.name, arrow_type(f), nullable=False) for f in fields]
    return pa.schema(cols)


def halo_schema():
    import pyarrow as pa

    return pa.schema([
        pa.field("id", pa.int64(), nullable=False),
        pa.field("owner", pa.int32(), nullable=False),
        pa.field("hop", pa.int32(), nullable=False),
    ])


def nodes_map_schema():
    import pyarrow as pa

    return pa.schema([
        pa.field("id", pa.int64(), nullable=False),
        pa.field("new_id", pa.int64(), nullable=False),
        pa.field("part", pa.int32(), nullable=False),
    ])


def link_edges_schema():
    import pyarrow as pa

    return pa.schema([
        pa.field("src", pa.int64(), nullable=False),
        pa.field("dst", pa.int64(), nullable=False),
        pa.field("split", pa.int8(), nullable=False),
        pa.field("label", pa.int8(), nullable=False),
        pa.field("query", pa.int64(), nullable=False),
    ])
