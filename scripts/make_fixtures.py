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
- ``e3x``: e3x 1.0.2's ``MessagePass`` (max_degree 0..3, P = 1 and 2, fused and unfused,
  ``use_basis_bias`` and ``include_pseudotensors`` on and off, both component orders, dense and
  sparse neighbour lists, weights, leading batch dimensions; gradients with respect to features,
  positions and every parameter), spherical/solid harmonics, Clebsch-Gordan tensors, every radial,
  cutoff, damping and switch function (with first and second derivatives) and ``basis``, in
  float64 (``jax_enable_x64``). e3x's parameters are converted to distgnn's layout by
  :func:`e3x_to_distgnn`.
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
# e3x: e3x 1.0.2 on JAX (float64), against distgnn.equivariant
# ================================================================================================
def _e3x_jax():
    """``(jax, jnp, np, e3x)`` with float64 enabled (the fixtures are float64)."""
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    import e3x
    import jax.numpy as jnp

    return jax, jnp, np, e3x


def e3x_filter_name(num_parity: int, p: int, l: int) -> str:
    """e3x's name of the ``Dense`` matrix for parity channel ``p`` and degree ``l``."""
    return f"{l}{'+-'[l % 2]}" if num_parity == 1 else f"{l}{'+-'[p]}"


def e3x_to_distgnn(tree: dict, basis_parity: int, basis_max_degree: int, use_bias: bool, fused: bool) -> dict:
    """A MessagePass parameter (or gradient) tree of e3x -> distgnn's ``state_dict`` names/layouts:
    ``filter.kernel [Pb, Lb+1, K, F]`` stacks e3x's per-degree ``Dense`` kernels, ``filter.bias``
    is the ``0+`` bias, ``tensor.kernel`` and the ``fused_tensor.kernel_*`` keep e3x's layout."""
    import numpy as np

    t = tree["params"]
    kernel = [[np.asarray(t["filter"][e3x_filter_name(basis_parity, p, l)]["kernel"]) for l in range(basis_max_degree + 1)]
              for p in range(basis_parity)]
    out = {"filter.kernel": torch.tensor(np.array(kernel))}
    if use_bias:
        out["filter.bias"] = torch.tensor(np.asarray(t["filter"]["0+"]["bias"]))
    if fused:
        out.update({f"fused_tensor.{k}": torch.tensor(np.asarray(v)) for k, v in t["fused_tensor"].items()})
    else:
        out["tensor.kernel"] = torch.tensor(np.asarray(t["tensor"]["kernel"]))
    return out


E3X_RADIAL = {  # name in the config -> (e3x function name, keyword arguments), the same in distgnn.equivariant
    "gaussian": ("basic_gaussian", {"limit": 3.0}),
    "sinc": ("sinc", {"limit": 3.0}),
    "reciprocal_chebyshev": ("reciprocal_chebyshev", {"kind": "cuspless"}),
    "exponential_fourier": ("exponential_fourier", {"gamma": 0.8}),
}
E3X_CUTOFF = {"smooth": ("smooth_cutoff", {"cutoff": 3.0}), "cosine": ("cosine_cutoff", {"cutoff": 3.0}), None: None}


def e3x_message_pass_cases() -> dict:
    """Fixture cases covering max_degree 0..3, P = 1 and 2, fused and unfused, use_basis_bias and
    include_pseudotensors on and off, both orders, dense and sparse lists (two complementary
    settings per (L, P)), plus weights, leading batch dimensions, an explicit output degree."""
    cases = {}
    radial = list(E3X_RADIAL)
    for i, (L, P) in enumerate((L, P) for L in range(4) for P in (1, 2)):
        for j in range(2):
            bits = [(i + j + k) % 2 == 1 if k % 2 else (i // 2 + j + k) % 2 == 1 for k in range(5)]
            fused, bias, pseudo, cartesian, dense = (bits[0], bits[1], bits[2] or L == 0, bits[3], j == 1)
            cfg = {"L": L, "P": P, "Lb": max(L, 1) if (i + j) % 3 else max(L - 1, 1), "max_degree": None,
                   "use_fused_tensor": fused, "use_basis_bias": bias, "include_pseudotensors": pseudo,
                   "cartesian_order": cartesian, "lists": "dense" if dense else "sparse",
                   "radial": radial[(i + j) % len(radial)], "cutoff": ["smooth", "cosine", None][(i + 2 * j) % 3],
                   "weights": False, "batch": 0}
            name = (f"mp-L{L}-P{P}-{'fused' if fused else 'tensor'}-{'bias' if bias else 'nobias'}-"
                    f"{'pseudo' if pseudo else 'proper'}-{'cart' if cartesian else 'std'}-{cfg['lists']}")
            cases[name] = cfg
    base = {"use_fused_tensor": False, "use_basis_bias": True, "include_pseudotensors": True, "cartesian_order": True,
            "radial": "gaussian", "cutoff": "smooth", "max_degree": None, "weights": False, "batch": 0}
    cases["mp-weights-sparse-sorted"] = {**base, "L": 1, "P": 2, "Lb": 2, "lists": "sparse", "weights": True}
    cases["mp-weights-dense-fused"] = {**base, "L": 2, "P": 1, "Lb": 1, "lists": "dense", "weights": True,
                                       "use_fused_tensor": True}
    cases["mp-batch2-sparse"] = {**base, "L": 1, "P": 1, "Lb": 1, "lists": "sparse", "batch": 2}
    cases["mp-batch2-dense-fused-std"] = {**base, "L": 2, "P": 2, "Lb": 2, "lists": "dense", "batch": 2,
                                          "use_fused_tensor": True, "cartesian_order": False}
    cases["mp-maxdeg3-from-1x2"] = {**base, "L": 1, "P": 1, "Lb": 2, "lists": "sparse", "max_degree": 3}
    cases["mp-maxdeg0-fused"] = {**base, "L": 2, "P": 2, "Lb": 2, "lists": "dense", "max_degree": 0,
                                 "use_fused_tensor": True, "include_pseudotensors": False}
    return cases


def e3x_neighbours(name: str, n: int, batch: int):
    """Positions ``[B?, N, 3]`` and a radius neighbour list per sample (some nodes have fewer
    neighbours, so the dense list has padding). Returns ``(pos, dst, src, adj)`` as int64 tensors,
    sparse lists sorted by ``dst`` and padded with ``N`` to one length per batch."""
    gen = _gen(name)
    samples = max(batch, 1)
    while True:  # redraw until every sample has at least 2 N edges and unequal degrees (padding)
        pos = torch.randn(samples, n, 3, generator=gen, dtype=torch.float64) * 1.3
        dsts, srcs = [], []
        for s in range(samples):
            d = torch.cdist(pos[s], pos[s])
            dst, src = torch.nonzero((d < 2.6) & (d > 0), as_tuple=True)
            dsts.append(dst)
            srcs.append(src)
        degs = [torch.bincount(t, minlength=n) for t in dsts]
        if all(t.numel() >= 2 * n and int(g.min()) < int(g.max()) for t, g in zip(dsts, degs)):
            break
    e = max(t.numel() for t in dsts)
    dst = torch.stack([torch.cat([t, t.new_full((e - t.numel(),), n)]) for t in dsts])
    src = torch.stack([torch.cat([t, t.new_full((e - t.numel(),), n)]) for t in srcs])
    m = max(int(torch.bincount(t, minlength=n).max()) for t in dsts)
    adj = torch.full((samples, n, m), n, dtype=torch.long)
    for s in range(samples):
        for i in range(n):
            nb = srcs[s][dsts[s] == i]
            adj[s, i, : nb.numel()] = nb
    if not batch:
        pos, dst, src, adj = pos[0], dst[0], src[0], adj[0]
    return pos, dst, src, adj


def e3x_message_pass_case(name: str, cfg: dict) -> dict:
    jax, jnp, np, e3x = _e3x_jax()
    import functools

    n, f, k = 5, 2, 3
    L, P, Lb, batch = cfg["L"], cfg["P"], cfg["Lb"], cfg["batch"]
    pos, dst, src, adj = e3x_neighbours(name, n, batch)
    gen = _gen(name + "/x")
    lead = (batch,) if batch else ()
    x = torch.randn(*lead, n, P, (L + 1) ** 2, f, generator=gen, dtype=torch.float64)
    rname, rkw = E3X_RADIAL[cfg["radial"]]
    radial_fn = functools.partial(getattr(e3x.nn, rname), **rkw)
    cut = E3X_CUTOFF[cfg["cutoff"]]
    cutoff_fn = None if cut is None else functools.partial(getattr(e3x.nn, cut[0]), **cut[1])
    dense = cfg["lists"] == "dense"

    def vectors(pos_):
        if dense:  # r_ij for every slot of adj (padding slots: any finite vector, masked)
            padded = jnp.concatenate([pos_, jnp.zeros(pos_.shape[:-2] + (1, 3))], axis=-2)
            idx = jnp.asarray(adj.numpy())
            gathered = jnp.take_along_axis(padded[..., None, :, :], idx[..., None], axis=-2) if batch else padded[idx]
            return gathered - pos_[..., :, None, :]
        d, s = jnp.asarray(dst.numpy()), jnp.asarray(src.numpy())
        padded = jnp.concatenate([pos_, jnp.zeros(pos_.shape[:-2] + (1, 3))], axis=-2)
        if batch:
            return jax.vmap(lambda p, si, di: p[si] - p[di])(padded, s, d)
        return padded[s] - padded[d]

    def basis_of(pos_):
        return e3x.nn.basis(vectors(pos_), max_degree=Lb, num=k, radial_fn=radial_fn, cutoff_fn=cutoff_fn,
                            cartesian_order=cfg["cartesian_order"])

    e_shape = tuple(adj.shape) if dense else tuple(dst.shape)
    weights = (torch.rand(*e_shape, 1, 1, f, generator=gen, dtype=torch.float64) + 0.5) if cfg["weights"] else None
    mp = e3x.nn.MessagePass(max_degree=cfg["max_degree"], use_basis_bias=cfg["use_basis_bias"],
                            include_pseudotensors=cfg["include_pseudotensors"], cartesian_order=cfg["cartesian_order"],
                            use_fused_tensor=cfg["use_fused_tensor"], param_dtype=jnp.float64)
    lists = ({"adj_idx": jnp.asarray(adj.numpy())} if dense else
             {"dst_idx": jnp.asarray(dst.numpy()), "src_idx": jnp.asarray(src.numpy()), "num_segments": n,
              "indices_are_sorted": True})
    jw = None if weights is None else jnp.asarray(weights.numpy())
    jx, jpos = jnp.asarray(x.numpy()), jnp.asarray(pos.numpy())
    params = mp.init(jax.random.PRNGKey(zlib.crc32(name.encode()) % 2**31), jx, basis_of(jpos), jw, **lists)
    keys = jax.random.split(jax.random.PRNGKey(7), len(jax.tree_util.tree_leaves(params)))
    leaves, tree = jax.tree_util.tree_flatten(params)
    params = jax.tree_util.tree_unflatten(  # move every parameter (biases, unused paths) off its initial value
        tree, [v + 0.3 * jax.random.normal(kk, v.shape, v.dtype) for v, kk in zip(leaves, keys)])

    def run(params_, x_, pos_):
        return mp.apply(params_, x_, basis_of(pos_), jw, **lists)

    out = run(params, jx, jpos)
    w_out = torch.randn(tuple(out.shape), generator=gen, dtype=torch.float64)
    g_params, g_x, g_pos = jax.grad(lambda a, b, c: jnp.sum(run(a, b, c) * jnp.asarray(w_out.numpy())), argnums=(0, 1, 2))(
        params, jx, jpos)
    layout = dict(basis_parity=1, basis_max_degree=Lb, use_bias=cfg["use_basis_bias"], fused=cfg["use_fused_tensor"])
    inputs = {"x": x, "pos": pos, "basis": torch.tensor(np.asarray(basis_of(jpos))), "w_out": w_out}
    if dense:
        inputs["adj_idx"] = adj
    else:
        inputs.update(dst_idx=dst, src_idx=src)
    if weights is not None:
        inputs["weights"] = weights
    return {
        "config": {**cfg, "num_basis": k, "features": f, "radial_fn": [rname, rkw],
                   "cutoff_fn": None if cut is None else list(cut), **_versions("e3x", e3x.__version__)},
        "inputs": inputs,
        "state": e3x_to_distgnn(params, **layout),
        "outputs": {"out": torch.tensor(np.asarray(out))},
        "grads": {"x": torch.tensor(np.asarray(g_x)), "pos": torch.tensor(np.asarray(g_pos)),
                  **e3x_to_distgnn(g_params, **layout)},
    }


E3X_BASIS_CASES = {  # name: (max_degree, num, radial name, radial kwargs, cutoff, damping, cartesian_order)
    "reciprocal_bernstein-smooth": (2, 4, "reciprocal_bernstein", {}, ("smooth_cutoff", {"cutoff": 3.0}), False, True),
    "gaussian-cosine-damped-std": (3, 3, "basic_gaussian", {"limit": 2.5}, ("cosine_cutoff", {"cutoff": 2.5}), True, False),
    "sinc-nocut": (1, 5, "sinc", {"limit": 3.0}, None, False, True),
    "exponential_chebyshev-damped": (2, 3, "exponential_chebyshev", {"gamma": 0.5}, ("smooth_cutoff", {"cutoff": 3.0}), True, True),
}

E3X_RADIAL_CASES = {  # name: (function, keyword arguments including num)
    **{f"{fn}-{num}": (fn, {"num": num, "limit": 2.5}) for fn in ("basic_gaussian", "basic_bernstein", "basic_chebyshev",
                                                                   "basic_fourier", "sinc", "triangular_window",
                                                                   "smooth_window") for num in (1, 5)},
    **{f"{fn}-{kind}-{w}": (fn, {"num": 4, "kind": kind, "use_reciprocal_weighting": w})
       for fn in ("reciprocal_gaussian", "reciprocal_bernstein", "reciprocal_chebyshev", "reciprocal_fourier")
       for kind in ("shifted", "damped", "cuspless") for w in (False, True)},
    **{f"{fn}-{c}-{w}": (fn, {"num": 4, "gamma": 0.7, "cuspless": c, "use_exponential_weighting": w})
       for fn in ("exponential_gaussian", "exponential_bernstein", "exponential_chebyshev", "exponential_fourier")
       for c in (False, True) for w in (False, True)},
    "rectangular_window-5": ("rectangular_window", {"num": 5, "limit": 2.5}),
    "smooth_cutoff": ("smooth_cutoff", {"cutoff": 2.5}),
    "cosine_cutoff": ("cosine_cutoff", {"cutoff": 2.5}),
    "smooth_damping": ("smooth_damping", {"gamma": 1.3}),
    "smooth_switch": ("smooth_switch", {"x0": 0.4, "x1": 2.2}),
}


def e3x_harmonics_case() -> dict:
    """Spherical and solid harmonics (degrees 0..4, both orders, three normalisations), the
    Clebsch-Gordan tensors up to degree 3 (both orders), every radial/cutoff/damping/switch
    function on a grid (values, first and second derivatives), and ``basis(...)`` with its
    gradient with respect to the vectors."""
    jax, jnp, np, e3x = _e3x_jax()
    import functools

    gen = _gen("e3x-harmonics")
    r = torch.randn(24, 3, generator=gen, dtype=torch.float64) * 1.5
    r[0] = 0.0
    jr = jnp.asarray(r.numpy())
    outputs = {}
    for L in range(5):
        for cart in (True, False):
            for norm in ("racah", "4pi", "orthonormal"):
                outputs[f"sh-L{L}-{'cart' if cart else 'std'}-{norm}"] = e3x.so3.spherical_harmonics(
                    jr, L, cartesian_order=cart, normalization=norm)
            outputs[f"solid-L{L}-{'cart' if cart else 'std'}"] = e3x.so3.solid_harmonics(jr, L, cartesian_order=cart)
    for cart in (True, False):
        outputs[f"cg-3-3-3-{'cart' if cart else 'std'}"] = e3x.so3.clebsch_gordan(3, 3, 3, cartesian_order=cart)
        outputs[f"cg-1-2-3-{'cart' if cart else 'std'}"] = e3x.so3.clebsch_gordan(1, 2, 3, cartesian_order=cart)
    # the grid avoids the windows' bin edges (0.5 k) and stays clear of 0 for derivative checks
    grid = torch.linspace(0.013, 3.1, 37, dtype=torch.float64)
    jg = jnp.asarray(grid.numpy())
    for name, (fn, kw) in E3X_RADIAL_CASES.items():
        f = functools.partial(getattr(e3x.nn, fn), **kw)
        total = lambda z, f=f: jnp.sum(f(z))  # noqa: E731
        outputs[f"radial-{name}"] = f(jg)
        outputs[f"radial-{name}-d1"] = jax.grad(total)(jg)
        outputs[f"radial-{name}-d2"] = jax.grad(lambda z, t=total: jnp.sum(jax.grad(t)(z)))(jg)
    w = torch.randn(24, 1, 16, 5, generator=gen, dtype=torch.float64)
    for name, (L, num, rfn, rkw, cut, damp, cart) in E3X_BASIS_CASES.items():
        def b(v, L=L, num=num, rfn=rfn, rkw=rkw, cut=cut, damp=damp, cart=cart):
            return e3x.nn.basis(v, max_degree=L, num=num, radial_fn=functools.partial(getattr(e3x.nn, rfn), **rkw),
                                cutoff_fn=None if cut is None else functools.partial(getattr(e3x.nn, cut[0]), **cut[1]),
                                damping_fn=e3x.nn.smooth_damping if damp else None, cartesian_order=cart)
        val = b(jr)
        ww = jnp.asarray(w[:, :, : (L + 1) ** 2, :num].numpy())
        outputs[f"basis-{name}"] = val
        outputs[f"basis-{name}-grad"] = jax.grad(lambda v, f=b, ww=ww: jnp.sum(f(v) * ww))(jr)
    return {
        "config": {"basis_cases": {k: list(v) for k, v in E3X_BASIS_CASES.items()},
                   "radial_cases": {k: list(v) for k, v in E3X_RADIAL_CASES.items()}, **_versions("e3x", e3x.__version__)},
        "inputs": {"r": r, "grid": grid, "w_basis": w},
        "state": {},
        "outputs": {k: torch.tensor(np.asarray(v)) for k, v in outputs.items()},
        "grads": {},
    }


def e3x_fixtures(out_dir: Path) -> list[Path]:
    """e3x's MessagePass (outputs, gradients w.r.t. features, positions and weights), spherical
    harmonics, Clebsch-Gordan, radial functions and basis under ``out_dir/e3x``."""
    written = [_save(out_dir / "e3x" / "harmonics-radial-basis.pt", e3x_harmonics_case())]
    for name, cfg in e3x_message_pass_cases().items():
        written.append(_save(out_dir / "e3x" / f"{name}.pt", e3x_message_pass_case(name, cfg)))
    return written


# ================================================================================================
# Further sections (another library) go here: functions named <library>_*, and one entry in
# SECTIONS below.
# ================================================================================================


SECTIONS: dict[str, Callable[[Path], list[Path]]] = {
    "pyg": pyg_fixtures,
    "e3x": e3x_fixtures,
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
