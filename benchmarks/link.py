"""Sampled link prediction: positive edges per second on 1 and 2 workers, and where the time goes.

    python benchmarks/link.py                          # ~10M-edge SBM, 1 and 2 workers, 30 steps
    python benchmarks/link.py --nodes 200000 --steps 10 --workers 1,2

The graph (the synthetic SBM of ``python -m distgnn.launch``, ``--nodes`` nodes, ``--degree``
edges per node in both directions: 1M nodes -> ~10M directed edges) is split 85/5/10 and
partitioned ONCE into ``max(workers)`` parts (``--method``, default ``range``); a run with ``W``
workers gives each a consecutive block of parts. Each worker is a :class:`~distgnn.launch.worker.Worker`
in its own process (gloo, ``--threads`` torch threads), trained in sampled mode (GraphSAGE
encoder, dot decoder, one corrupt-destination negative per positive, fan-out ``--fanout``,
``--batch`` positive edges per step over all workers); after ``--warmup`` steps, ``--steps`` steps
are timed without the background sampler thread, so the stages add up:

- ``negatives + sample``: keyed negatives and the sampled neighbourhoods of both endpoints of
  every positive and negative (frontier nodes owned elsewhere are sampled by their owners);
- ``fetch``: the feature rows of the sampled nodes, remote ones from their owners;
- ``compute``: forward, scores, backward; ``sync``: the gradient all-reduce and Adam.

Figures are the slowest worker's; edges/s = positive edges of all workers / wall time of the
timed steps. ``remote fetch share`` = fetch time / step time: the cost of reading endpoints
(and their neighbourhoods) held by other workers.

Measured (2-core machine shared with other jobs, quiet at the time; 1M nodes, 10.0M edges,
``range`` parts, 1 thread per worker, 30 steps):

| workers | positive edges/s | step ms | negatives+sample ms | fetch ms | compute ms | sync ms | remote fetch share |
|---|---|---|---|---|---|---|---|
| 1 | 2,374 | 431 | 20 | 9 | 400 | 1 | 2.2% |
| 2 | 3,719 | 275 | 24 | 15 | 221 | 15 | 5.3% |

Compute (forward and backward over ~121k sampled nodes per 1024 positives and their negatives)
dominates; fetching remote rows costs about 5% of a step on 2 workers (on 1 every row is local).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _worker(rank: int, world: int, rdv: str, parts: str, blocks, starts, args, results) -> None:
    import torch
    import torch.distributed as dist

    try:
        torch.set_num_threads(args.threads)
        dist.init_process_group("gloo", init_method=f"file://{rdv}", rank=rank, world_size=world,
                                timeout=timedelta(seconds=900))
        from distgnn.launch import RunConfig
        from distgnn.launch.worker import Worker

        cfg = RunConfig(parts=parts, task="link-prediction", model="sage", hidden=64, mode="sampled",
                        fanouts=tuple(int(f) for f in args.fanout.split(",")), batch_size=args.batch,
                        pipeline=False, workers=world, threads_per_worker=args.threads, timeout_s=900)
        w = Worker(rank, world, cfg.to_dict())
        t0 = time.perf_counter()
        w.load(parts, list(blocks[rank]), starts)
        load_s = time.perf_counter() - t0
        ep = w.epochs
        eids = w.train_eid[torch.randperm(w.train_eid.numel(), generator=torch.Generator().manual_seed(rank))]
        ep.begin(1, (eids.numpy(), args.warmup + args.steps))
        ep.run_steps(args.warmup)
        for key in ep.stats:
            ep.stats[key] = 0.0 if isinstance(ep.stats[key], float) else 0
        dist.barrier()
        t0 = time.perf_counter()
        ep.run_steps(args.steps)
        wall = time.perf_counter() - t0
        results.put((rank, {"wall": wall, "load_s": load_s, **ep.stats}))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        import traceback

        results.put((rank, {"error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"}))


def run(parts: str, workers: int, args) -> dict:
    from distgnn.launch.shard import assign_parts
    from distgnn.partition import load_manifest

    m = load_manifest(parts)
    blocks = assign_parts(m.num_parts, workers, [p.num_edges + p.num_nodes for p in m.parts])
    starts = [m.parts[b[0]].node_start for b in blocks] + [m.num_nodes]
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    rdv_dir = tempfile.mkdtemp(prefix="distgnn-link-bench-")
    rdv = os.path.join(rdv_dir, "rdv")
    procs = [ctx.Process(target=_worker, args=(r, workers, rdv, parts, blocks, starts, args, results), daemon=True)
             for r in range(workers)]
    for p in procs:
        p.start()
    out = dict(results.get(timeout=1800) for _ in range(workers))
    for p in procs:
        p.join(30)
    shutil.rmtree(rdv_dir, ignore_errors=True)
    for r, res in out.items():
        if "error" in res:
            raise RuntimeError(f"worker {r} failed: {res['error']}")
    slow = max(out.values(), key=lambda r: r["wall"])
    positives = sum(r["positives"] for r in out.values())
    step = slow["sample_s"] + slow["fetch_s"] + slow["compute_s"] + slow["sync_s"]
    return {"edges_s": positives / slow["wall"], "step_ms": 1000 * slow["wall"] / args.steps,
            "sample_ms": 1000 * slow["sample_s"] / args.steps, "fetch_ms": 1000 * slow["fetch_s"] / args.steps,
            "compute_ms": 1000 * slow["compute_s"] / args.steps, "sync_ms": 1000 * slow["sync_s"] / args.steps,
            "fetch_share": slow["fetch_s"] / step if step else 0.0, "load_s": max(r["load_s"] for r in out.values()),
            "nodes_step": slow["sampled_nodes"] / args.steps}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=1_000_000)
    p.add_argument("--degree", type=float, default=10.0, help="edges per node (default 10: 1M nodes -> ~10M edges)")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--method", default="range", help="partitioning method (default: range)")
    p.add_argument("--fanout", default="10,5")
    p.add_argument("--batch", type=int, default=1024, help="positive edges per step over all workers")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--parts", default=None, help="reuse a partition written by an earlier run (with an edge split)")
    args = p.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]

    from distgnn.data import sbm
    from distgnn.partition import partition

    parts, made = args.parts, None
    if parts is None:
        t0 = time.perf_counter()
        data = sbm(num_nodes=args.nodes, avg_degree=args.degree, seed=0)
        gen_s = time.perf_counter() - t0
        made = tempfile.mkdtemp(prefix="distgnn-link-bench-")
        parts = os.path.join(made, "parts")
        t0 = time.perf_counter()
        partition(data, max(workers), parts, method=args.method, edge_split=(0.85, 0.05, 0.10))
        print(f"{data.num_nodes} nodes, {data.num_edges} edges (generated in {gen_s:.0f} s); partitioned into "
              f"{max(workers)} parts ({args.method}, 85/5/10 edge split) in {time.perf_counter() - t0:.0f} s -> {parts}",
              flush=True)
    print(f"sampled link prediction: sage encoder (64), dot decoder, 1 negative, fan-out {args.fanout}, batch "
          f"{args.batch} positives, {args.threads} thread(s) per worker, {args.steps} timed steps\n")
    print("| workers | positive edges/s | step ms | negatives+sample ms | fetch ms | compute ms | sync ms | "
          "remote fetch share | sampled nodes/step |")
    print("|---|---|---|---|---|---|---|---|---|")
    try:
        for w in workers:
            r = run(parts, w, args)
            print(f"| {w} | {r['edges_s']:,.0f} | {r['step_ms']:.0f} | {r['sample_ms']:.0f} | {r['fetch_ms']:.0f} | "
                  f"{r['compute_ms']:.0f} | {r['sync_ms']:.0f} | {100 * r['fetch_share']:.1f}% | "
                  f"{r['nodes_step']:,.0f} |", flush=True)
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
