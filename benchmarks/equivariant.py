"""distgnn.equivariant.MessagePass against e3x 1.0.2's MessagePass (JAX on CPU, jit-compiled, warm).

Graph: ``--nodes`` points uniformly in a cube whose density gives about ``--neighbours``
neighbours within the cutoff (3.0), every ordered pair closer than the cutoff an edge (sparse
lists sorted by target, ``indices_are_sorted=True`` on both sides). Inputs: features
``x [N, 1, (L+1)^2, F]`` (``--max-degree`` L, ``--features`` F), the basis
``basic_gaussian(K) * smooth_cutoff`` times spherical harmonics up to degree L, computed once and
given to both. Both tensor products are timed (``Tensor``, and ``FusedTensor`` with
``--products tensor,fused``). The weights are e3x's initialisation converted to distgnn's layout
(``scripts/make_fixtures.e3x_to_distgnn``); outputs and gradients are checked to agree (float32,
relative to the largest entry, < 1e-4) before anything is timed.

Timed: forward (distgnn under ``torch.no_grad``; e3x ``jit(apply)``) and forward+backward
(``loss = out.sum()``; gradients w.r.t. ``x``, the basis and every parameter; e3x
``jit(grad)``), distgnn and e3x alternating (``benchmarks/_common.time_interleaved``), median
of ``--repeats`` rounds after a warm-up (which includes e3x's compilation).

Threads: ``--threads N`` sets torch's intra-op threads; ``--threads 1`` also restricts XLA to
one thread (``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``,
set before jax is imported). On a shared machine use ``--threads 1 --clock cpu``.

Memory: e3x contracts dense per-edge coupling tensors; at the default size (10k nodes, ~300k
edges, L=2, F=32) its forward+backward peaks near 14 GB (distgnn: ~2 GB). ``--nodes 3000`` needs
about 4 GB. Without jax/e3x installed (``pip install e3x==1.0.2``) only distgnn is timed.

Usage::

    python benchmarks/equivariant.py [--nodes 10000] [--neighbours 30] [--max-degree 2] [--features 32]
        [--num-basis 16] [--products tensor,fused] [--repeats 3] [--threads N] [--clock wall|cpu]
"""
from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from anywhere

CUTOFF = 3.0


def radius_graph(n: int, neighbours: float, seed: int = 0):
    """Positions ``[n, 3]`` and ``(dst, src)`` of every ordered pair closer than ``CUTOFF``, sorted by ``dst``."""
    import torch

    side = (n * 4 / 3 * math.pi * CUTOFF**3 / neighbours) ** (1 / 3)
    unit = torch.rand(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    for _ in range(2):  # the second pass shrinks the box to make up for the neighbours missing at its faces
        pos = unit * side
        dsts, srcs = [], []
        for start in range(0, n, 1024):  # chunked distances: O(chunk * n) memory
            d = torch.cdist(pos[start : start + 1024], pos)
            i, j = torch.nonzero((d < CUTOFF) & (d > 0), as_tuple=True)
            dsts.append(i + start)
            srcs.append(j)
        dst, src = torch.cat(dsts), torch.cat(srcs)
        side *= (dst.numel() / n / neighbours) ** (1 / 3)
    return pos, dst, src


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=10_000)
    p.add_argument("--neighbours", type=float, default=30.0, help="expected neighbours per node (interior)")
    p.add_argument("--max-degree", type=int, default=2)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--num-basis", type=int, default=16)
    p.add_argument("--products", default="tensor,fused", help="comma list of tensor, fused")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per case (median reported)")
    p.add_argument("--threads", type=int, default=None, help="torch (and, with 1, XLA) intra-op threads")
    p.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                   help="wall time, or this process's CPU time (stabler on a shared machine with --threads 1)")
    args = p.parse_args(argv)
    products = [s.strip() for s in args.products.split(",") if s.strip()]
    if any(s not in ("tensor", "fused") for s in products):
        p.error(f"unknown product(s) in {args.products!r}; use tensor, fused")
    if args.threads == 1:  # before jax is imported
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()

    import torch

    from benchmarks._common import environment, format_table, load_note, ms, time_interleaved, warn_if_busy
    from distgnn.equivariant import MessagePass, basis, radial

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        import e3x
        import jax
        import jax.numpy as jnp

        from scripts.make_fixtures import e3x_to_distgnn
        have_e3x = f"e3x {e3x.__version__}, jax {jax.__version__}"
    except ImportError as exc:
        have_e3x = None
        print(f"# e3x unavailable ({exc}); timing distgnn only (pip install e3x==1.0.2 to compare)")

    L, F, K = args.max_degree, args.features, args.num_basis
    pos, dst, src = radius_graph(args.nodes, args.neighbours)
    n, e = pos.shape[0], dst.numel()
    g = torch.Generator().manual_seed(1)
    b = basis(pos[src] - pos[dst], max_degree=L, num=K,
              radial_fn=functools.partial(radial.basic_gaussian, limit=CUTOFF),
              cutoff_fn=functools.partial(radial.smooth_cutoff, cutoff=CUTOFF)).float()  # (E, 1, D, K)
    x = torch.randn(n, 1, (L + 1) ** 2, F, generator=g)
    print(f"# distgnn MessagePass vs {have_e3x or 'nothing'}: {environment()}")
    warn_if_busy()
    print(f"# {n} nodes, {e} edges ({e / n:.1f} per node), max_degree {L}, F={F}, K={K}, float32; median of "
          f"{args.repeats} alternating runs after a warm-up ({args.clock} clock); "
          "ratio = distgnn / e3x (< 1: distgnn faster)")
    start = time.perf_counter()
    rows, failures = [], []
    for product in products:
        fused = product == "fused"
        mp = MessagePass(use_fused_tensor=fused)
        cases_fwd, cases_fb = {}, {}
        xd, bd = x.clone().requires_grad_(), b.clone().requires_grad_()

        def d_fwd(mp=mp):
            with torch.no_grad():
                return mp(x, b, dst_idx=dst, src_idx=src, indices_are_sorted=True)

        def d_fb(mp=mp, xd=xd, bd=bd):
            xd.grad = bd.grad = None
            mp.zero_grad(set_to_none=True)
            out = mp(xd, bd, dst_idx=dst, src_idx=src, indices_are_sorted=True)
            out.sum().backward()
            return out

        diff = "-"
        if have_e3x:
            em = e3x.nn.MessagePass(use_fused_tensor=fused)
            jx, jb = jnp.asarray(x.numpy()), jnp.asarray(b.numpy())
            jd, js = jnp.asarray(dst.numpy()), jnp.asarray(src.numpy())
            params = em.init(jax.random.PRNGKey(0), jx, jb, dst_idx=jd, src_idx=js)
            with torch.no_grad():
                mp.materialize(1, L, F, K, L)
                mp.load_state_dict(e3x_to_distgnn(params, 1, L, False, fused))
            apply = jax.jit(lambda prm, xx, bb, d, s: em.apply(prm, xx, bb, dst_idx=d, src_idx=s, num_segments=n,
                                                               indices_are_sorted=True))
            grad = jax.jit(jax.grad(lambda prm, xx, bb, d, s: jnp.sum(apply(prm, xx, bb, d, s)), argnums=(0, 1, 2)))
            ref = torch.tensor(jax.device_get(apply(params, jx, jb, jd, js)))
            g_params, g_x, g_b = grad(params, jx, jb, jd, js)
            out = d_fb()
            scale = float(ref.abs().max())
            diff_out = float((out.detach() - ref).abs().max()) / scale
            diff_x = float((xd.grad - torch.tensor(jax.device_get(g_x))).abs().max()) / float(xd.grad.abs().max())
            diff_b = float((bd.grad - torch.tensor(jax.device_get(g_b))).abs().max()) / float(bd.grad.abs().max())
            diff = f"{max(diff_out, diff_x, diff_b):.1e}"
            if max(diff_out, diff_x, diff_b) > 1e-4:
                failures.append(
                    f"{product}: relative max|diff| out {diff_out:.2e}, dx {diff_x:.2e}, dbasis {diff_b:.2e}")
            cases_fwd["e3x"] = lambda: jax.block_until_ready(apply(params, jx, jb, jd, js))
            cases_fb["e3x"] = lambda: jax.block_until_ready(grad(params, jx, jb, jd, js))
        cases_fwd["distgnn"], cases_fb["distgnn"] = d_fwd, d_fb
        for what, cases in (("forward", cases_fwd), ("forward+backward", cases_fb)):
            t = time_interleaved(cases, repeats=args.repeats, warmup=1, clock=args.clock)
            e3x_ms = ms(t["e3x"]) if "e3x" in t else float("nan")
            ratio = t["distgnn"] / t["e3x"] if "e3x" in t else float("nan")
            rows.append([f"MessagePass({product})", what, ms(t["distgnn"]), e3x_ms, ratio, diff])
            print(f"  {product:6s} {what:16s} distgnn {ms(t['distgnn']):9.1f} ms   e3x {e3x_ms:9.1f} ms", flush=True)
    print()
    print(format_table(["layer", "pass", "distgnn ms", "e3x ms", "ratio", "max rel |diff|"], rows))
    print(f"\ntotal {time.perf_counter() - start:.0f}s; {load_note()}")
    if failures:
        print("\nFAILED: distgnn and e3x disagree:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
