"""Radial basis functions, cutoffs, damping and switch: closed forms, smoothness, derivatives."""
from __future__ import annotations

import functools
import math

import pytest
import torch

from distgnn.equivariant import basis, radial, so3
from distgnn.equivariant.so3 import IrrepsError

from tests.equivariant.common import DT

X = torch.linspace(0.0, 3.0, 61, dtype=DT)


def rm(x, kind):
    if kind == "shifted":
        return 1 / (x + 1)
    if kind == "damped":
        return torch.where(x > 0, (1 - torch.exp(-x)) / x.clamp(min=1e-300), torch.ones_like(x))
    return 1 / (x + torch.exp(-x))


def gauss(t, K):
    k = torch.arange(K, dtype=DT)
    mu = k / (K - 1) if K > 1 else k
    return torch.exp(-math.sqrt(2 * K) * (K - 1) * (t[:, None] - mu) ** 2)


def bern(t, K):
    t = t.clamp(0, 1)[:, None]
    k = torch.arange(K, dtype=DT)
    c = torch.tensor([math.comb(K - 1, i) for i in range(K)], dtype=DT)
    return c * t**k * (1 - t) ** (K - 1 - k)


def cheb(u, K):
    return torch.cos(torch.arange(K, dtype=DT) * torch.arccos(u.clamp(-1, 1))[:, None])


def four(t, K):
    return torch.cos(math.pi * torch.arange(K, dtype=DT) * t[:, None])


CLOSED = {
    "basic_gaussian": (dict(limit=2.0), lambda x, K: gauss(x / 2, K)),
    "basic_bernstein": (dict(limit=2.0), lambda x, K: bern(x / 2, K)),
    "basic_chebyshev": (dict(limit=2.0), lambda x, K: cheb(x - 1, K)),
    "basic_fourier": (dict(limit=2.0), lambda x, K: four(x / 2, K)),
    "sinc": (dict(limit=2.0), lambda x, K: torch.where(
        x[:, None] <= 2, torch.sinc((torch.arange(K, dtype=DT) + 1) * x[:, None] / 2), torch.zeros(1, dtype=DT))),
    "reciprocal_gaussian": (dict(kind="damped"), lambda x, K: gauss(1 - rm(x, "damped"), K)),
    "reciprocal_bernstein": (dict(kind="shifted", use_reciprocal_weighting=True),
                             lambda x, K: bern(1 - rm(x, "shifted"), K) * rm(x, "shifted")[:, None]),
    "reciprocal_chebyshev": (dict(kind="cuspless"), lambda x, K: cheb(2 * rm(x, "cuspless") - 1, K)),
    "reciprocal_fourier": (dict(kind="shifted"), lambda x, K: four(1 - rm(x, "shifted"), K)),
    "exponential_gaussian": (dict(gamma=0.7), lambda x, K: gauss(1 - torch.exp(-0.7 * x), K)),
    "exponential_bernstein": (dict(gamma=0.7, cuspless=True, use_exponential_weighting=True),
                              lambda x, K: bern(1 - torch.exp(-0.7 * (x + torch.exp(-x) - 1)), K)
                              * torch.exp(-0.7 * (x + torch.exp(-x) - 1))[:, None]),
    "exponential_chebyshev": (dict(gamma=0.7), lambda x, K: cheb(2 * torch.exp(-0.7 * x) - 1, K)),
    "exponential_fourier": (dict(gamma=0.7), lambda x, K: four(1 - torch.exp(-0.7 * x), K)),
    "triangular_window": (dict(limit=2.0), lambda x, K: torch.clamp(
        1 - (x[:, None] - torch.arange(K, dtype=DT) * 2 / K).abs() / (2 / K), min=0)),
}


@pytest.mark.parametrize("name", sorted(CLOSED))
@pytest.mark.parametrize("K", [1, 2, 6])
def test_radial_functions_equal_their_closed_forms(name, K):
    kwargs, ref = CLOSED[name]
    y = getattr(radial, name)(X, K, **kwargs)
    assert y.shape == (X.numel(), K)
    if name.endswith("gaussian") and K == 1:  # one Gaussian is the constant 1
        torch.testing.assert_close(y, torch.ones_like(y))
        return
    torch.testing.assert_close(y, ref(X, K), rtol=1e-12, atol=1e-12)


def test_windows_cutoffs_damping_switch_and_mappings():
    x = torch.tensor([0.0, 0.3, 0.5, 1.0, 1.7, 2.0, 2.5], dtype=DT)
    rect = radial.rectangular_window(x, 4, limit=2.0)  # bins [0,.5], [.5,1], [1,1.5], [1.5,2]
    torch.testing.assert_close(rect[1], torch.tensor([1.0, 0, 0, 0], dtype=DT))
    torch.testing.assert_close(rect[4], torch.tensor([0, 0, 0, 1.0], dtype=DT))
    assert rect[-1].sum() == 0
    t = x / 2
    torch.testing.assert_close(radial.smooth_cutoff(x, 2.0),
                               torch.where(t < 1, torch.exp(1 - 1 / (1 - (t * (t < 1)) ** 2)), torch.zeros_like(t)))
    torch.testing.assert_close(radial.cosine_cutoff(x, 2.0), torch.where(t < 1, (torch.cos(math.pi * t) + 1) / 2, torch.zeros_like(t)))
    xs = x[1:]
    torch.testing.assert_close(radial.smooth_damping(xs, 1.3), torch.exp(-1 / (torch.exp(1.3 * xs) - 1)))
    assert radial.smooth_damping(x, 1.3)[0] == 0
    s = radial.smooth_switch(x, 0.5, 2.0)
    tt = (x[2:5] - 0.5) / 1.5
    inner = 1 / (1 + torch.exp(math.sqrt(3) / 2 * (1 / tt.clamp(min=1e-9) - 1 / (1 - tt))))
    torch.testing.assert_close(s[3:5], inner[1:])
    assert s[0] == 0 and s[2] == 0 and s[5] == 1 and s[6] == 1
    w = radial.smooth_window(torch.linspace(0, 2, 41, dtype=DT), 4, limit=2.0)
    assert w.min() >= 0 and w.max() <= 1
    torch.testing.assert_close(radial.reciprocal_mapping(x, "damped"), rm(x, "damped"), rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(radial.exponential_mapping(x, 2.0), torch.exp(-2 * x))


SMOOTH = [
    functools.partial(radial.basic_gaussian, num=5, limit=2.0),
    functools.partial(radial.basic_bernstein, num=5, limit=4.0),
    functools.partial(radial.basic_chebyshev, num=5, limit=4.0),
    functools.partial(radial.basic_fourier, num=5, limit=2.0),
    functools.partial(radial.sinc, num=5, limit=4.0),
    functools.partial(radial.reciprocal_bernstein, num=5, kind="damped", use_reciprocal_weighting=True),
    functools.partial(radial.reciprocal_chebyshev, num=5, kind="shifted"),
    functools.partial(radial.reciprocal_gaussian, num=5, kind="cuspless"),
    functools.partial(radial.reciprocal_fourier, num=5),
    functools.partial(radial.exponential_bernstein, num=5, gamma=0.5, cuspless=True),
    functools.partial(radial.exponential_chebyshev, num=5, use_exponential_weighting=True),
    functools.partial(radial.exponential_gaussian, num=5),
    functools.partial(radial.exponential_fourier, num=5),
    functools.partial(radial.smooth_window, num=4, limit=4.0),
    functools.partial(radial.smooth_cutoff, cutoff=4.0),
    functools.partial(radial.cosine_cutoff, cutoff=4.0),
    functools.partial(radial.smooth_damping, gamma=2.0),
    functools.partial(radial.smooth_switch, x0=0.5, x1=3.5),
]


@pytest.mark.parametrize("fn", SMOOTH, ids=lambda f: f.func.__name__ + "-" + "-".join(f"{v}" for v in f.keywords.values()))
def test_first_and_second_derivatives(fn):
    """gradcheck and gradgradcheck inside the domain; at 0, at the limits and beyond every
    derivative up to second order is finite (energies -> forces -> force training)."""
    x = torch.tensor([0.3, 0.9, 1.7, 2.6, 3.3], dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
    edge = torch.tensor([0.0, 1e-12, 1e-6, 2.0 - 1e-9, 3.9999999, 4.0, 4.0 + 1e-9, 7.0], dtype=DT, requires_grad=True)
    y = fn(edge)
    assert torch.isfinite(y).all()
    g, = torch.autograd.grad(y.sum(), edge, create_graph=True)
    assert torch.isfinite(g).all()
    if g.requires_grad:
        g2, = torch.autograd.grad(g.sum(), edge)
        assert torch.isfinite(g2).all()


def test_float32_second_derivatives_are_finite_near_the_cutoff():
    x = torch.tensor([0.0, 1e-7, 0.999, 0.99999, 1.0], dtype=torch.float32, requires_grad=True)
    for fn in (radial.smooth_cutoff, radial.smooth_switch, radial.smooth_damping,
               functools.partial(radial.reciprocal_bernstein, num=8, kind="damped")):
        g, = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
        g2, = torch.autograd.grad(g.sum(), x)
        assert torch.isfinite(g).all() and torch.isfinite(g2).all(), fn


def test_basis_combines_radial_angular_cutoff_and_damping():
    r = torch.randn(6, 3, dtype=DT) * 1.5
    r[0] = 0
    b, cut, norm = basis(r, max_degree=2, num=3, radial_fn=radial.basic_gaussian,
                         cutoff_fn=functools.partial(radial.cosine_cutoff, cutoff=3.0),
                         damping_fn=radial.smooth_damping, return_cutoff=True, return_norm=True)
    assert b.shape == (6, 1, 9, 3)
    n = r.norm(dim=-1)
    torch.testing.assert_close(norm, n)
    torch.testing.assert_close(cut, radial.cosine_cutoff(n, 3.0))
    y = so3.spherical_harmonics(r, 2)
    damp = torch.ones(6, 9, dtype=DT)
    damp[:, 1:] = radial.smooth_damping(n)[:, None]
    expected = y[:, :, None] * radial.basic_gaussian(n, 3)[:, None, :] * cut[:, None, None] * damp[:, :, None]
    torch.testing.assert_close(b[:, 0], expected)
    assert b[0, 0, 1:].abs().max() == 0  # zero vector: only the l = 0 functions
    b2 = basis(r, max_degree=1, num=2, radial_fn=radial.basic_fourier, angular_fn=lambda u, L, c: so3.spherical_harmonics(u, L, True, c) * 2)
    assert b2.shape == (6, 1, 4, 2)
    torch.testing.assert_close(b2, 2 * basis(r, max_degree=1, num=2, radial_fn=radial.basic_fourier))


def test_errors_are_clear():
    x = torch.ones(3, dtype=DT)
    with pytest.raises(ValueError, match=r"basic_gaussian: num must be an int >= 1, got 0"):
        radial.basic_gaussian(x, 0)
    with pytest.raises(ValueError, match=r"smooth_cutoff: cutoff must be larger than 0, got -1.0"):
        radial.smooth_cutoff(x, -1.0)
    with pytest.raises(ValueError, match=r"reciprocal_mapping: kind must be one of"):
        radial.reciprocal_bernstein(x, 3, kind="linear")
    with pytest.raises(ValueError, match=r"smooth_switch: x1 must be larger than x0"):
        radial.smooth_switch(x, 1.0, 1.0)
    with pytest.raises(IrrepsError, match=r"basis: r must have shape \[\.\.\., 3\]"):
        basis(torch.zeros(3, 2), max_degree=1, num=2, radial_fn=radial.sinc)
    with pytest.raises(ValueError, match=r"basis: return_cutoff=True needs a cutoff_fn"):
        basis(torch.zeros(3, 3), max_degree=1, num=2, radial_fn=radial.sinc, return_cutoff=True)
    with pytest.raises(IrrepsError, match=r"basis: radial_fn must return \[\.\.\., num\]"):
        basis(torch.zeros(3, 3), max_degree=1, num=2, radial_fn=lambda x, n: x)
