"""Partitioner benchmark: the raw METIS k-way call vs the whole ``distgnn.partition`` pipeline.

    python benchmarks/partition.py [--sizes 1M,10M,50M] [--parts 8] [--stream-sizes 25M,50M,100M]

Part 1, on R-MAT graphs (``distgnn.data.rmat``, a=0.57 b=0.19 c=0.19, ``N = 2^round(log2(E/16))``
nodes) saved as ``.npz``, side by side for each size:

* ``raw metis``: ``pymetis.part_graph(K, CSRAdjacency(xadj, adjncy), recursive=False)`` on the
  symmetric simple graph; the time is the call alone (loading and building the CSR are listed
  apart);
* ``pipeline metis``: ``python -m distgnn.partition in.npz --method metis --balance none`` as a whole
  (read the .npz, build the CSR, METIS, relabel, split edges, halo, write and checksum the
  shards), same seed, so the same partition: its cut must equal the raw call's;
* ``pipeline metis --balance edges`` (two-constraint METIS; sizes up to 10M edges by default),
  ``stream`` (one pass, node balance), ``stream --balance edges`` and ``random``.

Each run is a fresh subprocess; repetitions (``--repeat``, for sizes up to ``--repeat-max``)
interleave the variants and the fastest is reported; peak memory is the subprocess's ``VmHWM``;
modules are imported before the clock starts. Columns: wall time (and, for the pipeline, the
METIS call inside it and the rest), the ratio to the raw METIS call in its own process, the
ratio to the METIS call inside the same process (immune to the machine's speed drifting between
processes: on this shared 2-core machine the same call took 146 s in one run and 304 s in another), peak
RSS (and per edge), the directed edge cut (fraction of edges whose ends are owned by different
parts), METIS's objective (undirected simple graph), and the largest/mean stored edges and nodes
per part.

Part 2, streaming under a memory limit: R-MAT edge lists of growing size (fixed ``N``) are
generated chunk by chunk straight to Parquet, then partitioned with ``--method stream`` (one pass,
and restreamed with ``--passes 4``; and with ``random`` through the streaming reader) in a process
whose address space is capped with ``RLIMIT_AS`` below what the edge list alone takes in memory;
loading the edge list under the same cap is shown to fail. Peak RSS stays flat as the edge count
grows. ``--stream-runs stream`` picks runs; ``--verify`` runs ``verify`` (every checksum and
invariant) on each output under the same cap. The 1B-edge case::

    python benchmarks/partition.py --sizes "" --stream-sizes 1G --stream-nodes 67108864 --parts 16 \
        --stream-runs stream --verify --memory-limit 8192
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------- children
def _status() -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, value = line.split(":", 1)
            if key in ("VmHWM", "VmPeak", "VmRSS"):
                out[key] = int(value.split()[0]) / 1024.0  # MiB
    return out


def _quality(src, dst, part, k):
    import numpy as np

    cut = float((part[src] != part[dst]).mean()) if len(src) else 0.0
    edges = np.bincount(part[dst], minlength=k)
    nodes = np.bincount(part, minlength=k)
    return {"edge_cut_fraction": cut, "edge_balance": float(edges.max() / edges.mean()),
            "node_balance": float(nodes.max() / nodes.mean())}


def child_gen_npz(a: dict) -> dict:
    sys.path.insert(0, str(ROOT))
    from distgnn.data import rmat, save_numpy

    t = time.perf_counter()
    g = rmat(num_nodes=a["nodes"], num_edges=a["edges"], seed=a["seed"])
    save_numpy(g, a["path"])
    return {"wall": time.perf_counter() - t, "nodes": g.num_nodes, "edges": g.num_edges}


def child_raw_metis(a: dict) -> dict:
    import numpy as np
    import pymetis

    t = time.perf_counter()
    with np.load(a["path"]) as z:
        ei, n = z["edge_index"], int(z["num_nodes"])
    src, dst = ei[0], ei[1]
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    keep = src != dst
    keys = np.concatenate([src[keep] * n + dst[keep], dst[keep] * n + src[keep]])
    keys.sort()
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    xadj = np.searchsorted(keys, np.arange(n + 1, dtype=np.int64) * n).astype(np.int64)
    adjncy = keys % n
    del keys, keep
    csr_s = time.perf_counter() - t
    opts = pymetis.Options()
    opts.seed = a["seed"]
    t = time.perf_counter()
    res = pymetis.part_graph(a["parts"], pymetis.CSRAdjacency(xadj, adjncy), recursive=False, options=opts)
    call_s = time.perf_counter() - t
    part = np.asarray(res.vertex_part)
    out = {"wall": call_s, "load_s": load_s, "csr_s": csr_s, "metis_objective": int(res.edge_cuts)}
    out.update(_quality(src, dst, part, a["parts"]))
    out.update(_status())
    return out


def child_pipeline(a: dict) -> dict:
    sys.path.insert(0, str(ROOT))
    from distgnn.partition import _metis, load_manifest
    from distgnn.partition.cli import main

    metis_s = [0.0]
    inner = _metis.part_kway

    def timed(*args, **kw):
        t = time.perf_counter()
        try:
            return inner(*args, **kw)
        finally:
            metis_s[0] += time.perf_counter() - t

    _metis.part_kway = timed
    import distgnn.partition.methods as methods

    methods.part_kway = timed
    if a.get("limit_mib"):
        lim = int(a["limit_mib"] * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    # import what the pipeline imports lazily, so the clock sees only the work (as for raw METIS)
    import pyarrow.csv  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import distgnn.data  # noqa: F401
    import distgnn.partition.inputs  # noqa: F401
    t = time.perf_counter()
    if a.get("api_random_stream"):  # random through the streaming Parquet reader (no loader)
        from distgnn.partition import parquet_input, partition

        partition(parquet_input(a["input"]), a["parts"], a["out"], method="random", balance="none",
                  overwrite=True, chunk_rows=a.get("chunk_rows", 1 << 22))
        rc = 0
    else:
        rc = main(a["argv"])
    wall = time.perf_counter() - t
    if rc != 0:
        return {"error": f"exit code {rc}"}
    m = load_manifest(a["out"])
    out = {"wall": wall, "metis_s": metis_s[0], **m.quality}
    out.update(_status())
    return out


def child_gen_parquet(a: dict) -> dict:
    """R-MAT edges drawn chunk by chunk straight into a Parquet file (never whole in memory)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = time.perf_counter()
    scale = int(math.log2(a["nodes"]))
    rng = np.random.default_rng(a["seed"])
    ta, tab, tabc = 0.57, 0.76, 0.95
    chunk = 1 << 22
    schema = pa.schema([("src", pa.int64()), ("dst", pa.int64())])
    with pq.ParquetWriter(a["path"], schema, compression="zstd") as w:
        for start in range(0, a["edges"], chunk):
            m = min(chunk, a["edges"] - start)
            src = np.zeros(m, dtype=np.int64)
            dst = np.zeros(m, dtype=np.int64)
            for _ in range(scale):
                r = rng.random(m, dtype=np.float32)
                sb = r >= tab
                db = (r >= ta) ^ sb ^ (r >= tabc)
                src = (src << 1) | sb
                dst = (dst << 1) | db
            w.write_table(pa.table({"src": src, "dst": dst}, schema=schema), row_group_size=1 << 20)
    return {"wall": time.perf_counter() - t, "bytes": os.path.getsize(a["path"]), **_status()}


def child_load_limited(a: dict) -> dict:
    """Try to hold the whole edge list in memory (as the in-memory loaders must) under the cap."""
    lim = int(a["limit_mib"] * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    import numpy as np
    import pyarrow.parquet as pq

    try:
        t = pq.read_table(a["path"])
        src, dst = t.column("src").to_numpy(), t.column("dst").to_numpy()
        ei = np.stack([src, dst])
        return {"ok": True, "bytes": int(ei.nbytes), **_status()}
    except MemoryError:
        return {"ok": False, "error": "MemoryError", **_status()}
    except Exception as err:  # pyarrow raises its own out-of-memory error
        return {"ok": False, "error": type(err).__name__ + ": " + str(err).splitlines()[0][:80], **_status()}


def child_verify(a: dict) -> dict:
    """``python -m distgnn.partition verify`` (every checksum, schema, id range, edge and halo) under the cap."""
    sys.path.insert(0, str(ROOT))
    if a.get("limit_mib"):
        lim = int(a["limit_mib"] * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    from distgnn.partition import verify

    t = time.perf_counter()
    report = verify(a["out"])
    return {"wall": time.perf_counter() - t, "report": str(report).splitlines()[0][:120], **_status()}


CHILDREN = {f.__name__[len("child_"):]: f for f in
            (child_gen_npz, child_raw_metis, child_pipeline, child_gen_parquet, child_load_limited, child_verify)}


def run_child(kind: str, args: dict, timeout: float = 3600) -> dict:
    cmd = [sys.executable, __file__, "_child", kind, json.dumps(args)]
    # the system allocator and two malloc arenas keep reserved-but-unused address space small, so
    # an RLIMIT_AS cap measures what is really used (pyarrow's jemalloc reserves generously)
    env = dict(os.environ, PYTHONPATH=str(ROOT), MALLOC_ARENA_MAX="2", ARROW_DEFAULT_MEMORY_POOL="system")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        tail = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"rc={res.returncode}: {tail}"}
    return json.loads(lines[-1])


# ----------------------------------------------------------------------------------- driver
def parse_size(s: str) -> int:
    s = s.strip().upper()
    mult = {"K": 10**3, "M": 10**6, "G": 10**9}.get(s[-1], 1)
    return int(float(s[:-1] if s[-1] in "KMG" else s) * mult)


def fmt_size(e: int) -> str:
    return f"{e / 1e6:g}M" if e >= 10**6 else f"{e / 1e3:g}K"


def table(rows: list[list], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def comparison(sizes: list[int], parts: int, work: Path, balance_edges_max: int, seed: int,
               repeat: int, repeat_max: int) -> str:
    rows = []
    for e in sizes:
        n = 2 ** max(8, round(math.log2(e / 16)))
        path = work / f"rmat-{fmt_size(e)}.npz"
        if not path.exists():
            g = run_child("gen_npz", {"nodes": n, "edges": e, "seed": seed, "path": str(path)})
            print(f"[gen] R-MAT {fmt_size(e)} edges, {n} nodes: {g}", file=sys.stderr, flush=True)
        out = work / f"out-{fmt_size(e)}"
        base = [str(path), "--parts", str(parts), "--out", str(out), "--overwrite", "-q", "--seed", "0"]
        variants = [("raw metis (call only)", "raw_metis", {"path": str(path), "parts": parts, "seed": 0}),
                    ("pipeline metis", "pipeline", {"argv": base + ["--method", "metis", "--balance", "none"]})]
        if e <= balance_edges_max:
            variants.append(("pipeline metis --balance edges", "pipeline",
                             {"argv": base + ["--method", "metis", "--balance", "edges"]}))
        variants += [
            ("pipeline stream", "pipeline", {"argv": base + ["--method", "stream", "--balance", "none"]}),
            ("pipeline stream --balance edges", "pipeline",
             {"argv": base + ["--method", "stream", "--balance", "edges"]}),
            ("pipeline random", "pipeline", {"argv": base + ["--method", "random", "--balance", "none"]}),
        ]
        # repetitions interleave the variants, so a drift in machine speed hits them all alike
        results: dict[str, list[dict]] = {label: [] for label, _, _ in variants}
        for _ in range(repeat if e <= repeat_max else 1):
            for label, kind, args in variants:
                r = run_child(kind, dict(args, out=str(out)))
                print(f"[{label} {fmt_size(e)}] {r}", file=sys.stderr, flush=True)
                results[label].append(r)
        best = {label: min(rs, key=lambda r: r.get("wall", float("inf"))) for label, rs in results.items()}
        raw = best["raw metis (call only)"]
        for label, _, _ in variants:
            r = best[label]
            if "error" in r:
                rows.append([fmt_size(e), label, "error", r["error"][:60], "", "", "", "", "", "", ""])
                continue
            ratio = r["wall"] / raw["wall"] if "wall" in raw else float("nan")
            obj = r.get("metis_objective", "")
            breakdown, own = "", ""
            if label.startswith("raw"):
                breakdown = f"(+load {r['load_s']:.1f} s, csr {r['csr_s']:.1f} s)"
                own = "1.00x"
            elif r.get("metis_s"):
                breakdown = f"(metis {r['metis_s']:.1f} s, rest {r['wall'] - r['metis_s']:.1f} s)"
                own = f"{r['wall'] / r['metis_s']:.2f}x"
            rows.append([
                fmt_size(e), label, f"{r['wall']:.1f}", breakdown, f"{ratio:.2f}x", own,
                f"{r['VmHWM']:,.0f}", f"{r['VmHWM'] * 2**20 / e:.0f}",
                f"{r['edge_cut_fraction']:.4f}", f"{obj:,}" if obj != "" else "",
                f"{r['edge_balance']:.3f} / {r['node_balance']:.3f}",
            ])
    header = ["edges", "run", "wall s", "breakdown", "vs raw", "vs own metis", "peak MiB", "B/edge", "edge cut",
              "METIS obj", "edge/node bal"]
    return table(rows, header)


STREAM_RUNS = ("stream", "stream4", "random")


def stream_demo(sizes: list[int], parts: int, work: Path, nodes: int, limit_mib: float, seed: int,
                runs: tuple[str, ...] = STREAM_RUNS, check: bool = False) -> str:
    rows = []
    for e in sizes:
        path = work / f"stream-rmat-{fmt_size(e)}.parquet"
        if not path.exists():
            g = run_child("gen_parquet", {"nodes": nodes, "edges": e, "seed": seed, "path": str(path)})
            print(f"[gen parquet {fmt_size(e)}] {g}", file=sys.stderr, flush=True)
        load = run_child("load_limited", {"path": str(path), "limit_mib": limit_mib})
        print(f"[load under {limit_mib:.0f} MiB] {load}", file=sys.stderr, flush=True)
        out = work / f"stream-out-{fmt_size(e)}"
        argv = [str(path), "--method", "stream", "--parts", str(parts), "--out", str(out), "--overwrite", "-q",
                "--balance", "none", "--chunk-rows", str(1 << 20)]
        done = []
        for run in runs:
            if run == "random":
                r = run_child("pipeline", {"api_random_stream": True, "input": str(path), "parts": parts,
                                           "out": str(out), "limit_mib": limit_mib, "chunk_rows": 1 << 20})
            else:
                extra = ["--passes", "4"] if run == "stream4" else []
                r = run_child("pipeline", {"argv": argv + extra, "out": str(out), "limit_mib": limit_mib})
            label = {"stream4": "stream --passes 4"}.get(run, run)
            print(f"[{label} {fmt_size(e)}] {r}", file=sys.stderr, flush=True)
            done.append((label, r))
            if check and "error" not in r:
                v = run_child("verify", {"out": str(out), "limit_mib": limit_mib})
                print(f"[verify after {label} {fmt_size(e)}] {v}", file=sys.stderr, flush=True)
                done.append((f"  verify ({v.get('report', v.get('error', '?'))[:40]})", v))
        edge_list_mib = 16 * e / 2**20
        loaded = "fits" if load.get("ok") else f"fails ({load.get('error', '?')[:40]})"
        for label, r in done:
            if "error" in r:
                rows.append([fmt_size(e), f"{edge_list_mib:,.0f}", loaded, label, "error", r["error"][:60], "", "", ""])
                continue
            rows.append([fmt_size(e), f"{edge_list_mib:,.0f}", loaded, label, f"{r['wall']:.1f}",
                         f"{r['VmHWM']:,.0f}", f"{r['VmPeak']:,.0f}", f"{r.get('edge_cut_fraction', math.nan):.4f}",
                         f"{r.get('edge_balance', math.nan):.3f} / {r.get('node_balance', math.nan):.3f}"])
    header = ["edges", "edge list MiB", f"load under {limit_mib:.0f} MiB cap", "run", "wall s", "peak RSS MiB",
              "peak VM MiB", "edge cut", "edge/node bal"]
    return table(rows, header)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        print(json.dumps(CHILDREN[argv[1]](json.loads(argv[2]))), flush=True)
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1M,10M,50M", help="R-MAT edge counts for part 1 (default: 1M,10M,50M)")
    p.add_argument("--parts", type=int, default=8)
    p.add_argument("--balance-edges-max", default="10M",
                   help="largest size that also runs two-constraint METIS (default: 10M)")
    p.add_argument("--stream-sizes", default="25M,50M,100M",
                   help="edge counts for part 2, the streaming demo ('' to skip; default: 25M,50M,100M)")
    p.add_argument("--stream-nodes", type=int, default=2**20, help="nodes of the part-2 graphs (default: 2^20)")
    p.add_argument("--memory-limit", default="1536", help="RLIMIT_AS cap for part 2, MiB (default: 1536)")
    p.add_argument("--stream-runs", default=",".join(STREAM_RUNS),
                   help=f"part-2 runs, comma-separated from {','.join(STREAM_RUNS)} (default: all)")
    p.add_argument("--verify", action="store_true", help="part 2: run `verify` on each output, under the same cap")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs per measurement, the fastest reported (default: 3), for sizes up to --repeat-max")
    p.add_argument("--repeat-max", default="10M", help="larger sizes run once (default: 10M)")
    p.add_argument("--workdir", help="where inputs and outputs go (default: a temporary directory)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="distgnn-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# distgnn.partition benchmark ({os.cpu_count()} cores), K={args.parts}, workdir {work}\n")
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    if sizes:
        print("## 1. raw METIS k-way vs the distgnn.partition pipeline (R-MAT)\n")
        print(comparison(sizes, args.parts, work, parse_size(args.balance_edges_max), args.seed, args.repeat,
                         parse_size(args.repeat_max)), flush=True)
    stream_sizes = [parse_size(s) for s in args.stream_sizes.split(",") if s.strip()]
    if stream_sizes:
        print(f"\n## 2. stream from Parquet under RLIMIT_AS = {args.memory_limit} MiB "
              f"(R-MAT, {args.stream_nodes} nodes)\n")
        runs = tuple(r.strip() for r in args.stream_runs.split(",") if r.strip())
        unknown = sorted(set(runs) - set(STREAM_RUNS))
        if unknown:
            p.error(f"--stream-runs: unknown {', '.join(unknown)} (choose from {', '.join(STREAM_RUNS)})")
        print(stream_demo(stream_sizes, args.parts, work, args.stream_nodes, float(args.memory_limit), args.seed,
                          runs, args.verify))
    return 0


if __name__ == "__main__":
    sys.exit(main())
