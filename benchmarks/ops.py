"""Neighbour aggregation kernels side by side: distgnn.ops vs plain torch (vs torch-scatter).

For every reduction (sum, mean, max) over the incoming edges of each node, forward+backward of
``out = aggregate_{j -> i} x_j`` (``x [N, F]`` requires grad, ``loss = out.sum()``) with:

====================  ================================================================================
column                what runs
====================  ================================================================================
distgnn scatter       ``distgnn.ops.scatter(x.index_select(0, src), dst, N, reduce)``: the message
                      path of ``MessagePassing`` (layers with their own ``message``)
distgnn spmm          ``distgnn.ops.spmm(graph.csr(), w, x)`` with the graph's cached CSR (``w = None``
                      for sum, ``1/deg[dst]`` for mean, as ``MessagePassing`` does); no max
plain torch           ``x.index_select(0, src)`` then ``index_add_`` (sum, mean: divided by the
                      in-degree) or ``scatter_reduce_(amax)`` (max): the baseline
PyG scatter           ``torch_geometric.utils.scatter`` (``scatter_add_`` / ``scatter_reduce_``), what
                      PyG layers use when torch-scatter is absent
torch-scatter         ``torch_scatter.scatter`` when installed
====================  ================================================================================

Outputs and input gradients are checked against plain torch (float32, max |diff| < 1e-4); the run
fails when they disagree. Timings interleave the columns (see ``benchmarks/_common.py``).

Usage::

    python benchmarks/ops.py [--nodes 100000] [--edges 2000000] [--features 64] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable

import torch
from torch import Tensor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

from benchmarks._common import (  # noqa: E402
    environment,
    format_table,
    fwd_bwd,
    load_note,
    max_abs_diff,
    ms,
    time_interleaved,
    uniform_graph,
    warn_if_busy,
)

import distgnn.ops as ops  # noqa: E402
from distgnn.graph import Graph  # noqa: E402

TOL = 1e-4
REDUCTIONS = ("sum", "mean", "max")

try:
    import torch_scatter  # type: ignore
except ImportError:
    torch_scatter = None
try:
    from torch_geometric.utils import scatter as pyg_scatter
except ImportError:
    pyg_scatter = None


def plain(x: Tensor, src: Tensor, dst: Tensor, n: int, reduce: str, inv_deg: Tensor) -> Tensor:
    msg = x.index_select(0, src)  # (E, F)
    out = x.new_zeros(n, x.shape[1])
    if reduce == "max":
        idx = dst.view(-1, 1).expand_as(msg)
        return out.scatter_reduce_(0, idx, msg, "amax", include_self=False)
    out = out.index_add_(0, dst, msg)  # (N, F)
    return out * inv_deg.view(-1, 1) if reduce == "mean" else out


def cases_for(reduce: str, graph: Graph, inv_deg: Tensor) -> dict[str, Callable[[Tensor], Tensor]]:
    src, dst = graph.edge_index
    n = graph.num_nodes
    csr = graph.csr()
    fns: dict[str, Callable[[Tensor], Tensor]] = {
        "distgnn scatter": lambda x: ops.scatter(x.index_select(0, src), dst, n, reduce),
    }
    if reduce == "sum":
        fns["distgnn spmm"] = lambda x: ops.spmm(csr, None, x)
    elif reduce == "mean":
        deg = graph.in_degree(dtype=torch.float32)

        def spmm_mean(x: Tensor) -> Tensor:  # as MessagePassing._spmm does, weights per call
            w = (1.0 / deg.clamp(min=1)).index_select(0, dst)  # (E,)
            return ops.spmm(csr, w, x)

        fns["distgnn spmm"] = spmm_mean
    fns["plain torch"] = lambda x: plain(x, src, dst, n, reduce, inv_deg)
    if pyg_scatter is not None:
        fns["PyG scatter"] = lambda x: pyg_scatter(x.index_select(0, src), dst, 0, n, reduce)
    if torch_scatter is not None:
        fns["torch-scatter"] = lambda x: torch_scatter.scatter(x.index_select(0, src), dst, 0, None, n, reduce)
    return fns


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=100_000)
    p.add_argument("--edges", type=int, default=2_000_000)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5, help="timed rounds per case (median reported)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's choice, one per core)")
    p.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                   help="wall time, or this process's CPU time (stabler on a shared machine with --threads 1)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"# distgnn.ops aggregation kernels: {environment()}")
    warn_if_busy()
    if torch_scatter is None:
        print("# torch-scatter not installed: its column is skipped")
    if pyg_scatter is None:
        print("# torch-geometric not installed: the PyG scatter column is skipped")
    start = time.perf_counter()
    edge_index = uniform_graph(args.nodes, args.edges, seed=0)
    graph = Graph(edge_index, args.nodes)
    t0 = time.perf_counter()
    graph.csr()
    csr_s = time.perf_counter() - t0
    print(f"# graph: {args.nodes} nodes, {graph.num_edges} edges (uniform random, undirected), "
          f"{args.features} features; forward+backward, float32, median of {args.repeats} interleaved "
          f"runs after 1 warm-up ({args.clock} clock)")
    print(f"# distgnn CSR views (both orientations) built once per graph in {ms(csr_s):.0f} ms, not timed below")

    torch.manual_seed(0)
    x = torch.randn(args.nodes, args.features).requires_grad_()
    inv_deg = 1.0 / graph.in_degree(dtype=torch.float32).clamp(min=1)
    columns = ["distgnn scatter", "distgnn spmm", "plain torch", "PyG scatter", "torch-scatter"]
    rows, failures = [], []
    for reduce in REDUCTIONS:
        fns = cases_for(reduce, graph, inv_deg)
        # correctness against plain torch, outputs and input gradients
        ref_out, ref_grad = _run(fns["plain torch"], x)
        diffs = {}
        for name, fn in fns.items():
            out, grad = _run(fn, x)
            diffs[name] = (max_abs_diff(out, ref_out), max_abs_diff(grad, ref_grad))
            if not (diffs[name][0] < TOL and diffs[name][1] < TOL):
                failures.append(f"{reduce}/{name}: differs from plain torch by {diffs[name][0]:.3e} (output), "
                                f"{diffs[name][1]:.3e} (gradient)")
        worst = max(max(d) for d in diffs.values())
        print(f"  {reduce}: max |diff| vs plain torch over all columns (output, dL/dx) = {worst:.2e}", flush=True)
        t1 = time.perf_counter()
        t = time_interleaved({name: fwd_bwd(fn, x) for name, fn in fns.items()}, repeats=args.repeats, warmup=1,
                             clock=args.clock)
        print(f"  timed {reduce} in {time.perf_counter() - t1:.1f}s", flush=True)
        base = t["plain torch"]
        row = [reduce] + [ms(t[c]) if c in t else "n/a" for c in columns]
        row += [t["distgnn scatter"] / base, t["distgnn spmm"] / base if "distgnn spmm" in t else "n/a", worst]
        rows.append(row)

    print()
    headers = ["reduce"] + [f"{c} ms" for c in columns] + ["scatter/plain", "spmm/plain", "max|diff|"]
    print(format_table(headers, rows))
    print("\nratios: distgnn / plain torch (< 1: distgnn faster)")
    print(f"total {time.perf_counter() - start:.0f}s; {load_note()}")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


def _run(fn: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    """Output and the gradient of ``(out * r).sum()`` for a fixed random ``r`` (with ``out.sum()``
    the gradient of a sum would just be each node's out-degree)."""
    xx = x.detach().clone().requires_grad_()
    out = fn(xx)
    r = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    (out * r).sum().backward()
    return out.detach(), xx.grad


if __name__ == "__main__":
    sys.exit(main())
