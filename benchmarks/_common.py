"""Helpers shared by the benchmarks: interleaved timing, result tables and the benchmark graphs.

Timing protocol (:func:`time_interleaved`): every case runs ``warmup`` times untimed, then
``repeats`` rounds in which each case runs once; the order of the cases is reversed every other
round (A B, B A, A B, ...) so that drifting machine noise (frequency, a neighbour process, the
allocator) hits every case alike. The figure reported is the median over the rounds. The garbage
collector runs before every timed call, outside the timed region, and is disabled inside it.
"""
from __future__ import annotations

import gc
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor

# Cora as the Planetoid files give it (both directions of every undirected edge, no loops).
CORA_NODES, CORA_EDGES = 2708, 10556


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_interleaved(
    cases: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 1, clock: str = "wall"
) -> dict[str, float]:
    """Median time in seconds of each zero-argument callable (see the module docstring).

    ``clock="wall"`` measures elapsed time; ``clock="cpu"`` the CPU time of this process (user +
    system, all threads), which is what to compare on a machine shared with other jobs when torch
    runs one thread (``--threads 1``): time spent descheduled is then not counted.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    now = CLOCKS[clock]
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    try:
        for r in range(repeats):
            for name in names if r % 2 == 0 else reversed(names):
                gc.collect()
                gc.disable()
                t0 = now()
                cases[name]()
                samples[name].append(now() - t0)
                gc.enable()
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: statistics.median(s) for name, s in samples.items()}


def fwd_bwd(forward: Callable[[Tensor], Tensor], x: Tensor, params: Sequence[Tensor] = ()) -> Callable[[], Tensor]:
    """A closure running ``forward(x).sum().backward()``. Gradients are set to ``None`` first, so
    every run allocates them afresh, as after ``optimizer.zero_grad()``."""

    def run() -> Tensor:
        x.grad = None
        for p in params:
            p.grad = None
        out = forward(x)
        out.sum().backward()
        return out

    return run


def max_abs_diff(a: Tensor, b: Tensor) -> float:
    if a.shape != b.shape:
        raise AssertionError(f"shape mismatch: {tuple(a.shape)} vs {tuple(b.shape)}")
    return float((a.detach().double() - b.detach().double()).abs().max()) if a.numel() else 0.0


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table with right-aligned columns (the first column left-aligned)."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def _fmt(c: object) -> str:
    if isinstance(c, float):
        return f"{c:.3g}" if abs(c) < 1e-2 and c != 0 else f"{c:.2f}"
    return str(c)


def ms(seconds: float) -> float:
    return seconds * 1e3


# -- graphs ---------------------------------------------------------------------------------------
@dataclass
class BenchGraph:
    name: str
    edge_index: Tensor  # [2, E] int64, no self-loops, no duplicates
    num_nodes: int
    source: str  # how it was obtained, printed in the header

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])


def simple_edges(src: Tensor, dst: Tensor, num_nodes: int) -> Tensor:
    """Drop self-loops and duplicate edges; edges sorted by (source, target) as PyG's coalesce."""
    keep = src != dst
    key = torch.unique(src[keep] * num_nodes + dst[keep])  # sorted
    return torch.stack([key // num_nodes, key % num_nodes])


def uniform_graph(num_nodes: int, num_edges: int, seed: int = 0) -> Tensor:
    """An undirected graph (both directions of every edge stored) with about ``num_edges`` edges:
    ``num_edges / 2`` node pairs drawn uniformly at random, loops and duplicates removed.

    Undirected like Cora: on a directed graph PyG's ChebConv (``get_laplacian``) takes degrees
    over edge sources while distgnn (spec: ``deg`` is the in-degree) takes them over targets.
    """
    gen = torch.Generator().manual_seed(seed)
    pairs = num_edges // 2
    src = torch.randint(num_nodes, (pairs,), generator=gen)
    dst = torch.randint(num_nodes, (pairs,), generator=gen)
    return simple_edges(torch.cat([src, dst]), torch.cat([dst, src]), num_nodes)


def load_cora() -> BenchGraph:
    """Cora through ``distgnn.data.load_planetoid`` when available, else a random graph of its size."""
    try:
        from distgnn.data import load_planetoid  # being written concurrently; optional

        data = load_planetoid("cora")
        ei = data.edge_index
        return BenchGraph("cora", simple_edges(ei[0], ei[1], data.num_nodes), data.num_nodes,
                          "distgnn.data.load_planetoid('cora')")
    except Exception as exc:  # noqa: BLE001 - ImportError, missing files, a half-written module
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
        ei = uniform_graph(CORA_NODES, CORA_EDGES, seed=0)
        return BenchGraph("cora", ei, CORA_NODES, f"random graph of Cora's size ({reason})")


def synthetic_graph(num_nodes: int, num_edges: int, generator: str = "uniform", seed: int = 0) -> BenchGraph:
    """An undirected graph of about ``num_edges`` edges: ``uniform`` (:func:`uniform_graph`), or
    ``sbm`` / ``rmat`` from ``distgnn.data`` when importable (else uniform, with a note)."""
    name = f"synthetic-{num_nodes // 1000}k"
    if generator in ("sbm", "rmat"):
        try:
            from distgnn import data as dgdata

            if generator == "sbm":
                d = dgdata.sbm(num_nodes=num_nodes, avg_degree=num_edges / num_nodes, num_features=0,
                               train_per_class=0, num_val=0, num_test=0, seed=seed)
            else:
                d = dgdata.rmat(num_nodes=num_nodes, num_edges=num_edges // 2, undirected=True, seed=seed)
            ei = simple_edges(d.edge_index[0], d.edge_index[1], num_nodes)
            return BenchGraph(name, ei, num_nodes, f"distgnn.data.{generator}")
        except Exception as exc:  # noqa: BLE001
            print(f"note: distgnn.data.{generator} unavailable ({type(exc).__name__}: {exc}); "
                  "using a uniform random graph", file=sys.stderr)
    elif generator != "uniform":
        raise ValueError(f"unknown generator {generator!r}; use uniform, sbm or rmat")
    return BenchGraph(name, uniform_graph(num_nodes, num_edges, seed), num_nodes, "uniform random edges")


def environment() -> str:
    import platform

    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"python {platform.python_version()}, {platform.machine()}")


def load_note() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:  # pragma: no cover - not on every platform
        return "load average unknown"
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def warn_if_busy() -> None:
    """Say so when other processes compete for the cores: with one intra-op thread per core,
    torch's parallel regions then wait on descheduled threads and timings grow long tails."""
    print(f"# {load_note()}")
    try:
        busy = os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1)
    except OSError:  # pragma: no cover
        busy = False
    if busy and torch.get_num_threads() > 1:
        print("# WARNING: the machine is busy; timings will be noisy (try --threads 1 for stabler ratios)")
