"""Spherical harmonics, Clebsch-Gordan coefficients, Wigner-D matrices and feature transforms."""
from __future__ import annotations

import math

import pytest
import torch

from distgnn.equivariant import so3
from distgnn.equivariant.so3 import IrrepsError

from tests.equivariant.common import DT, gen

SQ3 = math.sqrt(3.0)


def unit(n=40, seed=0):
    u = torch.randn(n, 3, generator=gen(seed), dtype=DT)
    return u / u.norm(dim=-1, keepdim=True)


def closed_form(u: torch.Tensor, cartesian: bool) -> torch.Tensor:
    """l <= 2 by hand: no Condon-Shortley phase, Racah normalisation, z polar axis."""
    x, y, z = u.unbind(-1)
    one = torch.ones_like(x)
    l1 = {-1: y, 0: z, 1: x}
    l2 = {-2: SQ3 * x * y, -1: SQ3 * y * z, 0: (3 * z * z - 1) / 2, 1: SQ3 * x * z, 2: SQ3 / 2 * (x * x - y * y)}
    if cartesian:
        order1, order2 = (1, -1, 0), (2, -2, 1, -1, 0)
    else:
        order1, order2 = (-1, 0, 1), (-2, -1, 0, 1, 2)
    return torch.stack([one] + [l1[m] for m in order1] + [l2[m] for m in order2], -1)


@pytest.mark.parametrize("cartesian", [True, False], ids=["cartesian", "standard"])
def test_spherical_harmonics_equal_closed_forms_up_to_degree_2(cartesian):
    u = unit()
    y = so3.spherical_harmonics(u * 2.5, 2, cartesian_order=cartesian)  # normalised inside
    torch.testing.assert_close(y, closed_form(u, cartesian), rtol=0, atol=1e-14)
    # degree 1 in Cartesian order is the unit vector itself
    if cartesian:
        torch.testing.assert_close(y[:, 1:4], u, rtol=0, atol=1e-15)


@pytest.mark.parametrize("L", [0, 1, 3, 6])
def test_racah_normalisation_orderings_and_the_other_normalisations(L):
    u = unit(seed=L)
    std = so3.spherical_harmonics(u, L, cartesian_order=False)
    cart = so3.spherical_harmonics(u, L, cartesian_order=True)
    torch.testing.assert_close(cart, std[:, so3.cartesian_permutation(L)], rtol=0, atol=1e-15)
    for l in range(L + 1):  # sum_m Y_lm^2 = 1
        block = std[:, l * l : (l + 1) ** 2]
        torch.testing.assert_close((block**2).sum(-1), torch.ones(u.shape[0], dtype=DT), rtol=0, atol=1e-13)
    scale = torch.tensor([math.sqrt(2 * l + 1) for l in so3.degree_of_index(L)], dtype=DT)
    torch.testing.assert_close(so3.spherical_harmonics(u, L, normalization="4pi"), cart * scale, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(so3.spherical_harmonics(u, L, normalization="orthonormal"), cart * scale / math.sqrt(4 * math.pi),
                               rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(so3.spherical_harmonics(u, L, normalization="schmidt"), cart)


def test_orthogonality_on_the_sphere_by_quadrature():
    """int Y_lm Y_l'm' dOmega = 4 pi / (2l + 1) delta (Racah), by a product Gauss-Legendre rule."""
    L = 4
    import numpy as np

    nodes, weights = np.polynomial.legendre.leggauss(12)
    ct = torch.tensor(nodes, dtype=DT)
    w_t = torch.tensor(weights, dtype=DT)
    phi = torch.arange(24, dtype=DT) * (2 * math.pi / 24)
    st = torch.sqrt(1 - ct**2)
    u = torch.stack([st[:, None] * torch.cos(phi), st[:, None] * torch.sin(phi), ct[:, None].expand(-1, 24)], -1).reshape(-1, 3)
    w = (w_t[:, None] * (2 * math.pi / 24)).expand(-1, 24).reshape(-1)
    y = so3.spherical_harmonics(u, L, cartesian_order=False)
    gram = (y * w[:, None]).T @ y
    expected = torch.diag(torch.tensor([4 * math.pi / (2 * l + 1) for l in so3.degree_of_index(L)], dtype=DT))
    torch.testing.assert_close(gram, expected, rtol=0, atol=1e-12)


def test_zero_vector_and_solid_harmonics():
    y0 = so3.spherical_harmonics(torch.zeros(2, 3, dtype=DT), 3)
    torch.testing.assert_close(y0, torch.eye(16, dtype=DT)[:1].expand(2, -1))
    r = torch.randn(5, 3, generator=gen(3), dtype=DT) * 2
    norm = r.norm(dim=-1, keepdim=True)
    scale = torch.cat([norm**l for l in so3.degree_of_index(3)], -1)
    torch.testing.assert_close(so3.solid_harmonics(r, 3), so3.spherical_harmonics(r, 3) * scale, rtol=1e-13, atol=1e-13)
    # derivatives are finite at the origin (basis() relies on it), second order too
    r0 = torch.zeros(1, 3, dtype=DT, requires_grad=True)
    g, = torch.autograd.grad(so3.spherical_harmonics(r0, 3).sum(), r0, create_graph=True)
    g2, = torch.autograd.grad(g.sum(), r0)
    assert torch.isfinite(g).all() and torch.isfinite(g2).all()


@pytest.mark.parametrize("cartesian", [True, False], ids=["cartesian", "standard"])
@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
def test_wigner_d_is_orthogonal_block_diagonal_and_maps_the_harmonics(cartesian, reflect):
    L = 4
    q = so3.random_orthogonal(gen(7), reflect=reflect)
    d = so3.wigner_d(q, L, cartesian)
    torch.testing.assert_close(d @ d.T, torch.eye((L + 1) ** 2, dtype=DT), rtol=0, atol=1e-12)
    u = unit(30, seed=9)
    torch.testing.assert_close(so3.spherical_harmonics(u @ q.T, L, cartesian_order=cartesian),
                               so3.spherical_harmonics(u, L, cartesian_order=cartesian) @ d.T, rtol=0, atol=1e-12)
    if cartesian:  # degree 1 transforms like the vector itself
        torch.testing.assert_close(d[1:4, 1:4], q, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cartesian", [True, False], ids=["cartesian", "standard"])
def test_clebsch_gordan_orthonormality(cartesian):
    L = 4
    for l1 in range(L + 1):
        for l2 in range(L + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, L) + 1):
                c = so3.clebsch_gordan_for_degrees(l1, l2, l3, cartesian)[: 2 * l1 + 1, : 2 * l2 + 1, : 2 * l3 + 1]
                gram = torch.einsum("abc,abd->cd", c, c)  # sum_{m1,m2} C C' = delta
                torch.testing.assert_close(gram, torch.eye(2 * l3 + 1, dtype=DT), rtol=0, atol=1e-13,
                                           msg=lambda m: f"({l1},{l2},{l3}): {m}")
                for l3b in range(abs(l1 - l2), min(l1 + l2, L) + 1):  # different l3: orthogonal
                    if l3b != l3:
                        cb = so3.clebsch_gordan_for_degrees(l1, l2, l3b, cartesian)[: 2 * l1 + 1, : 2 * l2 + 1, : 2 * l3b + 1]
                        assert torch.einsum("abc,abd->cd", c, cb).abs().max() < 1e-13
    full = so3.clebsch_gordan(1, 2, 3, cartesian)
    assert full[1:4, 1:4, 9:].abs().max() == 0  # (1, 1) -> 3 violates the triangle rule
    assert full[:1, 4:9, :4].abs().max() == 0  # (0, 2) -> 0 or 1 too
    assert full[1:4, 4:9, 9:].abs().max() > 0.1  # (1, 2) -> 3 does couple


@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
def test_clebsch_gordan_couplings_are_equivariant(reflect):
    L = 3
    q = so3.random_orthogonal(gen(11), reflect=reflect)
    d = so3.wigner_d(q, L)
    det = -1.0 if reflect else 1.0
    cg = so3.clebsch_gordan(L, L, L)
    x, y = torch.randn(16, generator=gen(1), dtype=DT), torch.randn(16, generator=gen(2), dtype=DT)
    z = torch.einsum("a,b,abc->c", x, y, cg)
    zq = torch.einsum("a,b,abc->c", d @ x, d @ y, cg)
    # D(Q) includes det^l per degree, so a coupled (l1, l2 -> l3) term picks up det^(l1+l2-l3)
    for l1 in range(L + 1):
        for l2 in range(L + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, L) + 1):
                s = slice(l3 * l3, (l3 + 1) ** 2)
                xi = torch.zeros_like(x)
                xi[l1 * l1 : (l1 + 1) ** 2] = x[l1 * l1 : (l1 + 1) ** 2]
                yi = torch.zeros_like(y)
                yi[l2 * l2 : (l2 + 1) ** 2] = y[l2 * l2 : (l2 + 1) ** 2]
                zi = torch.einsum("a,b,abc->c", xi, yi, cg)[s]
                zqi = torch.einsum("a,b,abc->c", d @ xi, d @ yi, cg)[s]
                torch.testing.assert_close(zqi, det ** (l1 + l2 - l3) * d[s, s] @ zi, rtol=0, atol=1e-12)
    assert not torch.allclose(z, zq)  # the check above is not vacuous


def test_clebsch_gordan_known_values():
    """Degree (1, 1) in Cartesian order: to 0 the dot product / sqrt(3), to 1 the cross product / sqrt(2)."""
    c0 = so3.clebsch_gordan_for_degrees(1, 1, 0)[:3, :3, :1]
    assert torch.allclose(c0.abs()[..., 0], torch.eye(3, dtype=DT) / math.sqrt(3), atol=1e-15)
    c1 = so3.clebsch_gordan_for_degrees(1, 1, 1)[:3, :3, :3]
    eps = torch.zeros(3, 3, 3, dtype=DT)
    for i, j, k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        eps[i, j, k], eps[j, i, k] = 1, -1
    assert torch.allclose(c1.abs(), eps.abs() / math.sqrt(2), atol=1e-15)
    assert torch.allclose(c1 * c1[0, 1, 2].sign(), eps / math.sqrt(2), atol=1e-15)  # antisymmetric, a cross product


def test_cartesian_permutation_and_parities():
    assert so3.cartesian_permutation(2) == [0, 3, 1, 2, 8, 4, 7, 5, 6]
    assert so3.parity_of_components(1, 2) == [0, 1, 1, 1, 0, 0, 0, 0, 0]
    assert so3.parity_of_components(2, 1) == [0, 0, 0, 0, 1, 1, 1, 1]


@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
def test_transform_features_follows_parity(reflect):
    """P=1 features transform like the harmonics; in P=2 features the odd channel carries the
    inversion sign: a true vector (odd, l=1) flips under inversion, a pseudovector does not."""
    inv = -torch.eye(3, dtype=DT)
    x = torch.randn(2, 2, 4, 3, generator=gen(5), dtype=DT)
    y = so3.transform_features(x, inv)
    torch.testing.assert_close(y[:, 0, 0], x[:, 0, 0])  # scalar
    torch.testing.assert_close(y[:, 1, 0], -x[:, 1, 0])  # pseudoscalar
    torch.testing.assert_close(y[:, 0, 1:], x[:, 0, 1:])  # pseudovector
    torch.testing.assert_close(y[:, 1, 1:], -x[:, 1, 1:])  # vector
    q = so3.random_orthogonal(gen(8), reflect=reflect)
    x1 = torch.randn(3, 1, 9, 2, generator=gen(6), dtype=DT)
    torch.testing.assert_close(so3.transform_features(x1, q), torch.einsum("cd,npdf->npcf", so3.wigner_d(q, 2), x1))
    # a group action: Q1 then Q2 equals Q2 Q1
    q2 = so3.random_orthogonal(gen(9), reflect=True)
    torch.testing.assert_close(so3.transform_features(so3.transform_features(x, q), q2), so3.transform_features(x, q2 @ q),
                               rtol=0, atol=1e-12)


def test_errors_are_clear():
    with pytest.raises(IrrepsError, match=r"spherical_harmonics: r must have shape \[\.\.\., 3\]"):
        so3.spherical_harmonics(torch.zeros(4, 2), 1)
    with pytest.raises(IrrepsError, match=r"max_degree must be an int >= 0, got -1"):
        so3.spherical_harmonics(torch.zeros(4, 3), -1)
    with pytest.raises(IrrepsError, match=r"normalization must be one of"):
        so3.spherical_harmonics(torch.zeros(4, 3), 1, normalization="unit")
    with pytest.raises(IrrepsError, match=r"max_degree2 must be an int >= 0"):
        so3.clebsch_gordan(1, -2, 1)
    with pytest.raises(IrrepsError, match=r"axis -2 must have size \(L\+1\)\^2"):
        so3.check_irreps((3, 1, 5, 2))
    with pytest.raises(IrrepsError, match=r"axis -3 \(parity\) must have size 1 or 2"):
        so3.check_irreps((3, 3, 4, 2))
    with pytest.raises(IrrepsError, match=r"at least 3 dims"):
        so3.check_irreps((4, 2))
    with pytest.raises(IrrepsError, match=r"wigner_d: Q must be \[3, 3\]"):
        so3.wigner_d(torch.eye(2), 1)
