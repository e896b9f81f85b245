"""Distributed full-graph training: epoch time, halo traffic and parallel efficiency.

    python benchmarks/distributed.py                      # 1M-node SBM, GCN, 1/2/4 workers
    python benchmarks/distributed.py --nodes 200000 --workers 1,2 --epochs 4

The graph (the synthetic SBM of ``python -m distgnn.launch``, ``--nodes`` nodes, ~10 edges per
node) is partitioned ONCE with METIS into ``max(workers)`` parts; a run with ``W`` workers gives
each a consecutive block of those parts (1 worker = the whole graph through the distributed
runtime). Next to it, the same model trains in one process with the single-process loop
(``Graph`` instead of a ``PartitionedGraph``), with the same total number of threads as one
worker and as all workers together.

Per run, the medians over the epochs after the first (which builds caches) of:
- ``step``: forward + backward + gradient all-reduce + optimiser step on the slowest worker;
- ``exchange``: time inside halo all-to-alls (includes waiting for a slower peer: imbalance);
- ``sync``: the gradient all-reduce; ``compute`` = step - exchange - sync;
- ``ray``: the driver's round trip minus the worker's time (scheduling, serialisation);
- halo MB per epoch (all workers, forward + backward) and that figure divided by the halo rows
  times 4 bytes: the float32 columns exchanged per halo row per epoch.
Parallel efficiency = single-process step time with T threads / (W x step time with W workers of
T threads each) -- ideal is 1.0; with more workers than cores it can only fall.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from distgnn.data import sbm  # noqa: E402
from distgnn.graph import Graph  # noqa: E402
from distgnn.launch import launch  # noqa: E402
from distgnn.models import build_model  # noqa: E402
from distgnn.partition import load_manifest, partition  # noqa: E402


def single_process(data, model_name: str, epochs: int, threads: int) -> float:
    """Median step time (forward + backward + Adam) of the single-process loop, seconds."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = build_model(model_name, data.num_features, data.num_classes)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        graph = Graph(data.edge_index, data.num_nodes)
        times = []
        for _ in range(epochs):
            t0 = time.perf_counter()
            model.train()
            opt.zero_grad()
            loss = F.cross_entropy(model(data.x, graph)[data.train_mask], data.y[data.train_mask])
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        return statistics.median(times[1:] or times)
    finally:
        torch.set_num_threads(old)


def distributed(parts: str, model: str, workers: int, epochs: int, threads: int, halo_rows: int) -> dict:
    res = launch(parts=parts, model=model, workers=workers, epochs=epochs, threads_per_worker=threads,
                 eval_every=10 ** 9, timeout_s=600)
    assert len(set(res.digests)) == 1, "replicas diverged"
    hist = [h for h in res.history[1:] if "val_acc" not in h] or res.history[1:] or res.history
    med = lambda key: statistics.median(h[key] for h in hist)  # noqa: E731
    step, exch, sync = med("step_s"), med("exchange_s"), med("sync_s")
    halo = med("halo_bytes")
    return {
        "step": step, "exchange": exch, "sync": sync, "compute": step - exch - sync,
        "ray": med("wall_s") - med("epoch_s"), "halo_mb": halo / 1e6,
        "cols": halo / (4 * halo_rows) if halo_rows else 0.0,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=1_000_000, help="SBM nodes (default: 1M, ~10M edges)")
    p.add_argument("--workers", default="1,2,4", help="worker counts (default: 1,2,4)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker (default: 1)")
    p.add_argument("--epochs", type=int, default=5, help="epochs per run (default: 5; the first is not counted)")
    p.add_argument("--model", default="gcn", help="gcn, sage or gat (default: gcn)")
    p.add_argument("--workdir", help="keep the partition here (default: a temporary directory)")
    args = p.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",")]
    cpus = os.cpu_count() or 1

    t0 = time.perf_counter()
    data = sbm(num_nodes=args.nodes, seed=0)
    print(f"{data} (generated in {time.perf_counter() - t0:.1f} s); {cpus} CPUs here")
    work = args.workdir or tempfile.mkdtemp(prefix="distgnn-bench-")
    parts = os.path.join(work, f"sbm-{args.nodes}-{max(counts)}")
    if not os.path.exists(os.path.join(parts, "manifest.json")):
        t0 = time.perf_counter()
        partition(data, max(counts), parts, method="metis", seed=0)
        print(f"partitioned into {max(counts)} parts (METIS) in {time.perf_counter() - t0:.1f} s -> {parts}")
    m = load_manifest(parts)

    base = {t: single_process(data, args.model, args.epochs, t) for t in sorted({args.threads, args.threads * max(counts)})}
    print(f"\nsingle process, {args.model}: " + ", ".join(f"{t} thread(s) {1000 * s:.0f} ms/step" for t, s in base.items()))

    from distgnn.launch import assign_parts  # halo rows of each worker count, from the manifest's parts

    rows = []
    for w in counts:
        halo_rows = _halo_rows(parts, m, assign_parts(m.num_parts, w, [q.num_edges + q.num_nodes for q in m.parts]))
        r = distributed(parts, args.model, w, args.epochs, args.threads, halo_rows)
        r.update(workers=w, halo_rows=halo_rows, eff=base[args.threads] / (w * r["step"]),
                 speedup=base[args.threads] / r["step"])
        rows.append(r)
        print(f"  {w} worker(s) done: {1000 * r['step']:.0f} ms/step", flush=True)

    print(f"\n{args.model} on {data.num_nodes:,} nodes / {data.num_edges:,} edges, {args.threads} thread(s) per worker, "
          f"{cpus} CPUs; medians over epochs 2..{args.epochs}")
    head = (f"{'workers':>7} {'step ms':>8} {'compute':>8} {'exchange':>9} {'sync':>6} {'ray':>6} "
            f"{'halo rows':>10} {'halo MB':>8} {'cols/row':>8} {'speedup':>8} {'effic.':>7}")
    print(head + "\n" + "-" * len(head))
    print(f"{'1 proc':>7} {1000 * base[args.threads]:8.0f} {'':>8} {'':>9} {'':>6} {'':>6} {0:10d} {0:8.1f} {'':>8} "
          f"{1.0:8.2f} {1.0:7.2f}")
    for r in rows:
        print(f"{r['workers']:7d} {1000 * r['step']:8.0f} {1000 * r['compute']:8.0f} {1000 * r['exchange']:9.0f} "
              f"{1000 * r['sync']:6.1f} {1000 * r['ray']:6.1f} {r['halo_rows']:10d} {r['halo_mb']:8.1f} "
              f"{r['cols']:8.1f} {r['speedup']:8.2f} {r['eff']:7.2f}")
    if args.threads * max(counts) in base and args.threads * max(counts) != args.threads:
        t = args.threads * max(counts)
        print(f"(one process with {t} threads: {1000 * base[t]:.0f} ms/step)")
    return 0


def _halo_rows(parts: str, m, blocks) -> int:
    """Halo rows of all workers when ``blocks`` of parts are merged (sources outside each block)."""
    from distgnn.partition import load_part

    total = 0
    for b in blocks:
        lo, hi = m.parts[b[0]].node_start, m.parts[b[-1]].node_end
        src = torch.cat([load_part(parts, k, m).edge_index[0] for k in b])
        total += int(torch.unique(src[(src < lo) | (src >= hi)]).numel())
    return total


if __name__ == "__main__":
    sys.exit(main())
