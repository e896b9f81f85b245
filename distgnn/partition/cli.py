"""``python -m distgnn.partition``: cut a graph into halo-aware Parquet shards, or verify them.

``main(argv=None) -> int`` is the whole CLI (tests call it with a list); ``__main__`` calls it.
Exit codes: 0 success, 1 ``verify`` found a broken invariant, 2 bad input or arguments, 130 Ctrl-C.
"""
from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import time

from ..data.dataset import DataError, GraphData
from ..data.transforms import TRANSFORMS, apply_transform, default_transform
from .errors import PartitionError, VerifyError
from .format import BALANCES, METHODS, Manifest
from .progress import no_progress

_DESCRIPTION = """\
Cut a graph into K parts and write one folder of Parquet shards per part, plus a manifest:
each part owns a contiguous range of (relabelled) node ids and stores its nodes' features,
labels, masks and whole-graph degrees, every edge pointing INTO its nodes, and its "halo" (the
nodes those edges come from that other parts own). Run this once per graph; every distributed
worker then loads just its own part. The format is described in distgnn/partition/format.py.
"""

_EPILOG = """\
INPUT is one of:
  planetoid:cora                        a Planetoid dataset (cora, citeseer, pubmed)
  sbm:num_nodes=100000,avg_degree=10    a stochastic block model (distgnn.data.sbm arguments)
  rmat:num_nodes=1048576,num_edges=1e7  an R-MAT graph (distgnn.data.rmat arguments)
  ogb:dataset/ogbn_products             an OGB node-property download, read offline (,split=S)
  synthetic:products,scale=0.1          an ogbn-products-sized twin (power-law sbm), scaled
  graph.npz                             arrays edge_index, num_nodes, x, y, *_mask, edge_attr
  edges.parquet | edges.csv             an edge list with src,dst columns (--nodes for a node table);
                                        with --method stream a Parquet edge list is read in chunks
                                        and never held in memory whole
  DIR                                   an existing distgnn partition (re-partition it), or a DGL
                                        partition_graph output (needs dgl installed)

methods:
  metis   best cut: METIS k-way on the whole graph in memory (multi-constraint with --balance)
  stream  one pass over the edges in chunks (Fennel); memory grows with nodes, not edges
  random  seeded random assignment (a baseline: worst cut, perfect balance)
  range   contiguous blocks of node ids (good when ids already follow locality)

examples:
  python -m distgnn.partition planetoid:cora --parts 4 --out cora-4
  python -m distgnn.partition edges.parquet --nodes nodes.parquet --parts 8 --out g8 --balance train
  python -m distgnn.partition big-edges.parquet --method stream --parts 16 --out big16
  python -m distgnn.partition planetoid:cora --parts 2 --out cora-links --edge-split 0.85,0.05,0.10
  python -m distgnn.partition verify cora-4
"""

log = logging.getLogger("distgnn.partition")


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m distgnn.partition", description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="the graph to partition (see below)")
    p.add_argument("--parts", "-k", type=int, required=True, metavar="K", help="number of parts (one per worker)")
    p.add_argument("--out", "-o", required=True, metavar="DIR",
                   help="output directory: a local path or a pyarrow URI such as s3://bucket/prefix")
    p.add_argument("--method", choices=METHODS, default="metis", help="how to cut (default: metis)")
    p.add_argument("--halo-hops", type=int, default=1, metavar="H",
                   help="halo rings to store: 1 for full-graph training; more lets a sampler expand "
                        "H hops without asking other parts (default: 1)")
    p.add_argument("--balance", choices=BALANCES, default="edges",
                   help="what to balance besides node counts (metis and range; default: edges)")
    p.add_argument("--seed", type=int, default=0, help="random seed for metis, random and stream (default: 0)")
    p.add_argument("--passes", type=int, default=1, metavar="P",
                   help="stream only: read the edges P times, re-deciding every node each time after the "
                        "first; a lower cut for P - 1 more reads (default: 1, one pass)")
    p.add_argument("--undirected", action="store_true", help="add the reverse of every edge that lacks one")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing partition at --out (atomically; never a directory without a "
                        "distgnn manifest.json, nor one that holds the input)")
    p.add_argument("--name", help="graph name recorded in the manifest (default: from INPUT)")
    p.add_argument("--transform", choices=TRANSFORMS, default=None,
                   help="node feature transform, recorded in the manifest (default: row-normalize for "
                        "planetoid:NAME, as python -m distgnn.train does, but none with --edge-split, as "
                        "train's link prediction; none otherwise)")
    g = p.add_argument_group("edge-list tables")
    g.add_argument("--nodes", metavar="FILE", help="node table (.parquet/.csv): id, features, label, masks")
    g.add_argument("--src", default="src", help="source id column (default: src)")
    g.add_argument("--dst", default="dst", help="target id column (default: dst)")
    g.add_argument("--node-id", default="id", help="node id column of --nodes (default: id)")
    g.add_argument("--features", metavar="COL[,COL...]",
                   help="node features: one list column, or several scalar columns (default: feat_*/x_*)")
    g.add_argument("--label", default="label", help="label column of --nodes (default: label)")
    g.add_argument("--edge-features", metavar="COL[,COL...]", help="edge feature column(s) (default: feat_*/x_*)")
    g.add_argument("--num-nodes", type=int, metavar="N", help="number of nodes without --nodes (default: max id + 1)")
    ls = p.add_argument_group("edge split (link prediction)")
    ls.add_argument("--edge-split", metavar="TRAIN,VAL,TEST",
                    help="split the edges for link prediction, e.g. 0.85,0.05,0.10: validation/test edges leave "
                         "the graph and are stored per part with fixed negatives (link_edges.parquet); both "
                         "directions of a pair share one split (default: a Parquet edge table's 'split' column "
                         "of train/val/test or 0/1/2 when it has one, else no split)")
    ls.add_argument("--eval-negatives", type=int, default=1, metavar="K",
                    help="with --edge-split: fixed negative edges per validation/test edge (default: 1)")
    ls.add_argument("--split-seed", type=int, default=0, metavar="S",
                    help="with --edge-split: seed of the split and its negatives (default: 0)")
    t = p.add_argument_group("tuning")
    t.add_argument("--chunk-rows", type=int, default=1 << 22, metavar="ROWS",
                   help="edges processed per vectorised chunk (default: 4194304)")
    t.add_argument("--row-group-size", type=int, default=1 << 20, metavar="ROWS",
                   help="Parquet row-group size (default: 1048576)")
    o = p.add_argument_group("output")
    o.add_argument("-v", "--verbose", action="store_true", help="log each stage")
    o.add_argument("-q", "--quiet", action="store_true", help="no progress bars and no summary")
    return p


def _verify_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m distgnn.partition verify",
        description="Check that a partition directory is complete and consistent: checksums, every node "
                    "owned once, every edge stored once at its target's owner, halos, degrees, counts.",
    )
    p.add_argument("dir", metavar="DIR", help="the partition directory (local path or pyarrow URI)")
    p.add_argument("--no-checksums", action="store_true", help="skip the sha256 of every file (faster)")
    p.add_argument("-v", "--verbose", action="store_true", help="log each stage")
    return p


def _columns(value: str | None):
    if value is None:
        return None
    return value.split(",") if "," in value else value


def _tqdm_progress(stage: str, total: int | None = None, unit: str = "edges"):
    """A bar per stage on a terminal; without one, a line every 30 s and one when a stage of a second or
    more ends (:mod:`distgnn.progress`), so a batch job's log shows the run alive."""
    from ..progress import stage_progress

    return stage_progress(stage, total=total, unit=unit)


def _peak_memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


class _Logging:
    """Route distgnn's log records to stderr while the CLI runs (and undo it after)."""

    def __init__(self, verbose: bool) -> None:
        self.level = logging.INFO if verbose else logging.WARNING
        self.logger = logging.getLogger("distgnn")

    def __enter__(self):
        self.handler = logging.StreamHandler(sys.stderr)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
        self.old_level = self.logger.level
        self.logger.addHandler(self.handler)
        self.logger.setLevel(self.level)
        return self

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.old_level)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "verify":
        return _verify_main(argv[1:])
    args = _build_parser().parse_args(argv)
    progress = no_progress if args.quiet else _tqdm_progress
    with _Logging(args.verbose):
        try:
            started = time.perf_counter()
            manifest = _run(args, progress)
            elapsed = time.perf_counter() - started
        except (DataError, PartitionError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except OSError as err:
            where = f"{err.filename}: " if getattr(err, "filename", None) else ""
            print(f"error: {where}{err.strerror or err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("error: interrupted; nothing was written", file=sys.stderr)
            return 130
    if not args.quiet:
        print(summary(manifest, args.out, elapsed, _peak_memory_mib()))
    return 0


def _run(args: argparse.Namespace, progress) -> Manifest:
    from .inputs import open_input
    from .methods import StreamPartitioner
    from .pipeline import partition
    from .storage import AtomicOutput, open_fs

    if args.passes != 1 and args.method != "stream":
        raise PartitionError(f"--passes applies to --method stream only (got --method {args.method})")
    # refuse an existing output (or one that holds the input) before reading a possibly huge input
    inputs = tuple(p for p in (args.input, args.nodes) if p and "://" not in p and os.path.exists(p))
    fs, root = open_fs(args.out)
    AtomicOutput(fs, root, overwrite=args.overwrite, inputs=inputs)
    bar = progress("read", total=None, unit="files")
    data = open_input(
        args.input, nodes=args.nodes, src=args.src, dst=args.dst, node_id=args.node_id,
        features=_columns(args.features), label=args.label, edge_features=_columns(args.edge_features),
        num_nodes=args.num_nodes, undirected=args.undirected, stream=args.method == "stream",
    )
    bar.close()
    # an edge split is for link prediction, whose default features are the raw ones (as in train)
    transform = args.transform or ("none" if args.edge_split is not None else default_transform(args.input))
    if isinstance(data, GraphData):
        data = apply_transform(data, transform)
    elif transform != "none":
        raise PartitionError(f"{args.input}: --transform {transform} needs node features, and a streamed edge list has none")
    n = data.num_nodes
    if args.parts > n:
        raise PartitionError(f"{args.input}: cannot cut {n} nodes into {args.parts} parts (more parts than nodes)")
    if args.balance == "train" and data.train_mask is None:
        raise PartitionError(f"{args.input}: --balance train needs a train mask, and this graph has none "
                             "(add a train_mask column to --nodes, or use --balance edges|none)")
    method = StreamPartitioner(passes=args.passes) if args.method == "stream" else args.method
    edge_split = _edge_split(args)
    split_column = None
    if edge_split is None:
        from .inputs import read_split_column

        split_column = read_split_column(args.input)
        if split_column is not None:
            if args.undirected:
                raise PartitionError(f"{args.input}: --undirected adds reverse edges that have no split; list both "
                                     "directions in the table with their split, or drop the split column")
            log.info("%s: using its split column for link prediction", args.input)
    return partition(
        data, args.parts, args.out, method=method, halo_hops=args.halo_hops, balance=args.balance,
        seed=args.seed, overwrite=args.overwrite, name=args.name, row_group_size=args.row_group_size,
        chunk_rows=args.chunk_rows, progress=progress, inputs=inputs,
        edge_split=edge_split, split_seed=args.split_seed, eval_negatives=args.eval_negatives,
        split_column=split_column,
    )


def _has_split_column(spec: str) -> bool:
    if os.path.splitext(spec)[1].lower() not in (".parquet", ".pq") or not os.path.isfile(spec):
        return False
    import pyarrow.parquet as pq

    try:
        return "split" in pq.read_schema(spec).names
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the reader
        return False


def _edge_split(args: argparse.Namespace):
    """The ``--edge-split`` fractions (``None`` without one); the options that need it refused alone."""
    from ..data.links import parse_edge_split

    if args.edge_split is None:
        given = [o for o, v, d in (("--eval-negatives", args.eval_negatives, 1), ("--split-seed", args.split_seed, 0))
                 if v != d]
        if given and not _has_split_column(args.input):
            raise PartitionError(f"{given[0]} applies with --edge-split (or a split column) only (add --edge-split "
                                 "0.85,0.05,0.10)")
        return None
    try:
        return parse_edge_split(args.edge_split)
    except ValueError as err:
        raise PartitionError(str(err)) from None


def summary(m: Manifest, out: str, elapsed: float, peak_mib: float) -> str:
    """The table the CLI prints at the end."""
    q = m.quality
    lines = [
        f"partitioned {m.name!r} ({m.num_nodes:,} nodes, {m.num_edges:,} edges) into {m.num_parts} parts "
        f"with {m.method} (balance={m.balance}, halo_hops={m.halo_hops}) in {elapsed:.1f} s, "
        f"peak memory {peak_mib:,.0f} MiB",
        f"{'part':>6} {'node range':>23} {'nodes':>12} {'edges':>14} {'halo':>12}",
    ]
    for p in m.parts:
        rng = f"[{p.node_start}, {p.node_end})"
        lines.append(f"{p.part:>6} {rng:>23} {p.num_nodes:>12,} {p.num_edges:>14,} {p.num_halo:>12,}")
    cut = f"edge cut: {q.get('edge_cut', 0):,} edges ({100 * q.get('edge_cut_fraction', 0):.2f}%)"
    if "metis_objective" in q:
        cut += f"; METIS objective {q['metis_objective']:,} (undirected simple graph)"
    lines.append(cut)
    train = q.get("train_balance")
    lines.append(
        f"balance (largest/mean): nodes {q.get('node_balance', 1):.3f}, edges {q.get('edge_balance', 1):.3f}"
        + (f", train {train:.3f}" if train is not None else "")
    )
    if m.link_split is not None:
        c = m.link_split["counts"]
        lines.append(f"edge split {m.link_split['fractions']} (seed {m.link_split['seed']}): {c['train']:,} training "
                     f"edges, {c['val']:,} val and {c['test']:,} test edges with {m.link_split['eval_negatives']} "
                     "negatives each (link_edges.parquet)")
    lines.append(f"wrote {out}  (check it: python -m distgnn.partition verify {out})")
    return "\n".join(lines)


def _verify_main(argv: list[str]) -> int:
    from .verify import verify

    args = _verify_parser().parse_args(argv)
    progress = _tqdm_progress
    with _Logging(args.verbose):
        try:
            report = verify(args.dir, checksums=not args.no_checksums, progress=progress)
        except VerifyError as err:
            print(f"error: verify failed: {err}", file=sys.stderr)
            return 1
        except (DataError, PartitionError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except OSError as err:
            print(f"error: {args.dir}: {err.strerror or err}", file=sys.stderr)
            return 2
    print(report)
    return 0
