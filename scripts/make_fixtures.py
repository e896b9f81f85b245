"""Write the reference fixtures: numbers computed by reference libraries, stored for the tests.

CI installs none of the reference libraries, so the tests that compare distgnn with them
(``tests/layers/test_pyg_fixtures.py``, ...) read small files computed here once, by hand, in an
environment that has both the library and distgnn (installed editable, without dependencies)::

    python scripts/make_fixtures.py               # every section
    python scripts/make_fixtures.py --only pyg    # one section (comma-separated list allowed)
    python scripts/make_fixtures.py --list        # the sections

Each section belongs to one library and writes under ``tests/fixtures/<section>/``; rerun a
section after changing what it computes and commit the files with the change. Sections are listed
in :data:`SECTIONS` (name -> function ``fn(out_dir: Path) -> list[Path]``). Module-level imports are
the standard library and torch only: a section imports its library inside its own functions, so a
missing library stops only its own section. Section functions are named after their library
(``pyg_*`` here).

File format (every section): ``torch.save`` of one dict of plain values, loadable with
``torch.load(path, weights_only=True)``:

==============  =================================================================================
key             value
==============  =================================================================================
``config``      constructor arguments and options (ints, floats, lists, strings), plus the
                library and torch versions that produced the file
``inputs``      the input tensors (and loss weights ``w_*`` defining ``loss = sum(out * w)``)
``state``       the distgnn module's ``state_dict`` (the reference ran with these weights,
                converted to its own layout)
``outputs``     the reference's outputs
``grads``       gradients of the loss with respect to ``x`` and to every parameter, in distgnn's
                parameter names and layouts
``*_<variant>`` optional extra ``outputs``/``grads`` of the reference run another way (e.g.
                ``outputs_float64_start``, see :func:`pyg_equilibrium_from_distgnn`)
==============  =================================================================================

Sections:

- ``pyg``: torch-geometric's ``MemPooling`` (sparse input with ``batch``, dense input with a mask,
  several heads, ``tau != 1``, ``max_num_nodes`` padding and truncation, more than 25 rows so
  ``cdist`` takes its matrix-product path, ``kl_loss``) and ``EquilibriumAggregation`` (0 to 3
  hidden layers, several ``grad_iter``, empty groups, trailing empty groups through
  ``dim_size``), in float64.
"""
from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(ROOT))  # distgnn from this checkout


def _gen(name: str) -> torch.Generator:
    """A generator seeded from a case name (stable across runs and machines)."""
    return torch.Generator().manual_seed(zlib.crc32(name.encode()))


def _save(path: Path, record: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(record, path)
    return path


def _versions(library: str, version: str) -> dict:
    return {"library": library, "library_version": str(version), "torch_version": str(torch.__version__)}


# ================================================================================================
# pyg: torch-geometric
# ================================================================================================
def pyg_mempool_from_distgnn(m):
    """torch-geometric ``MemPooling`` holding the weights of distgnn's ``m`` (same dtype)."""
    from torch_geometric.nn.pool import MemPooling as PygMemPooling

    p = PygMemPooling(m.in_channels, m.out_channels, m.heads, m.num_clusters, m.tau).to(m.k.dtype)
    with torch.no_grad():
        p.k.copy_(m.k)  # [H, K, F] in both
        p.conv.weight.copy_(m.head_weight.view(1, -1, 1, 1))  # 1x1 Conv2d(H -> 1) = weighted head sum
        p.lin.weight.copy_(m.weight.t())  # torch layout [F', F]
    return p


def pyg_mempool_grads(p) -> dict:
    """Parameter gradients of PyG's ``MemPooling`` in distgnn's names and layouts."""
    return {"k": p.k.grad, "head_weight": p.conv.weight.grad.view(-1), "weight": p.lin.weight.grad.t()}


def _pyg_equilibrium_pairs(m, p) -> list:
    """``(distgnn parameter name, PyG parameter)`` for every parameter."""
    pot = p.potential
    pairs = []
    for k in range(len(m.hidden)):
        lin, norm = pot.layers[k][0], pot.layers[k][1]
        pairs += [(f"lins.{k}.weight", lin.weight), (f"lins.{k}.bias", lin.bias),
                  (f"norms.{k}.weight", norm.weight), (f"norms.{k}.bias", norm.bias)]
    last = pot.layers[len(m.hidden)]
    pairs += [("out.weight", last.weight), ("out.bias", last.bias)]
    for k, res in enumerate(pot.res_trans):
        pairs += [(f"res.{k}.weight", res.weight), (f"res.{k}.bias", res.bias)]
    pairs += [("raw_rate", p.optimizer._lr), ("raw_momentum", p.optimizer._mom), ("lamb", p.lamb)]
    return pairs


def pyg_equilibrium_from_distgnn(m, float64_start: bool = False):
    """torch-geometric ``EquilibriumAggregation`` holding the weights of distgnn's ``m``.

    PyG starts the descent from ``y = 0`` in float32 whatever the dtype; ``float64_start=True``
    starts it in the parameters' dtype instead (a subclass overriding ``init_output``, nothing
    else), which isolates that rounding from any other difference.
    """
    from torch_geometric.nn.aggr import EquilibriumAggregation as PygEquilibrium

    if float64_start:
        class PygEquilibrium(PygEquilibrium):  # noqa: F811 - the same class, y started in its dtype
            def init_output(self, dim_size: int) -> torch.Tensor:
                return torch.zeros(dim_size, self.output_dim, requires_grad=True, device=self.lamb.device,
                                   dtype=self.lamb.dtype)

    p = PygEquilibrium(m.in_channels, m.out_channels, list(m.hidden), grad_iter=m.grad_iter,
                       lamb=m.initial_lamb).to(m.lamb.dtype)
    ours = dict(m.named_parameters())
    with torch.no_grad():
        for name, param in _pyg_equilibrium_pairs(m, p):
            param.copy_(ours[name])  # same layouts (both torch Linear / LayerNorm)
    return p


def pyg_equilibrium_grads(m, p) -> dict:
    """Parameter gradients of PyG's ``EquilibriumAggregation`` in distgnn's names (zeros where
    a parameter does not reach the output)."""
    return {name: torch.zeros_like(param) if param.grad is None else param.grad.clone()
            for name, param in _pyg_equilibrium_pairs(m, p)}


# -- MemPooling -----------------------------------------------------------------------------------
PYG_MEMPOOL_CASES = {
    # name: (in, out, heads, clusters, tau, input form and options)
    "mempool-sparse-1head-tau1": (4, 3, 1, 3, 1.0, {"form": "sparse", "sizes": [3, 2, 5]}),
    "mempool-sparse-3heads-tau0.5-padded": (4, 2, 3, 4, 0.5, {"form": "sparse", "sizes": [4, 1, 3], "max_num_nodes": 6}),
    "mempool-sparse-2heads-truncated": (3, 3, 2, 2, 1.0, {"form": "sparse", "sizes": [5, 2, 4], "max_num_nodes": 3}),
    "mempool-dense-mask-2heads-tau2": (4, 3, 2, 3, 2.0, {"form": "dense", "batch": 3, "nodes": 5}),
    "mempool-dense-mask-4heads-large": (6, 4, 4, 5, 1.5, {"form": "dense", "batch": 2, "nodes": 20}),
}


def pyg_mempool_case(name: str, spec: tuple) -> dict:
    from torch_geometric import __version__ as pyg_version

    from distgnn.layers import MemPooling

    f, f_out, heads, clusters, tau, opts = spec
    torch.manual_seed(0)
    m = MemPooling(f, f_out, heads, clusters, tau).double()
    gen = _gen(name)
    inputs: dict = {}
    if opts["form"] == "sparse":
        batch = torch.cat([torch.full((n,), b, dtype=torch.long) for b, n in enumerate(opts["sizes"])])
        x = torch.randn(batch.numel(), f, generator=gen, dtype=torch.float64)
        inputs.update(x=x, batch=batch)
        call = {"batch": batch, "max_num_nodes": opts.get("max_num_nodes")}
    else:
        b, n = opts["batch"], opts["nodes"]
        x = torch.randn(b, n, f, generator=gen, dtype=torch.float64)
        mask = torch.rand(b, n, generator=gen) > 0.3
        mask[:, 0] = True
        inputs.update(x=x, mask=mask)
        call = {"mask": mask}
    p = pyg_mempool_from_distgnn(m)
    xr = x.clone().requires_grad_()
    out, s = p(xr, **call)
    kl = p.kl_loss(s)
    w_out = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    w_s = torch.randn(s.shape, generator=gen, dtype=torch.float64)
    ((out * w_out).sum() + (s * w_s).sum() + kl).backward()
    inputs.update(w_out=w_out, w_s=w_s)
    config = {"in_channels": f, "out_channels": f_out, "heads": heads, "num_clusters": clusters, "tau": tau,
              "max_num_nodes": opts.get("max_num_nodes"), **_versions("torch_geometric", pyg_version)}
    return {
        "config": config,
        "inputs": inputs,
        "state": dict(m.state_dict()),
        "outputs": {"out": out.detach(), "s": s.detach(), "kl": kl.detach()},
        "grads": {"x": xr.grad, **pyg_mempool_grads(p)},
    }


# -- EquilibriumAggregation -------------------------------------------------------------------------
PYG_EQUILIBRIUM_CASES = {
    # name: (in, out, hidden sizes, grad_iter, lamb, group sizes, dim_size)
    "equilibrium-no-hidden": (3, 2, [], 3, 0.1, [2, 0, 3, 1], None),
    "equilibrium-1-hidden-default-steps": (4, 3, [8], 5, 0.1, [3, 4, 0, 2], 6),
    "equilibrium-2-hidden": (3, 4, [6, 5], 4, 0.5, [1, 0, 0, 5, 2], None),
    "equilibrium-3-hidden-2-steps": (2, 2, [4, 4, 3], 2, 1.0, [4, 3], 3),
}


def pyg_equilibrium_case(name: str, spec: tuple) -> dict:
    from torch_geometric import __version__ as pyg_version

    from distgnn.layers import EquilibriumAggregation

    f, c, hidden, grad_iter, lamb, sizes, dim_size = spec
    torch.manual_seed(1)
    m = EquilibriumAggregation(f, c, hidden, grad_iter=grad_iter, lamb=lamb).double()
    gen = _gen(name)
    with torch.no_grad():  # move every parameter off its initial value, so each one is checked
        for norm in m.norms:
            norm.weight.uniform_(0.5, 1.5, generator=gen)
            norm.bias.uniform_(-0.5, 0.5, generator=gen)
        m.raw_rate.fill_(0.3)
        m.raw_momentum.fill_(0.7)
    groups = torch.arange(len(sizes))
    index = torch.repeat_interleave(groups, torch.tensor(sizes))
    index = index[torch.randperm(index.numel(), generator=gen)]  # rows of a group need not be adjacent
    x = torch.randn(index.numel(), f, generator=gen, dtype=torch.float64)
    w_out = None
    runs = {}
    for float64_start in (False, True):
        p = pyg_equilibrium_from_distgnn(m, float64_start)
        xr = x.clone().requires_grad_()
        y = p(xr, index, dim_size=dim_size)
        if w_out is None:
            w_out = torch.randn(y.shape, generator=gen, dtype=torch.float64)
        (y * w_out).sum().backward()
        grads = {"x": torch.zeros_like(x) if xr.grad is None else xr.grad, **pyg_equilibrium_grads(m, p)}
        runs[float64_start] = ({"out": y.detach()}, grads)
    config = {"in_channels": f, "out_channels": c, "num_layers": hidden, "grad_iter": grad_iter, "lamb": lamb,
              "dim_size": dim_size, **_versions("torch_geometric", pyg_version)}
    return {
        "config": config,
        "inputs": {"x": x, "index": index, "w_out": w_out},
        "state": dict(m.state_dict()),
        "outputs": runs[False][0],
        "grads": runs[False][1],
        # PyG with y started in float64 (see pyg_equilibrium_from_distgnn): agrees to rounding
        "outputs_float64_start": runs[True][0],
        "grads_float64_start": runs[True][1],
    }


def pyg_fixtures(out_dir: Path) -> list[Path]:
    """Every torch-geometric fixture (MemPooling, EquilibriumAggregation) under ``out_dir/pyg``."""
    written = []
    for name, spec in PYG_MEMPOOL_CASES.items():
        written.append(_save(out_dir / "pyg" / f"{name}.pt", pyg_mempool_case(name, spec)))
    for name, spec in PYG_EQUILIBRIUM_CASES.items():
        written.append(_save(out_dir / "pyg" / f"{name}.pt", pyg_equilibrium_case(name, spec)))
    return written


# ================================================================================================
# Further sections (another library) go here: functions named <library>_*, and one entry in
# SECTIONS below.
# ================================================================================================


SECTIONS: dict[str, Callable[[Path], list[Path]]] = {
    "pyg": pyg_fixtures,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to write (default: all of {', '.join(SECTIONS)})")
    parser.add_argument("--out", type=Path, default=FIXTURES, help=f"fixture root (default {FIXTURES})")
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, fn in SECTIONS.items():
            print(f"{name}: {(fn.__doc__ or '').strip().splitlines()[0]}")
        return 0
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    total = 0
    for name in chosen:
        for path in SECTIONS[name](args.out):
            size = path.stat().st_size
            total += size
            print(f"{name}: wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} ({size / 1024:.1f} KB)")
    print(f"total {total / 1024:.1f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
