"""distgnn.equivariant against e3x 1.0.2's numbers, without jax: the fixtures written by
``scripts/make_fixtures.py --only e3x`` (see its docstring for the file format) hold e3x's
MessagePass outputs and gradients (features, positions, every parameter) for the same weights
and inputs, and its harmonics, Clebsch-Gordan tensors, radial functions and basis."""
from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from distgnn.equivariant import MessagePass, basis, radial, so3

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "e3x"
MP_FILES = sorted(FIXTURES.glob("mp-*.pt"))
TOL = dict(rtol=1e-10, atol=1e-12)


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def test_the_fixtures_are_there_small_and_cover_the_options():
    assert (FIXTURES / "harmonics-radial-basis.pt").exists(), "run scripts/make_fixtures.py --only e3x"
    configs = [_load(p)["config"] for p in MP_FILES]
    assert sum(p.stat().st_size for p in FIXTURES.glob("*.pt")) < 1.5 * 1024 * 1024
    assert {c["L"] for c in configs} == {0, 1, 2, 3} and {c["P"] for c in configs} == {1, 2}
    for key in ("use_fused_tensor", "use_basis_bias", "include_pseudotensors", "cartesian_order", "weights"):
        assert {c[key] for c in configs} == {False, True}, key
    assert {c["lists"] for c in configs} == {"dense", "sparse"} and {c["batch"] for c in configs} == {0, 2}
    for L in range(4):  # every degree with both products, with and without bias, both orders
        for key in ("use_fused_tensor", "use_basis_bias", "cartesian_order", "lists"):
            assert len({c[key] for c in configs if c["L"] == L}) == 2, (L, key)


def _vectors(cfg: dict, inp: dict, pos: torch.Tensor) -> torch.Tensor:
    """The vectors e3x's basis was computed from (dense: every slot of adj_idx)."""
    padded = torch.cat([pos, pos.new_zeros(pos.shape[:-2] + (1, 3))], dim=-2)
    if cfg["lists"] == "dense":
        adj = inp["adj_idx"]
        if cfg["batch"]:
            gathered = torch.stack([padded[b][adj[b]] for b in range(adj.shape[0])])
        else:
            gathered = padded[adj]
        return gathered - pos.unsqueeze(-2)
    src, dst = inp["src_idx"], inp["dst_idx"]
    if cfg["batch"]:
        return torch.stack([padded[b][src[b]] - padded[b][dst[b]] for b in range(src.shape[0])])
    return padded[src] - padded[dst]


@pytest.mark.parametrize("path", MP_FILES, ids=lambda p: p.stem)
def test_message_pass_matches_e3x(path):
    fx = _load(path)
    cfg, inp = fx["config"], fx["inputs"]
    mp = MessagePass(max_degree=cfg["max_degree"], use_basis_bias=cfg["use_basis_bias"],
                     include_pseudotensors=cfg["include_pseudotensors"], cartesian_order=cfg["cartesian_order"],
                     use_fused_tensor=cfg["use_fused_tensor"]).double()
    mp.load_state_dict(fx["state"])
    x = inp["x"].clone().requires_grad_()
    pos = inp["pos"].clone().requires_grad_()
    rname, rkw = cfg["radial_fn"]
    cutoff = None if cfg["cutoff_fn"] is None else functools.partial(getattr(radial, cfg["cutoff_fn"][0]), **cfg["cutoff_fn"][1])
    b = basis(_vectors(cfg, inp, pos), max_degree=cfg["Lb"], num=cfg["num_basis"],
              radial_fn=functools.partial(getattr(radial, rname), **rkw), cutoff_fn=cutoff,
              cartesian_order=cfg["cartesian_order"])
    torch.testing.assert_close(b.detach(), inp["basis"], **TOL)
    lists = ({"adj_idx": inp["adj_idx"]} if cfg["lists"] == "dense" else
             {"dst_idx": inp["dst_idx"], "src_idx": inp["src_idx"], "indices_are_sorted": True})
    out = mp(x, b, inp.get("weights"), **lists)
    torch.testing.assert_close(out, fx["outputs"]["out"], **TOL)
    (out * inp["w_out"]).sum().backward()
    got = {"x": x.grad, "pos": pos.grad, **{n: p.grad for n, p in mp.named_parameters()}}
    assert set(got) == set(fx["grads"])
    for key, want in fx["grads"].items():
        torch.testing.assert_close(got[key], want, **TOL, msg=lambda m, k=key: f"grad {k}: {m}")


@pytest.fixture(scope="module")
def harmonics():
    return _load(FIXTURES / "harmonics-radial-basis.pt")


def test_spherical_harmonics_solid_harmonics_and_clebsch_gordan_match_e3x(harmonics):
    r, out = harmonics["inputs"]["r"], harmonics["outputs"]
    checked = 0
    for L in range(5):
        for order in ("cart", "std"):
            for norm in ("racah", "4pi", "orthonormal"):
                got = so3.spherical_harmonics(r, L, cartesian_order=order == "cart", normalization=norm)
                torch.testing.assert_close(got, out[f"sh-L{L}-{order}-{norm}"], rtol=1e-13, atol=1e-14)
                checked += 1
            torch.testing.assert_close(so3.solid_harmonics(r, L, cartesian_order=order == "cart"),
                                       out[f"solid-L{L}-{order}"], rtol=1e-12, atol=1e-13)
    for order in ("cart", "std"):  # every sign of every (l1, l2, l3) block equals e3x's
        torch.testing.assert_close(so3.clebsch_gordan(3, 3, 3, order == "cart"), out[f"cg-3-3-3-{order}"], rtol=0, atol=1e-14)
        torch.testing.assert_close(so3.clebsch_gordan(1, 2, 3, order == "cart"), out[f"cg-1-2-3-{order}"], rtol=0, atol=1e-14)
    assert checked == 30


def _bernstein(name: str) -> bool:
    return "bernstein" in name


def test_radial_functions_and_their_derivatives_match_e3x(harmonics):
    """Values to rounding. Derivatives on a grid away from 0: where e3x evaluates through
    ``arccos`` (Chebyshev) its second derivatives lose digits near the interval ends, so those
    get 1e-6; Bernstein coefficients of e3x carry its log-Beta round-off (~1e-6, see
    distgnn.equivariant.radial)."""
    grid, out = harmonics["inputs"]["grid"], harmonics["outputs"]
    for name, (fn, kw) in harmonics["config"]["radial_cases"].items():
        x = grid.clone().requires_grad_()
        y = getattr(radial, fn)(x, **kw)
        g1, = torch.autograd.grad(y.sum(), x, create_graph=True)
        g2 = torch.autograd.grad(g1.sum(), x)[0] if g1.requires_grad else torch.zeros_like(x)
        loose = _bernstein(name) and kw.get("num", 2) > 1
        tol = dict(rtol=2e-6, atol=2e-6) if loose else dict(rtol=1e-11, atol=1e-12)
        torch.testing.assert_close(y.detach(), out[f"radial-{name}"], **tol, msg=lambda m, n=name: f"{n}: {m}")
        torch.testing.assert_close(g1.detach(), out[f"radial-{name}-d1"], **(tol if loose else dict(rtol=1e-9, atol=1e-10)),
                                   msg=lambda m, n=name: f"{n} d1: {m}")
        tol2 = dict(rtol=1e-6, atol=1e-6) if ("chebyshev" in name or loose) else dict(rtol=1e-8, atol=1e-9)
        torch.testing.assert_close(g2, out[f"radial-{name}-d2"], **tol2, msg=lambda m, n=name: f"{n} d2: {m}")


def test_basis_and_its_gradient_match_e3x(harmonics):
    r, w, out = harmonics["inputs"]["r"], harmonics["inputs"]["w_basis"], harmonics["outputs"]
    for name, (L, num, rfn, rkw, cut, damp, cart) in harmonics["config"]["basis_cases"].items():
        v = r.clone().requires_grad_()
        b = basis(v, max_degree=L, num=num, radial_fn=functools.partial(getattr(radial, rfn), **rkw),
                  cutoff_fn=None if cut is None else functools.partial(getattr(radial, cut[0]), **cut[1]),
                  damping_fn=radial.smooth_damping if damp else None, cartesian_order=cart)
        tol = dict(rtol=2e-6, atol=2e-6) if _bernstein(rfn) else dict(rtol=1e-11, atol=1e-12)
        torch.testing.assert_close(b.detach(), out[f"basis-{name}"], **tol)
        (b * w[:, :, : (L + 1) ** 2, :num]).sum().backward()
        torch.testing.assert_close(v.grad, out[f"basis-{name}-grad"], **tol)
