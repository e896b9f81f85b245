"""Real scale on one machine: the ogbn-products twin through partition, full-graph and sampled training.

One command prints one table for ``distgnn.data.synthetic.products(scale)`` (2,449,029 nodes,
61.9M directed edges, 100 features, 47 classes at ``--scale 1``). Every stage runs in a process of
its own so its peak memory is its own:

====================  ===========================================================================
row                   what runs
====================  ===========================================================================
generate              ``products(scale)`` written once as ``graph.npz`` (everything) and
                      ``edges.parquet`` (src, dst only)
METIS alone           ``graph.npz`` loaded and cut by the metis method, nothing written: the
                      reference for the metis pipeline's peak memory
partition metis       ``python -m distgnn.partition graph.npz --method metis --parts K``
partition stream      the same with ``--method stream`` (the graph in memory: it has node data)
stream, edges only    ``edges.parquet --method stream``: the edge list streamed in chunks, never
                      held whole (no features: a partition for the memory figure only)
full GCN              ``launch(mode="full", model="gcn", hidden=128, num_layers=2)`` on the
                      metis partition, ``--workers`` workers of one thread; one epoch
sampled SAGE          ``launch(mode="sampled", model="sage", fanouts=(15, 10, 5), num_layers=3,
                      batch_size=1024)``; one epoch (``--max-steps``: only that many steps of it
                      run and the epoch time is extrapolated, as the output says)
bare worker process   a process importing what a worker imports (torch, Ray, pyarrow, distgnn):
                      the fixed memory every worker has before it loads anything
single-process SAGE   the same sampler and model on the whole graph in one process, one thread,
                      ``batch_size / workers`` seeds per step (a worker's share): the reference
                      for a worker's throughput; run twice: alone, and as ``--workers`` copies at
                      once (each then gets the share of the cores a worker gets: on a machine
                      with as many cores as workers, a lone process has the others' idle time
                      too, so only the second is a like-for-like reference)
exact evaluation      the full-graph forward over all nodes after the epoch (launch's evaluation:
                      every node's exact output, the halo exchanged per layer)
====================  ===========================================================================

Columns: wall time; peak RSS of the process (per worker for launch rows: the largest ``VmHWM``
of the worker processes, read from ``/proc`` while they run, Ray's own share included); the edge
cut and the node / edge balance (largest part over the mean) of partitions; halo MB received per
epoch (full-graph), sampled edges/s and seeds/s per worker (sampled). ``part MB``: the in-memory
size of the largest worker's share (features + labels + edges with ids + halo ids), what the
worker target (peak under 1.5x that plus activations) is measured against.

Targets of the issue, printed under the table with the figures they compare: the metis
pipeline's peak within 1.1x of METIS alone; the streamed partition under 2 GiB; a worker's peak
under 1.5x its part plus activations; a worker's sampled seeds/s within 10% of one process.

Usage (the full-size run needs ~11 GiB free; with ``--max-steps 20`` it took 11 minutes here)::

    python benchmarks/scale.py --scale 0.05 --max-steps 10      # a quick check
    python benchmarks/scale.py --scale 1 --max-steps 20         # ogbn-products size

Measured at ``--scale 1 --max-steps 20`` (2 cores, quiet machine; 2.45M nodes, 61.9M edges, 8 parts,
2 workers of one thread):

==========================================  =======  ========  =====  ===================
stage                                       seconds  peak GiB  cut    balance nodes/edges
==========================================  =======  ========  =====  ===================
generate + write                            33       5.00
METIS alone (load + cut)                    74       10.42
partition metis                             90       10.53     18.1%  1.023 / 1.025
partition stream (graph in memory)          25       3.72      78.3%  1.007 / 1.036
stream, edges only (streamed)               23       1.02      78.3%  1.007 / 1.036
full GCN, 1 epoch (per worker)              64       7.02      halo 2672 MB, part 1260 MB
sampled SAGE, 1 epoch (21 of 197 steps)     745 (x)  5.49      129 seeds/s per worker
exact evaluation (all nodes)                33
single-process SAGE (1 / 2 copies at once)           5.36      135 / 134 seeds/s
==========================================  =======  ========  =====  ===================

(x) extrapolated. Targets: metis pipeline 1.01x METIS alone (met); streamed partition 1.02 GiB
(met); sampled seeds/s per worker 0.95x one process alone, 0.96x two copies at once (met); a
full-graph worker 5.48x its part above a bare process, a sampled one 4.23x (over 1.5x: beside the
part, GCN's per-edge structures take ~80 bytes per edge, ~2.5 GiB for a worker's 31.5M edges, and
the activations and their gradients ~3 GiB; the sampled worker holds its sampling topology and two
batches' subgraphs, one training and one prefetched).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from _common import environment, format_table, load_note  # noqa: E402

MiB = 2**20


# -- child processes -----------------------------------------------------------------------------
def run_child(argv: list[str], log: str) -> tuple[float, int, int]:
    """Run ``argv`` (output to ``log``); ``(wall s, peak RSS bytes, exit code)`` of that process alone."""
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": ROOT})
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t0, usage.ru_maxrss * 1024, proc.returncode


def run_children(argvs: list[list[str]], logs: list[str]) -> tuple[float, int, list[int]]:
    """Run several children at once; ``(wall s, largest peak RSS bytes, exit codes)``."""
    t0 = time.perf_counter()
    procs, outs = [], []
    for argv, log in zip(argvs, logs):
        outs.append(open(log, "w"))
        procs.append(subprocess.Popen(argv, stdout=outs[-1], stderr=subprocess.STDOUT, cwd=ROOT,
                                      env={**os.environ, "PYTHONPATH": ROOT}))
    peak, codes = 0, []
    for proc, out in zip(procs, outs):
        _, status, usage = os.wait4(proc.pid, 0)
        out.close()
        peak = max(peak, usage.ru_maxrss * 1024)
        codes.append(os.waitstatus_to_exitcode(status))
    return time.perf_counter() - t0, peak, codes


def child_python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


GENERATE = """
import sys, time, torch, numpy as np, pyarrow as pa, pyarrow.parquet as pq
from distgnn.data import save_numpy
from distgnn.data.synthetic import products
torch.set_num_threads(int(sys.argv[3]))
t = time.perf_counter()
data = products(float(sys.argv[1]))
gen_s = time.perf_counter() - t
save_numpy(data, sys.argv[2] + "/graph.npz")
ei = data.edge_index.numpy()
pq.write_table(pa.table({"src": ei[0], "dst": ei[1]}), sys.argv[2] + "/edges.parquet", row_group_size=1 << 20)
print("STATS", {"nodes": data.num_nodes, "edges": data.num_edges, "gen_s": gen_s,
                "train": int(data.train_mask.sum())})
"""

METIS_ALONE = """
import sys, time
from distgnn.data import load_numpy
from distgnn.partition.methods import get_method
from distgnn.partition.sources import graph_input
data = load_numpy(sys.argv[1])
graph = graph_input(data)
del data
t = time.perf_counter()
get_method("metis").assign(graph, int(sys.argv[2]), seed=0)
print("STATS", {"cut_s": time.perf_counter() - t})
"""

SINGLE = """
import sys, time, torch
from distgnn.data import load_numpy
from distgnn.graph import Graph
from distgnn.models import model_builder
from distgnn.sampling import NeighborSampler
torch.set_num_threads(1)
data = load_numpy(sys.argv[1])
steps, batch, fanouts = int(sys.argv[2]), int(sys.argv[3]), tuple(int(f) for f in sys.argv[4].split(","))
sampler = NeighborSampler(data.edge_index, data.num_nodes, fanouts)
torch.manual_seed(0)
model = model_builder("sage", num_layers=len(fanouts))(data.num_features, data.num_classes)
opt = torch.optim.Adam(model.parameters(), lr=0.01)
ids = torch.nonzero(data.train_mask).view(-1)
ids = ids[torch.randperm(ids.numel(), generator=torch.Generator().manual_seed(0))]
batches = list(torch.split(ids, batch))[: steps + 1]
seeds = edges = 0
for i, b in enumerate(batches):
    if i == 1:  # the first step is a warm-up
        t = time.perf_counter()
    sub = sampler.sample(b, seed=i)
    opt.zero_grad()
    out = model(data.x[sub.node_ids], Graph(sub.edge_index, int(sub.node_ids.numel())))
    torch.nn.functional.cross_entropy(out[: sub.num_seeds], data.y[b]).backward()
    opt.step()
    if i >= 1:
        seeds += b.numel()
        edges += int(sub.edge_index.shape[1])
s = time.perf_counter() - t
print("STATS", {"steps": len(batches) - 1, "seconds": s, "seeds_per_s": seeds / s, "edges_per_s": edges / s})
"""


BARE_WORKER = """
import torch, ray, pyarrow.parquet
import distgnn.launch.worker, distgnn.launch.sampled, distgnn.partition.reader
"""


def stats_of(log: str) -> dict:
    """The ``STATS {...}`` line a child printed."""
    import ast

    with open(log) as f:
        for line in f:
            if line.startswith("STATS "):
                return ast.literal_eval(line[6:].strip())
    raise RuntimeError(f"{log}: the child printed no STATS line:\n" + open(log).read()[-2000:])


def check(code: int, log: str, what: str) -> None:
    if code != 0:
        raise SystemExit(f"{what} failed (exit {code}); its output ({log}):\n" + open(log).read()[-3000:])


# -- launch with the workers' peak memory --------------------------------------------------------
class WorkerMemory:
    """Polls ``VmHWM`` (peak RSS) of the worker processes named in launch's echo lines."""

    def __init__(self) -> None:
        self.pids: set[int] = set()
        self.peak: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def echo(self, line: str) -> None:
        if line.startswith("worker ") and ", pid " in line:
            self.pids.add(int(line.split(", pid ")[1].split(",")[0]))

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            for pid in list(self.pids):
                try:
                    with open(f"/proc/{pid}/status") as f:
                        for row in f:
                            if row.startswith("VmHWM:"):
                                self.peak[pid] = max(self.peak.get(pid, 0), int(row.split()[1]) * 1024)
                except OSError:
                    pass

    def __enter__(self) -> "WorkerMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_launch(args, parts: str, **kwargs):
    from distgnn.launch import launch

    with WorkerMemory() as mem:
        result = launch(parts=parts, workers=args.workers, epochs=1, threads_per_worker=1, timeout_s=3600.0,
                        echo=mem.echo, progress=True, **kwargs)
    return result, max(mem.peak.values()) if mem.peak else float("nan")


class StepCap:
    """Cap the driver's sampled epoch at ``max_steps`` steps (a uniform subset of the training
    seeds, enough for that many steps), remembering the full epoch's step count."""

    def __init__(self, max_steps: int, batch_size: int) -> None:
        self.max_steps, self.batch_size, self.full_steps, self.steps = max_steps, batch_size, 0, 0

    def __enter__(self) -> "StepCap":
        import torch

        from distgnn.launch import sampled

        self.cls, self.original = sampled.SampledDriver, sampled.SampledDriver.prepare
        cap = self

        def prepare(driver, loaded, starts):
            cap.original(driver, loaded, starts)
            ids = driver.train_ids
            cap.full_steps = sampled.split_seeds(ids, starts, driver.config.batch_size)[1]
            if cap.max_steps and cap.full_steps > cap.max_steps:
                keep = torch.randperm(ids.numel(), generator=torch.Generator().manual_seed(0))
                keep = keep[: cap.max_steps * cap.batch_size]
                driver.train_ids = torch.sort(ids[keep]).values
            cap.steps = sampled.split_seeds(driver.train_ids, starts, driver.config.batch_size)[1]

        self.cls.prepare = prepare
        return self

    def __exit__(self, *exc) -> None:
        self.cls.prepare = self.original


def part_bytes(manifest, workers: int) -> float:
    """In-memory bytes of the largest worker's share: features, labels, masks, edges (src, dst, eid),
    halo ids."""
    from distgnn.launch.shard import assign_parts

    width = sum(4 * math.prod(f.shape or (1,)) if f.dtype.startswith("float") else 8 * math.prod(f.shape or (1,))
                for f in manifest.node_fields if f.name in ("features", "label"))
    width += 3  # the masks, one byte each
    sizes = []
    for block in assign_parts(manifest.num_parts, workers):
        ps = [manifest.parts[k] for k in block]
        sizes.append(sum(p.num_nodes * width + p.num_edges * 24 + p.num_halo * 16 for p in ps))
    return max(sizes)


# -- the benchmark -------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="fraction of ogbn-products' size (default 1)")
    p.add_argument("--parts", type=int, default=8, help="parts of both partitions (default 8)")
    p.add_argument("--workers", type=int, default=2, help="workers of the training runs (default 2)")
    p.add_argument("--max-steps", type=int, default=0,
                   help="run at most this many steps of the sampled epoch and extrapolate (default 0: all)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the generator (default 1)")
    p.add_argument("--skip", default="", help="comma list of: metis-alone, stream-edges, full, sampled, single")
    p.add_argument("--workdir", help="keep the graph and partitions here (default: a temporary directory)")
    args = p.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    work = args.workdir or tempfile.mkdtemp(prefix="distgnn-scale-")
    os.makedirs(work, exist_ok=True)
    print(f"# distgnn scale benchmark: {environment()}")
    print(f"# {load_note()}")
    try:
        return _run(args, skip, work)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def _run(args, skip: set, work: str) -> int:
    from distgnn.partition import load_manifest

    rows, notes = [], []
    log = lambda name: os.path.join(work, f"{name}.log")  # noqa: E731
    gb = lambda b: b / 2**30  # noqa: E731

    s, rss, code = run_child(child_python(GENERATE, str(args.scale), work, str(args.threads)), log("generate"))
    check(code, log("generate"), "generate")
    g = stats_of(log("generate"))
    print(f"# products twin at scale {args.scale:g}: {g['nodes']:,} nodes, {g['edges']:,} directed edges, "
          f"{g['train']:,} training nodes; generated in {g['gen_s']:.1f} s", flush=True)
    rows.append(["generate + write", s, gb(rss), "", "", "", ""])
    npz = os.path.join(work, "graph.npz")

    metis_alone = None
    if "metis-alone" not in skip:
        s, rss, code = run_child(child_python(METIS_ALONE, npz, str(args.parts)), log("metis-alone"))
        check(code, log("metis-alone"), "METIS alone")
        metis_alone = rss
        rows.append(["METIS alone (load + cut)", s, gb(rss), "", "", "", ""])

    partitions = {}
    runs = [("metis", npz, "metis"), ("stream", npz, "stream")]
    if "stream-edges" not in skip:
        runs.append(("stream-edges", os.path.join(work, "edges.parquet"), "stream"))
    for name, source, method in runs:
        out = os.path.join(work, f"parts-{name}")
        argv = [sys.executable, "-m", "distgnn.partition", source, "--parts", str(args.parts), "--method", method,
                "--out", out, "--overwrite"]
        if name == "stream-edges":
            argv += ["--num-nodes", str(g["nodes"])]
        s, rss, code = run_child(argv, log(f"partition-{name}"))
        check(code, log(f"partition-{name}"), f"partition {name}")
        m = load_manifest(out)
        q = m.quality
        partitions[name] = (rss, m)
        label = {"metis": "partition metis", "stream": "partition stream",
                 "stream-edges": "stream, edges only (streamed)"}[name]
        rows.append([label, s, gb(rss), f"{100 * q['edge_cut_fraction']:.1f}%",
                     f"{q['node_balance']:.3f} / {q['edge_balance']:.3f}", "", ""])
        print(f"# {label}: done in {s:.0f} s", flush=True)

    manifest = partitions["metis"][1]
    share = part_bytes(manifest, args.workers)
    _, base, code = run_child(child_python(BARE_WORKER), log("bare-worker"))
    check(code, log("bare-worker"), "bare worker")
    rows.append(["bare worker process (imports only)", "", gb(base), "", "", "", ""])
    parts_dir = os.path.join(work, "parts-metis")
    if "full" not in skip:
        result, peak = run_launch(args, parts_dir, mode="full", model="gcn", hidden=128, num_layers=2)
        e = result.history[-1]
        train_s = e.wall_s - e.eval_s
        rows.append([f"full GCN, {args.workers} workers, 1 epoch", train_s, gb(peak), "", "",
                     f"halo {e.halo_bytes / 1e6:.0f} MB", f"part {share / MiB:.0f} MB"])
        if e.eval_s > 0:
            rows.append(["  exact evaluation (all nodes)", e.eval_s, "", "", "", "", ""])
        notes.append(f"full-graph worker peak {gb(peak):.2f} GiB, {gb(peak - base):.2f} GiB above a bare worker "
                     f"process = {(peak - base) / share:.2f}x its part ({share / MiB:.0f} MB; target: 1.5x plus "
                     "activations)")

    sampled_rate = None
    if "sampled" not in skip:
        fanouts = (15, 10, 5)
        with StepCap(args.max_steps, 1024) as cap:
            result, peak = run_launch(args, parts_dir, mode="sampled", model="sage", fanouts=fanouts, num_layers=3,
                                      batch_size=1024)
        e = result.history[-1]
        worker_s = e.compute_s + e.sync_s + e.wait_s  # the slowest worker's training time (sampling overlapped)
        factor = cap.full_steps / max(1, cap.steps)
        per_worker_edges = e.sampled_edges / args.workers / worker_s
        sampled_rate = e.seeds / args.workers / worker_s
        label = f"sampled SAGE, {args.workers} workers, 1 epoch"
        if factor > 1:
            label += f" (extrapolated from {cap.steps} of {cap.full_steps} steps)"
        rows.append([label, worker_s * factor, gb(peak), "", "", f"{per_worker_edges / 1e6:.2f}M edges/s/worker",
                     f"{sampled_rate:.0f} seeds/s/worker"])
        rows.append(["  exact evaluation (all nodes)", e.eval_s, "", "", "", "", ""])
        notes.append(f"sampled worker peak {gb(peak):.2f} GiB, {gb(peak - base):.2f} GiB above a bare worker process "
                     f"= {(peak - base) / share:.2f}x its part; "
                     f"sample {e.sample_s:.1f} s, fetch {e.fetch_s:.1f} s ({e.bytes_fetched / 1e6:.0f} MB), "
                     f"train {e.compute_s:.1f} s, sync {e.sync_s:.1f} s, wait {e.wait_s:.1f} s over {cap.steps} steps")
        if factor > 1:
            notes.append(f"the sampled epoch ran {cap.steps} of its {cap.full_steps} steps (--max-steps); its time "
                         f"is that time x {factor:.2f}, extrapolated, not measured")

    if "single" not in skip:
        steps = args.max_steps or 10**9
        s, rss, code = run_child(child_python(SINGLE, npz, str(steps), str(1024 // args.workers), "15,10,5"),
                                 log("single"))
        check(code, log("single"), "single-process sampled training")
        st = stats_of(log("single"))
        rows.append([f"single-process SAGE, {st['steps']} steps of {1024 // args.workers} seeds", st["seconds"],
                     gb(rss), "", "", f"{st['edges_per_s'] / 1e6:.2f}M edges/s", f"{st['seeds_per_s']:.0f} seeds/s"])
        argv = child_python(SINGLE, npz, str(steps), str(1024 // args.workers), "15,10,5")
        logs = [log(f"single-{k}") for k in range(args.workers)]
        s, rss, codes = run_children([argv] * args.workers, logs)
        for code, one in zip(codes, logs):
            check(code, one, "single-process sampled training (copies at once)")
        copies = [stats_of(one) for one in logs]
        rate = sum(c["seeds_per_s"] for c in copies) / len(copies)
        rows.append([f"  the same, {args.workers} copies at once (mean per copy)", s, gb(rss), "", "",
                     f"{sum(c['edges_per_s'] for c in copies) / len(copies) / 1e6:.2f}M edges/s",
                     f"{rate:.0f} seeds/s"])
        if sampled_rate is not None:
            notes.append(f"sampled seeds/s per worker {sampled_rate:.0f} vs one process {st['seeds_per_s']:.0f} alone: "
                         f"{sampled_rate / st['seeds_per_s']:.2f}x; vs {args.workers} processes at once (the same "
                         f"share of the cores as a worker) {rate:.0f}: {sampled_rate / rate:.2f}x (target: within 10%)")

    if metis_alone is not None:
        notes.append(f"metis pipeline peak {gb(partitions['metis'][0]):.2f} GiB = "
                     f"{partitions['metis'][0] / metis_alone:.2f}x METIS alone (target: 1.1x)")
    if "stream-edges" in partitions:
        notes.append(f"streamed partition peak {gb(partitions['stream-edges'][0]):.2f} GiB (target: under 2 GiB)")
    print()
    print(format_table(["stage", "seconds", "peak GiB", "cut", "balance nodes/edges", "traffic / rate", "size / seeds"],
                       rows))
    print()
    for n in notes:
        print(f"- {n}")
    print(f"\n# {load_note()}")
    with open(os.path.join(work, "scale.json"), "w") as f:
        json.dump({"scale": args.scale, "rows": rows, "notes": notes}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
