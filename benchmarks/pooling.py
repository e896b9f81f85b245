"""MemPooling and EquilibriumAggregation against torch-geometric: same weights, same outputs, timings.

Each case builds the distgnn module, copies its weights into the PyG module (the converters of
``scripts/make_fixtures.py``), checks that outputs and input gradients agree in float32 (the run
fails otherwise), then times forward+backward (``x`` requires grad, loss = the sum of the outputs),
distgnn and PyG interleaved (see ``benchmarks/_common.py``).

===========================  ====================================================================
case                         what runs
===========================  ====================================================================
MemPooling sparse            ``x [N, F]`` + sorted ``batch``: 128 graphs of 20-40 nodes
                             (ENZYMES-like), F = F' = 64, H = 4 heads, K = 10; loss ``out.sum() +
                             kl_loss(S)``
MemPooling dense             ``x [32, 128, 64]`` with a mask (about 3/4 real nodes), H = 4, K = 16;
                             same loss
MemPooling large             one graph of 20 000 nodes, F = 64, H = 8, K = 32 (``batch=None``)
Equilibrium readout          256 groups of 20-60 rows (graph readout), F = C = 32, potential
                             [32, 32], 5 steps
Equilibrium messages         the aggregate of a message-passing layer: the 10 556 edges of a
                             Cora-sized graph reduced onto its 2 708 nodes, F = C = 16, potential
                             [32], 5 steps
===========================  ====================================================================

PyG's EquilibriumAggregation starts its descent in float32, which is also the dtype here, so both
compute the same thing; it differentiates the potential with ``torch.autograd.grad(...,
create_graph=True)`` at every step, distgnn with a closed-form gradient that projects ``x`` once.

On a machine shared with other jobs, ``--threads 1 --clock cpu`` gives far stabler ratios than
the default (wall clock, one thread per core).

Usage::

    python benchmarks/pooling.py [--cases mempool-sparse,...] [--repeats 5] [--threads N] [--clock wall|cpu]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

from benchmarks._common import (  # noqa: E402
    CORA_EDGES,
    CORA_NODES,
    environment,
    format_table,
    load_note,
    max_abs_diff,
    ms,
    time_interleaved,
    uniform_graph,
    warn_if_busy,
)
from distgnn.layers import EquilibriumAggregation, MemPooling  # noqa: E402

TOL = 1e-4  # float32, relative to the largest |output| (and |gradient|)


@dataclass
class Case:
    """One comparison: ``run_dg(x)`` / ``run_pyg(x)`` return the tensor whose sum is the loss."""

    name: str
    x: Tensor
    run_dg: Callable[[Tensor], Tensor]
    run_pyg: Callable[[Tensor], Tensor]
    params_dg: list
    params_pyg: list
    note: str


def _lengths(num: int, lo: int, hi: int, gen: torch.Generator) -> Tensor:
    return torch.randint(lo, hi + 1, (num,), generator=gen)


def mempool_case(name: str, f: int, f_out: int, heads: int, clusters: int, form: str, gen: torch.Generator) -> Case:
    from scripts.make_fixtures import pyg_mempool_from_distgnn

    torch.manual_seed(0)
    dg = MemPooling(f, f_out, heads, clusters)
    pyg = pyg_mempool_from_distgnn(dg)
    if form == "sparse":
        batch = torch.repeat_interleave(torch.arange(128), _lengths(128, 20, 40, gen))
        x = torch.randn(batch.numel(), f, generator=gen)
        kw, note = {"batch": batch}, f"{batch.numel()} nodes in 128 graphs"
    elif form == "dense":
        x = torch.randn(32, 128, f, generator=gen)
        mask = torch.rand(32, 128, generator=gen) < 0.75
        kw, note = {"mask": mask}, "32 x 128 with a mask"
    else:
        x = torch.randn(20_000, f, generator=gen)
        kw, note = {}, "one graph"

    def run_dg(x_: Tensor) -> Tensor:
        out, s = dg(x_, **kw)
        return out.sum() + MemPooling.kl_loss(s)

    def run_pyg(x_: Tensor) -> Tensor:
        out, s = pyg(x_, **kw)
        return out.sum() + pyg.kl_loss(s)

    note += f", F={f}->{f_out}, H={heads}, K={clusters}"
    return Case(name, x.requires_grad_(), run_dg, run_pyg, list(dg.parameters()), list(pyg.parameters()), note)


def equilibrium_case(name: str, f: int, c: int, hidden: list[int], form: str, gen: torch.Generator) -> Case:
    from scripts.make_fixtures import pyg_equilibrium_from_distgnn

    torch.manual_seed(0)
    dg = EquilibriumAggregation(f, c, hidden, grad_iter=5)
    pyg = pyg_equilibrium_from_distgnn(dg)
    if form == "readout":
        index = torch.repeat_interleave(torch.arange(256), _lengths(256, 20, 60, gen))
        groups, note = 256, f"{index.numel()} rows in 256 groups"
    else:
        edge_index = uniform_graph(CORA_NODES, CORA_EDGES, seed=0)
        index, groups = edge_index[1], CORA_NODES
        note = f"{index.numel()} messages onto {groups} nodes"
    x = torch.randn(index.numel(), f, generator=gen)
    note += f", F={f}->{c}, potential {hidden}, 5 steps"
    return Case(name, x.requires_grad_(), lambda x_: dg(x_, index, dim_size=groups),
                lambda x_: pyg(x_, index, dim_size=groups), list(dg.parameters()), list(pyg.parameters()), note)


CASES = {
    "mempool-sparse": lambda g: mempool_case("MemPooling sparse", 64, 64, 4, 10, "sparse", g),
    "mempool-dense": lambda g: mempool_case("MemPooling dense", 64, 64, 4, 16, "dense", g),
    "mempool-large": lambda g: mempool_case("MemPooling large", 64, 64, 8, 32, "large", g),
    "equilibrium-readout": lambda g: equilibrium_case("Equilibrium readout", 32, 32, [32, 32], "readout", g),
    "equilibrium-messages": lambda g: equilibrium_case("Equilibrium messages", 16, 16, [32], "messages", g),
}


def _timed(run: Callable[[Tensor], Tensor], x: Tensor, params: list) -> Callable[[], None]:
    def step() -> None:
        x.grad = None
        for p in params:
            p.grad = None
        run(x).sum().backward()

    return step


def check(case: Case) -> tuple[float, float, str | None]:
    """Max |diff| of the outputs and of ``dL/dx`` (relative to the largest entry), or a failure."""
    xd, xp = case.x.detach().clone().requires_grad_(), case.x.detach().clone().requires_grad_()
    od, op = case.run_dg(xd), case.run_pyg(xp)
    r = torch.randn(od.shape, generator=torch.Generator().manual_seed(2))
    (od * r).sum().backward()
    (op * r).sum().backward()
    scale_o, scale_g = max(float(op.abs().max()), 1e-30), max(float(xp.grad.abs().max()), 1e-30)
    d_out, d_grad = max_abs_diff(od, op) / scale_o, max_abs_diff(xd.grad, xp.grad) / scale_g
    print(f"  check {case.name}: float32 max|out diff| / max|out| = {d_out:.2e}, "
          f"max|dL/dx diff| / max|dL/dx| = {d_grad:.2e}", flush=True)
    bad = d_out >= TOL or d_grad >= TOL
    return d_out, d_grad, f"{case.name}: outputs/gradients differ ({d_out:.2e}, {d_grad:.2e})" if bad else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds per case (median reported)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's choice, one per core)")
    p.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                   help="wall time, or this process's CPU time (stabler on a shared machine with --threads 1)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    chosen = [s.strip() for s in args.cases.split(",") if s.strip()]
    if any(s not in CASES for s in chosen):
        p.error(f"unknown case(s) {[s for s in chosen if s not in CASES]}; use {', '.join(CASES)}")
    try:
        import torch_geometric
    except ImportError:  # pragma: no cover - the bench extra
        sys.exit("torch-geometric is needed: pip install 'distgnn[bench]'")

    print(f"# distgnn vs torch-geometric {torch_geometric.__version__}: {environment()}")
    warn_if_busy()
    print(f"# forward+backward, float32, median of {args.repeats} interleaved runs after 1 warm-up "
          f"({args.clock} clock); ratio = distgnn / PyG (< 1: distgnn faster)")
    start = time.perf_counter()
    rows, failures = [], []
    gen = torch.Generator().manual_seed(0)
    for key in chosen:
        case = CASES[key](gen)
        d_out, d_grad, failure = check(case)
        if failure:
            print(f"  MISMATCH: {failure}", file=sys.stderr, flush=True)
            failures.append(failure)
        t0 = time.perf_counter()
        t = time_interleaved({"distgnn": _timed(case.run_dg, case.x, case.params_dg),
                              "pyg": _timed(case.run_pyg, case.x, case.params_pyg)},
                             repeats=args.repeats, warmup=1, clock=args.clock)
        print(f"  timed {case.name} in {time.perf_counter() - t0:.1f}s", flush=True)
        rows.append([case.name, ms(t["distgnn"]), ms(t["pyg"]), t["distgnn"] / t["pyg"], d_out, d_grad, case.note])
    print()
    print(format_table(["case", "distgnn ms", "PyG ms", "ratio", "rel|diff| out", "rel|diff| dx", "notes"], rows))
    print(f"\ntotal {time.perf_counter() - start:.0f}s; {load_note()}")
    if failures:
        print("\nFAILED: distgnn and PyG disagree:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
