"""Neighbour-sampling throughput: distgnn's sampler against DGL's (and PyG's when it can run).

One R-MAT graph (``distgnn.data.rmat``, a=0.57 b=0.19 c=0.19 d=0.05, directed, ``N =
2^round(log2(E/16))`` as in ``benchmarks/partition.py``; 10M edges by default), batches of seeds
drawn uniformly among the nodes with at least one in-edge (``--seeds any``: among all nodes; an
R-MAT graph leaves about 40% of its nodes without in-edges), fan-outs ``15,10``, multi-hop. The
figure is sampled edges per second (millions), the median over interleaved rounds of
``--batches`` batches each (see ``benchmarks/_common.py``); ``ratio`` = distgnn / reference
throughput (> 1: distgnn faster).

====================================  ===========================================================
case                                  what one batch does
====================================  ===========================================================
distgnn NeighborSampler               ``sample(seeds)``: every hop sampled and the result relabelled
                                      into a SampledSubgraph (seeds first, local ids)
DGL sample_neighbors + to_block       per hop ``dgl.sampling.sample_neighbors`` then ``dgl.to_block``
                                      (its relabelled message-flow graph; DGL's next frontier is
                                      the block's source nodes, seeds included, PyG's and ours the
                                      newly found ones only, so the edge counts differ a little)
distgnn sample_neighbors              per hop ``sample_neighbors`` only, next frontier =
                                      ``unique(src)`` (no relabelling)
DGL sample_neighbors                  the same with ``dgl.sampling.sample_neighbors``
PyG NeighborSampler                   ``torch_geometric.sampler.NeighborSampler`` (needs pyg-lib or
                                      torch-sparse; reported as unavailable otherwise)
====================================  ===========================================================

DGL 2.1 (the newest Linux wheel) imports ``dgl.graphbolt`` at start-up, which needs
``torchdata.datapipes`` (gone from torchdata >= 0.10) and a C++ library built for the running torch
(DGL 2.1 ships them up to torch 2.2), and ``dgl.data`` imports pandas. None of them is used by
``dgl.sampling``: when graphbolt cannot load (:func:`graphbolt_loadable`) or pandas is missing,
this script registers empty placeholder modules for ``dgl.graphbolt`` (and, while DGL imports,
pandas) in this process only. DGL 2.1 also needs ``packaging`` (``pip install dgl==2.1.0
packaging pandas pydantic`` in a venv with torch 2.13 runs it). If DGL still fails, its rows say
why.

Section ``epochs``: the time of a sampled training epoch through the public API
(``distgnn.launch.launch(mode="sampled", model="sage", ...)``) with 1, 2 and 4 workers, the remote
feature cache off and on, and for 2 workers the sampling pipeline off as well. The graph is the
SBM of ``distgnn.data.sbm`` (``--epoch-nodes`` nodes, ~10 edges per node, ``--train-frac`` of the
nodes as training seeds), partitioned ONCE with METIS into ``max(--epoch-workers)`` parts; a run
with ``W`` workers gives each a consecutive block of parts. Every run trains ``--epochs + 1``
epochs and evaluates only after the last one (``eval_every`` larger than the run), which is not
counted; the first epoch is not counted either (warm-up). Per run, the medians over the counted
epochs of:

- ``epoch s``: the driver's wall time of an epoch;
- ``sample`` / ``fetch`` / ``train`` / ``sync`` ms: per epoch, the slowest worker's time in
  sampling, fetching feature rows, forward + backward, and gradient all-reduce + optimiser step
  (with the pipeline on, sampling and fetching overlap training, so they are not on the critical
  path: ``wait`` is the time training waited for the next batch);
- ``fetched MB`` / ``MB saved``: feature bytes received from other workers / spared by the cache
  (all workers); ``hit rate``: the share of remote rows found in the cache.

``launch`` starts a local Ray per run (a few seconds, outside the epoch times). Workers run
``--epoch-threads`` torch threads each (default 1), so with more workers than cores they share
them.

The script is organised in sections (:data:`SECTIONS`, each ``section(args) -> rows``); the
default runs ``sampling`` only.

Usage::

    python benchmarks/sampling.py [--edges 10M] [--fanouts 15,10] [--batch 1024] [--batches 20]
        [--repeats 5] [--threads N] [--clock wall|cpu] [--seeds nonisolated|any]
        [--sections sampling,epochs] [--epoch-nodes 200000] [--epoch-workers 1,2,4]
        [--epoch-cache-mb 4] [--epochs 4] [--epoch-threads 1] [--train-frac 0.1] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

from benchmarks._common import environment, format_table, load_note, time_interleaved, warn_if_busy  # noqa: E402
from distgnn.sampling import NeighborSampler, sample_neighbors  # noqa: E402


@dataclass
class Workload:
    name: str
    edge_index: Tensor  # [2, E]
    num_nodes: int
    batches: list[Tensor]  # seeds of every batch
    fanouts: list[int]


def parse_count(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 10**3, "M": 10**6, "G": 10**9}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def build_workload(args) -> Workload:
    from distgnn.data import rmat

    e = parse_count(args.edges)
    n = args.nodes or 2 ** round(math.log2(max(e / 16, 2)))
    t = time.perf_counter()
    g = rmat(num_nodes=n, num_edges=e, seed=args.graph_seed)
    ei = g.edge_index
    print(f"# graph: R-MAT, {n} nodes, {ei.shape[1]} edges (built in {time.perf_counter() - t:.1f}s)", flush=True)
    if args.seeds == "nonisolated":
        pool = (torch.bincount(ei[1], minlength=n) > 0).nonzero().view(-1)
    else:
        pool = torch.arange(n)
    gen = torch.Generator().manual_seed(args.batch_seed)
    batches = [pool[torch.randperm(pool.numel(), generator=gen)[: args.batch]] for _ in range(args.batches)]
    fanouts = [int(f) for f in args.fanouts.split(",")]
    return Workload(f"rmat-{args.edges}", ei, n, batches, fanouts)


# -- the references ------------------------------------------------------------------------------
def graphbolt_loadable() -> bool:
    """Whether ``dgl.graphbolt`` can import here: ``torchdata.datapipes`` exists and DGL ships its
    C++ library for the running torch (``libgraphbolt_pytorch_<torch version>.so``; DGL 2.1 has
    them up to torch 2.2, so under a newer torch its import raises "Cannot find DGL C++ graphbolt
    library"). Decided without importing DGL."""
    import importlib.util

    try:
        import torchdata.datapipes  # noqa: F401
    except ImportError:
        return False
    spec = importlib.util.find_spec("dgl")
    if spec is None or not spec.submodule_search_locations:
        return False
    version = torch.__version__.split("+")[0]
    folder = os.path.join(list(spec.submodule_search_locations)[0], "graphbolt")
    return any(os.path.exists(os.path.join(folder, f"libgraphbolt_pytorch_{version}{ext}")) for ext in (".so", ".dylib"))


def import_dgl():
    """``dgl``, importable without graphbolt's torchdata or pandas (see the module docstring)."""
    def placeholder(name: str) -> types.ModuleType:
        mod = types.ModuleType(name)

        class Unavailable:  # stands for any class DGL's start-up names but sampling never uses
            pass

        def attr(key: str):
            if key.startswith("__"):
                raise AttributeError(key)
            return Unavailable

        mod.__getattr__ = attr
        return mod

    if not graphbolt_loadable():
        sys.modules.setdefault("dgl.graphbolt", placeholder("dgl.graphbolt"))
    stand_in = None
    try:
        import pandas  # noqa: F401
    except ImportError:
        stand_in = sys.modules.setdefault("pandas", placeholder("pandas"))
    try:
        import dgl
    finally:
        if stand_in is not None and sys.modules.get("pandas") is stand_in:
            del sys.modules["pandas"]  # only dgl.data's own import holds it; others see no pandas
    return dgl


def dgl_cases(w: Workload) -> tuple[dict[str, Callable[[], int]], str]:
    try:
        dgl = import_dgl()
    except Exception as exc:  # noqa: BLE001 - any import failure means "unavailable"
        return {}, f"DGL unavailable ({type(exc).__name__}: {str(exc).splitlines()[0][:100]})"
    g = dgl.graph((w.edge_index[0], w.edge_index[1]), num_nodes=w.num_nodes)
    g.create_formats_()  # build the CSC once, outside the timings

    def blocks() -> int:
        m = 0
        for seeds in w.batches:
            for k in w.fanouts:
                block = dgl.to_block(dgl.sampling.sample_neighbors(g, seeds, k), seeds)
                m += block.num_edges()
                seeds = block.srcdata[dgl.NID]
        return m

    def raw() -> int:
        m = 0
        for seeds in w.batches:
            for k in w.fanouts:
                frontier = dgl.sampling.sample_neighbors(g, seeds, k)
                m += frontier.num_edges()
                seeds = torch.unique(frontier.edges()[0])
        return m

    return {"DGL sample_neighbors + to_block": blocks, "DGL sample_neighbors": raw}, f"DGL {dgl.__version__}"


def pyg_cases(w: Workload) -> tuple[dict[str, Callable[[], int]], str]:
    try:
        import torch_geometric
        import torch_geometric.typing as pyg_typing
        from torch_geometric.data import Data
        from torch_geometric.sampler import NeighborSampler as PygSampler, NodeSamplerInput
    except Exception as exc:  # noqa: BLE001
        return {}, f"PyG unavailable ({type(exc).__name__}: {exc})"
    if not (pyg_typing.WITH_PYG_LIB or pyg_typing.WITH_TORCH_SPARSE):
        return {}, f"PyG {torch_geometric.__version__} sampler unavailable (needs pyg-lib or torch-sparse, neither installed)"
    sampler = PygSampler(Data(edge_index=w.edge_index, num_nodes=w.num_nodes), w.fanouts)

    def run() -> int:
        return sum(
            int(sampler.sample_from_nodes(NodeSamplerInput(None, seeds)).row.numel()) for seeds in w.batches
        )

    return {"PyG NeighborSampler": run}, f"PyG {torch_geometric.__version__}"


def distgnn_cases(w: Workload) -> dict[str, Callable[[], int]]:
    sampler = NeighborSampler(w.edge_index, w.num_nodes, w.fanouts)
    topo = sampler.topo

    def subgraphs() -> int:
        return sum(sampler.sample(seeds, seed=i).num_edges for i, seeds in enumerate(w.batches))

    def raw() -> int:
        m = 0
        for i, seeds in enumerate(w.batches):
            for hop, k in enumerate(w.fanouts):
                src, _, eid = sample_neighbors(topo, seeds, k, seed=i, hop=hop)
                m += eid.numel()
                seeds = torch.unique(src)
        return m

    # sanity: the sampled edges are edges of the graph
    sg = sampler.sample(w.batches[0])
    gsrc, gdst = sg.node_ids[sg.edge_index[0]], sg.node_ids[sg.edge_index[1]]
    if not (torch.equal(gsrc, w.edge_index[0, sg.eid]) and torch.equal(gdst, w.edge_index[1, sg.eid])):
        raise AssertionError("distgnn's sampled edges do not match the graph")
    return {"distgnn NeighborSampler": subgraphs, "distgnn sample_neighbors": raw}


# -- sections ------------------------------------------------------------------------------------
def sampling_section(args) -> list[list[object]]:
    """Sampled edges per second of every sampler on the same batches."""
    w = build_workload(args)
    print(f"# fan-outs {w.fanouts}, {args.batch} seeds per batch ({args.seeds}), {args.batches} batches per round, "
          f"median of {args.repeats} interleaved rounds ({args.clock} clock)")
    cases = distgnn_cases(w)
    notes = []
    for make in (dgl_cases, pyg_cases):
        more, note = make(w)
        cases.update(more)
        notes.append(note)
    for note in notes:
        print(f"# {note}")
    edges = {name: fn() for name, fn in cases.items()}  # also a warm-up; the counts are fixed per case
    times = time_interleaved(cases, args.repeats, warmup=1, clock=args.clock)
    rate = {name: edges[name] / times[name] / 1e6 for name in cases}
    pairs = {  # distgnn case -> the reference it is compared with
        "distgnn NeighborSampler": "DGL sample_neighbors + to_block",
        "distgnn sample_neighbors": "DGL sample_neighbors",
    }
    rows = []
    b = len(w.batches)
    for name in cases:
        ref = pairs.get(name)
        ratio = f"{rate[name] / rate[ref]:.2f}" if ref in rate else "-"
        rows.append([name, edges[name] // b, times[name] / b * 1e3, rate[name], ratio])
    return rows


def epoch_graph(args) -> str:
    """The SBM of the epochs section, partitioned once into ``max(--epoch-workers)`` parts; its path."""
    from distgnn.data import sbm
    from distgnn.partition import partition

    parts = max(args.epoch_workers)
    work = args.workdir or tempfile.mkdtemp(prefix="distgnn-sampling-bench-")
    path = os.path.join(work, f"sbm-{args.epoch_nodes}-train{args.train_frac}-{parts}")
    if os.path.exists(os.path.join(path, "manifest.json")):
        print(f"# epochs: reusing the partition {path}")
        return path
    t = time.perf_counter()
    classes = 5
    data = sbm(num_nodes=args.epoch_nodes, num_classes=classes, seed=0,
               train_per_class=max(1, round(args.epoch_nodes * args.train_frac / classes)),
               num_val=min(1000, args.epoch_nodes // 10), num_test=min(1000, args.epoch_nodes // 10))
    partition(data, parts, path, method="metis", seed=0)
    print(f"# epochs: {data} -> {parts} METIS parts in {time.perf_counter() - t:.1f}s ({path})", flush=True)
    return path


def epoch_run(args, parts: str, workers: int, cache_mb: float, pipeline: bool) -> list[object]:
    """One sampled training run; a table row of medians over the counted epochs."""
    from distgnn.launch import launch

    t = time.perf_counter()
    res = launch(parts=parts, mode="sampled", model="sage", fanouts=tuple(int(f) for f in args.fanouts.split(",")),
                 batch_size=args.batch, cache_mb=cache_mb, pipeline=pipeline, workers=workers,
                 threads_per_worker=args.epoch_threads, epochs=args.epochs + 1, eval_every=10**9, timeout_s=600)
    hist = res.history[1:-1] or res.history  # epoch 1 warms up; the last one also evaluates
    med = lambda key: statistics.median(float(h.get(key, 0.0)) for h in hist)  # noqa: E731
    print(f"#   {workers} worker(s), cache {cache_mb:g} MB, pipeline {'on' if pipeline else 'off'}: "
          f"{med('wall_s'):.2f} s/epoch, {int(med('steps'))} steps ({time.perf_counter() - t:.0f}s with start-up)",
          flush=True)
    return [workers, f"{cache_mb:g}", "on" if pipeline else "off", int(med("steps")), med("wall_s"),
            1e3 * med("sample_s"), 1e3 * med("fetch_s"), 1e3 * med("wait_s"), 1e3 * med("compute_s"),
            1e3 * med("sync_s"), med("bytes_fetched") / 1e6, f"{med('hit_rate'):.2f}", med("bytes_saved") / 1e6]


def epochs_section(args) -> list[list[object]]:
    """Sampled training epoch time with 1, 2, 4 workers, cache off and on; pipeline off for 2."""
    parts = epoch_graph(args)
    print(f"# epochs: sage, fan-outs {args.fanouts}, global batch {args.batch}, {args.epoch_threads} thread(s) per "
          f"worker, medians over epochs 2..{args.epochs} (the first warms up; a last one, evaluated, is dropped)")
    runs = [(w, c, True) for w in args.epoch_workers for c in (0.0, args.epoch_cache_mb)]
    if 2 in args.epoch_workers:
        runs += [(2, c, False) for c in (0.0, args.epoch_cache_mb)]
    return [epoch_run(args, parts, *run) for run in runs]


SECTIONS: dict[str, tuple[Callable, list[str]]] = {
    "sampling": (sampling_section, ["case", "edges/batch", "ms/batch", "M edges/s", "ratio vs DGL"]),
    "epochs": (epochs_section, ["workers", "cache MB", "pipeline", "steps", "epoch s", "sample ms", "fetch ms",
                                "wait ms", "train ms", "sync ms", "fetched MB", "hit rate", "MB saved"]),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--edges", default="10M", help="R-MAT edges (e.g. 1M, 10M)")
    p.add_argument("--nodes", type=int, default=None, help="R-MAT nodes (default 2^round(log2(E/16)))")
    p.add_argument("--fanouts", default="15,10", help="per-hop fan-outs, comma separated")
    p.add_argument("--batch", type=int, default=1024, help="seeds per batch")
    p.add_argument("--batches", type=int, default=20, help="batches per timed round")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds per case (median reported)")
    p.add_argument("--seeds", default="nonisolated", choices=("nonisolated", "any"),
                   help="draw seeds among nodes with an in-edge (default) or among all nodes")
    p.add_argument("--graph-seed", type=int, default=0)
    p.add_argument("--batch-seed", type=int, default=0)
    p.add_argument("--sections", default="sampling", help=f"comma list of {', '.join(SECTIONS)} (default: sampling)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's choice, one per core)")
    p.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                   help="wall time, or this process's CPU time (stabler on a shared machine with --threads 1)")
    g = p.add_argument_group("epochs section")
    g.add_argument("--epoch-nodes", type=int, default=200_000, help="SBM nodes (default 200000, ~2M edges)")
    g.add_argument("--epoch-workers", default="1,2,4", help="worker counts (default 1,2,4)")
    g.add_argument("--epoch-cache-mb", type=float, default=4.0, help="per-worker cache when on, MiB (default 4)")
    g.add_argument("--epochs", type=int, default=4,
                   help="epochs per run before a last, evaluated one; the first is a warm-up (default 4)")
    g.add_argument("--epoch-threads", type=int, default=1, help="torch threads per worker (default 1)")
    g.add_argument("--train-frac", type=float, default=0.1, help="share of nodes used as training seeds")
    g.add_argument("--workdir", help="keep the partition here and reuse it (default: a temporary directory)")
    args = p.parse_args(argv)
    args.epoch_workers = sorted({int(x) for x in args.epoch_workers.split(",")})
    if args.epochs < 2:
        p.error("--epochs must be >= 2 (the first epoch is a warm-up)")
    if args.threads:
        torch.set_num_threads(args.threads)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        p.error(f"unknown section(s) {bad}; available: {', '.join(SECTIONS)}")

    print(f"# distgnn sampling benchmark: {environment()}")
    warn_if_busy()
    start = time.perf_counter()
    for name in sections:
        section, headers = SECTIONS[name]
        rows = section(args)
        print(f"\n## {name}")
        print(format_table(headers, rows))
    print(f"\ntotal {time.perf_counter() - start:.0f}s; {load_note()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
