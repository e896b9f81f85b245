"""Exact inference: peak memory per worker, layer-wise in chunks vs one full-graph forward.

    python benchmarks/predict.py                          # 1M-node SBM, 2 workers, gcn and gat
    python benchmarks/predict.py --nodes 200000 --models gcn --batch-nodes 16384,65536

The graph (the synthetic SBM of ``python -m distgnn.launch``, ``--nodes`` nodes, ~10 edges per
node, 32 features) is partitioned once (``--method``, default ``range``: the SBM's ids are already
local enough, and METIS on 1M nodes would dominate the run) into ``--workers`` parts. For every
model and every mode, ``--workers`` fresh processes (gloo, one thread each) load their part and
the model exactly as ``python -m distgnn.predict`` does (``Worker.load_inference``), then run

- ``full``: one ``model(x, graph)`` on the whole part (the memory of a forward: every edge's
  messages and attention scores of a layer at once);
- ``chunk=B``: :class:`distgnn.predict.inference.LayerwiseRun` with ``batch_nodes=B`` (one halo
  exchange per layer, then chunks of ``B`` destination rows).

Per run and worker: RSS after loading, the peak RSS DURING inference (sampled every 2 ms by a
thread, so the load's own peak does not hide it), that peak minus the loaded RSS, and the time.
The outputs of every mode are checked equal (max abs difference printed).

Measured (1M nodes, 10M edges, ``range`` into 2 parts -- the SBM's ids carry no locality, so each
worker's halo is nearly the other's whole part --, one thread per worker, 2-layer models; MiB
per worker, peak during inference and its rise over the loaded part, ~850-950 MiB):

=====  ===================  ===================  ===================
model  full forward         chunk=65536          chunk=16384
=====  ===================  ===================  ===================
gcn    1522 (+579..631)     1356 (+401..470)     1089 (+218..225)
gat    2886 (+2017..2039)   2231 (+1323..1385)   1443 (+573..574)
=====  ===================  ===================  ===================

Chunks cost time (gcn 8 s -> 10 s, gat 20 s -> 31..36 s): a chunk's in-neighbours are transformed
again for every chunk that reads them.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _PeakSampler:
    """The largest RSS seen while the ``with`` block runs (a thread polling /proc every 2 ms)."""

    def __enter__(self):
        self.peak, self._stop = _rss_mb(), threading.Event()
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()
        return self

    def _poll(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss_mb())


def _worker(rank, world, rdv, parts, config, state, mode, q):
    import gc

    import torch.distributed as dist

    from distgnn.launch.shard import assign_parts
    from distgnn.launch.worker import Worker
    from distgnn.partition import load_manifest
    from distgnn.predict.inference import LayerwiseRun

    try:
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"file://{rdv}", rank=rank, world_size=world,
                                timeout=timedelta(seconds=1800))
        m = load_manifest(parts)
        blocks = assign_parts(m.num_parts, world)
        starts = [m.parts[b[0]].node_start for b in blocks] + [m.num_nodes]
        w = Worker(rank, world, config)
        w.load_inference(parts, list(blocks[rank]), starts, m, state, state["channels"])
        gc.collect()
        loaded = _rss_mb()
        dist.barrier()
        t0 = time.perf_counter()
        with _PeakSampler() as s:
            if mode == "full":
                with torch.no_grad():
                    out = w.model(w.x, w.graph, **w.inputs)
            else:
                out = LayerwiseRun(w.model, w.x, w.graph, dict(w.inputs), batch_nodes=int(mode)).run()
        seconds = time.perf_counter() - t0
        dist.barrier()
        q.put((rank, {"loaded": loaded, "peak": s.peak, "seconds": seconds, "nodes": w.graph.num_nodes,
                      "edges": w.graph.num_edges, "halo": w.graph.num_halo,
                      "out": out[:: max(1, out.shape[0] // 2000)].numpy().copy()}))
    except BaseException as exc:  # noqa: BLE001
        import traceback

        q.put((rank, traceback.format_exc()))
        raise exc


def run(parts: str, config: dict, state: dict, mode: str, workers: int) -> list[dict]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    rdv = os.path.join(tempfile.mkdtemp(prefix="distgnn-bench-"), "rdv")
    procs = [ctx.Process(target=_worker, args=(r, workers, rdv, parts, config, state, mode, q)) for r in range(workers)]
    for p in procs:
        p.start()
    got = {}
    try:
        while len(got) < workers:
            rank, res = q.get(timeout=1800)
            if isinstance(res, str):
                raise RuntimeError(f"worker {rank} failed:\n{res}")
            got[rank] = res
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    return [got[r] for r in range(workers)]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--models", default="gcn,gat")
    ap.add_argument("--batch-nodes", default="65536", help="comma-separated chunk sizes")
    ap.add_argument("--method", default="range")
    ap.add_argument("--parts", default=None, help="reuse (or write) the partition here")
    args = ap.parse_args(argv)

    from distgnn.data import sbm
    from distgnn.launch.config import RunConfig
    from distgnn.models import model_builder
    from distgnn.partition import load_manifest, partition

    parts = args.parts or os.path.join(tempfile.mkdtemp(prefix="distgnn-bench-"), "parts")
    if not os.path.exists(os.path.join(parts, "manifest.json")):
        t0 = time.perf_counter()
        data = sbm(num_nodes=args.nodes, num_features=32, seed=0)
        partition(data, args.workers, parts, method=args.method, seed=0)
        print(f"{data}: partitioned ({args.method}, {args.workers} parts) in {time.perf_counter() - t0:.0f} s "
              f"-> {parts}")
        del data
    m = load_manifest(parts)
    f = m.node_field("features").shape[0]
    print(f"graph: {m.num_nodes} nodes, {m.num_edges} edges, {m.num_parts} parts, halo "
          f"{m.quality.get('halo_nodes')}; {args.workers} workers, 1 thread each")
    print(f"{'model':6} {'mode':12} {'worker':>6} {'nodes':>8} {'edges':>9} {'loaded MiB':>10} {'peak MiB':>9} "
          f"{'peak-loaded':>11} {'seconds':>8}")
    for model in args.models.split(","):
        classes = 5
        torch.manual_seed(0)
        net = model_builder(model)(f, classes)
        state = {"model": net.state_dict(), "channels": [f, classes]}
        config = RunConfig(model=model, workers=args.workers, threads_per_worker=1, run_dir="").to_dict()
        ref = None
        for mode in ["full"] + args.batch_nodes.split(","):
            res = run(parts, config, state, mode, args.workers)
            label = "full forward" if mode == "full" else f"chunk={mode}"
            for r, x in enumerate(res):
                print(f"{model:6} {label:12} {r:>6} {x['nodes']:>8} {x['edges']:>9} {x['loaded']:>10.0f} "
                      f"{x['peak']:>9.0f} {x['peak'] - x['loaded']:>11.0f} {x['seconds']:>8.2f}", flush=True)
            outs = torch.cat([torch.from_numpy(x["out"]) for x in res])
            if ref is None:
                ref = outs
            else:
                print(f"{'':6} {label:12} max |chunked - full| = {float((outs - ref).abs().max()):.2e}")


if __name__ == "__main__":
    main()
