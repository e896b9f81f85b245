"""Irreducible representations of O(3): real spherical harmonics, Clebsch-Gordan coefficients,
Wigner-D matrices and the feature layout used by the equivariant layers (a port of e3x 1.0.2).

Feature layout (e3x's): ``x [..., P, (L+1)^2, F]``. Axis -2 stacks the degrees ``l = 0..L``,
``2l+1`` orders each; axis -3 is the parity axis:

- ``P = 1``: degree ``l`` has parity ``(-1)^l`` (proper tensors only: scalars, vectors, ...);
- ``P = 2``: channel 0 holds the even-parity irreps of every degree, channel 1 the odd ones
  (so channel 1, degree 0 is a pseudoscalar and channel 0, degree 1 a pseudovector).

Orders of a degree: ``cartesian_order=False`` stores ``m = -l, ..., l``; ``cartesian_order=True``
(e3x's default) stores ``m = +l, -l, +(l-1), -(l-1), ..., 0``, so degree 1 is ``(x, y, z)``.

Spherical harmonics: real, z is the polar axis, no Condon-Shortley phase, Racah normalisation
(``sum_m Y_lm(r)^2 = 1`` on the unit sphere), written as homogeneous polynomials of ``(x, y, z)``
(so a zero vector gives ``Y_00 = 1`` and 0 elsewhere, as in e3x)::

    Y_l^0 = Pi_l^0(z),  Y_l^{+m} = sqrt(2) Pi_l^m(z) Re((x + i y)^m),  Y_l^{-m} = sqrt(2) Pi_l^m(z) Im((x + i y)^m)
    Pi_l^m(z) = sqrt((l-m)!/(l+m)!) sum_k (-1)^k 2^-l C(l,k) C(2l-2k,l) (l-2k)!/(l-2k-m)! z^(l-2k-m) r^(2k)

Clebsch-Gordan coefficients: the real coefficients that couple degrees ``l1 x l2 -> l3``,
obtained from the complex (Condon-Shortley) ones with the unitary change of basis to the real
harmonics above and the phase ``i^(l1+l2-l3)`` that makes them real — e3x's convention, so the
signs of every ``(l1, l2, l3)`` block equal e3x's. They are orthonormal:
``sum_{m1,m2} C[m1,m2,m3] C[m1,m2,m3'] = delta(m3,m3')``.

Tables are computed once per maximum degree in exact rational arithmetic (Python integers) and
cached per dtype and device.
"""
from __future__ import annotations

import math
import threading
from fractions import Fraction
from functools import lru_cache

import torch
from torch import Tensor

__all__ = [
    "NORMALIZATIONS",
    "IrrepsError",
    "cartesian_permutation",
    "check_irreps",
    "clebsch_gordan",
    "clebsch_gordan_for_degrees",
    "degree_of_index",
    "parity_of_components",
    "random_orthogonal",
    "random_rotation",
    "solid_harmonics",
    "spherical_harmonics",
    "transform_features",
    "wigner_d",
]

NORMALIZATIONS = ("racah", "schmidt", "4pi", "orthonormal")


class IrrepsError(ValueError):
    """Raised for a malformed irreps argument; the message says what was expected."""


def _check_degree(degree: int, name: str = "max_degree") -> int:
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise IrrepsError(f"{name} must be an int >= 0, got {degree!r}")
    return degree


def check_irreps(shape, name: str = "features") -> tuple[int, int, int]:
    """``(P, L, F)`` of a feature shape ``[..., P, (L+1)^2, F]``, or a clear error."""
    shape = tuple(shape)
    if len(shape) < 3:
        raise IrrepsError(f"{name} must have shape [..., P, (L+1)^2, F] (at least 3 dims), got {shape}")
    if shape[-3] not in (1, 2):
        raise IrrepsError(f"{name}: axis -3 (parity) must have size 1 or 2, got shape {shape}")
    L = round(math.sqrt(shape[-2])) - 1
    if L < 0 or (L + 1) ** 2 != shape[-2]:
        raise IrrepsError(f"{name}: axis -2 must have size (L+1)^2 for some degree L, got {shape[-2]} in shape {shape}")
    return shape[-3], L, shape[-1]


# ------------------------------------------------------------------------------------------------
# orderings
def cartesian_permutation(max_degree: int) -> list[int]:
    """Indices taking the standard order ``m = -l..l`` to the Cartesian order
    ``m = l, -l, l-1, -(l-1), ..., 0``: ``cart = std[..., perm]``."""
    _check_degree(max_degree)
    perm = []
    for l in range(max_degree + 1):
        for k in range(l):
            perm += [l * l + 2 * l - k, l * l + k]  # m = l-k, then m = -(l-k)
        perm.append(l * l + l)  # m = 0
    return perm


def degree_of_index(max_degree: int) -> list[int]:
    """Degree of every component ``0..(L+1)^2-1`` (the same in both orderings)."""
    return [l for l in range(max_degree + 1) for _ in range(2 * l + 1)]


def parity_of_components(num_parity: int, max_degree: int) -> list[int]:
    """Parity (0 even, 1 odd) of every component of ``[P, (L+1)^2]`` features, flattened."""
    degrees = degree_of_index(max_degree)
    if num_parity == 1:
        return [l % 2 for l in degrees]
    return [0] * len(degrees) + [1] * len(degrees)


# ------------------------------------------------------------------------------------------------
# spherical harmonics
def _binom(n: int, k: int) -> int:
    return math.comb(n, k) if 0 <= k <= n else 0


def _poly_mul(a: dict, b: dict) -> dict:
    out: dict = {}
    for (ax, ay, az), ca in a.items():
        for (bx, by, bz), cb in b.items():
            key = (ax + bx, ay + by, az + bz)
            out[key] = out.get(key, 0) + ca * cb
    return {k: v for k, v in out.items() if v != 0}


def _xy_power(m: int, imaginary: bool) -> dict:
    """Re or Im of ``(x + i y)^m`` as ``{(a, b, 0): coefficient}``."""
    out = {}
    for p in range(m + 1):  # C(m,p) x^p (i y)^(m-p)
        k = (m - p) % 4  # i^k = 1, i, -1, -i
        re, im = ((1, 0), (0, 1), (-1, 0), (0, -1))[k]
        c = _binom(m, p) * (im if imaginary else re)
        if c:
            out[(p, m - p, 0)] = c
    return out


def _r2_power(k: int) -> dict:
    """``(x^2 + y^2 + z^2)^k`` as a polynomial."""
    out = {}
    for i in range(k + 1):
        for j in range(k + 1 - i):
            h = k - i - j
            f = math.factorial
            out[(2 * i, 2 * j, 2 * h)] = f(k) // (f(i) * f(j) * f(h))
    return out


@lru_cache(maxsize=None)
def _sh_polynomials(max_degree: int) -> tuple[tuple[tuple[int, int, int], ...], tuple[tuple[float, ...], ...]]:
    """Monomial powers ``[(a, b, c)]`` (degrees 0..L) and coefficients ``[n_monomials][(L+1)^2]``
    of the Racah-normalised real spherical harmonics in standard order."""
    monomials: list[tuple[int, int, int]] = []
    index: dict = {}
    for l in range(max_degree + 1):
        for a in range(l, -1, -1):
            for b in range(l - a, -1, -1):
                index[(a, b, l - a - b)] = len(monomials)
                monomials.append((a, b, l - a - b))
    coef = [[0.0] * (max_degree + 1) ** 2 for _ in monomials]
    for l in range(max_degree + 1):
        for m in range(-l, l + 1):
            k_abs = abs(m)
            pi: dict = {}
            for k in range((l - k_abs) // 2 + 1):
                c = Fraction((-1) ** k * _binom(l, k) * _binom(2 * l - 2 * k, l) * math.factorial(l - 2 * k),
                             2**l * math.factorial(l - 2 * k - k_abs))
                term = _poly_mul({(0, 0, l - 2 * k - k_abs): c}, _r2_power(k))
                for key, v in term.items():
                    pi[key] = pi.get(key, 0) + v
            poly = _poly_mul(pi, _xy_power(k_abs, imaginary=m < 0))
            norm = math.sqrt((2 if m else 1) * math.factorial(l - k_abs) / math.factorial(l + k_abs))
            col = l * l + l + m
            for key, v in poly.items():
                coef[index[key]][col] = float(v) * norm
    return tuple(monomials), tuple(tuple(row) for row in coef)


_TABLES: dict = {}
_TABLES_LOCK = threading.Lock()


def _table(key, build, dtype: torch.dtype, device) -> Tensor:
    """A constant tensor built once per (key, dtype, device)."""
    full = (key, dtype, str(torch.device(device) if device is not None else torch.device("cpu")))
    t = _TABLES.get(full)
    if t is None:
        with _TABLES_LOCK:
            t = _TABLES.get(full)
            if t is None:
                t = _TABLES[full] = build().to(dtype=dtype, device=device)
    return t


def _normalization_constant(normalization: str, l: int) -> float:
    if normalization not in NORMALIZATIONS:
        raise IrrepsError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if normalization == "4pi":
        return math.sqrt(2 * l + 1)
    if normalization == "orthonormal":
        return math.sqrt((2 * l + 1) / (4 * math.pi))
    return 1.0


def safe_normalize(r: Tensor) -> tuple[Tensor, Tensor]:
    """``(r / |r|, |r|)`` along the last axis; vectors whose squared norm underflows are left as
    they are (norm 0), so values and all derivatives stay finite at ``r = 0`` (e3x's rule)."""
    n2 = (r * r).sum(-1, keepdim=True)  # (..., 1)
    ok = n2 > torch.finfo(r.dtype).tiny
    n = torch.sqrt(torch.where(ok, n2, torch.ones_like(n2)))
    u = r / torch.where(ok, n, torch.ones_like(n))  # (..., 3)
    return u, torch.where(ok, n, torch.zeros_like(n)).squeeze(-1)


def _integer_powers(r: Tensor, max_degree: int) -> Tensor:
    """``[..., L+1, 3]`` powers ``r_k^j`` by repeated products (finite derivatives at 0)."""
    powers = [torch.ones_like(r)]
    for _ in range(max_degree):
        powers.append(powers[-1] * r)
    return torch.stack(powers, dim=-2)  # (..., L+1, 3)


def spherical_harmonics(
    r: Tensor,
    max_degree: int,
    r_is_normalized: bool = False,
    cartesian_order: bool = True,
    normalization: str = "racah",
) -> Tensor:
    """Real spherical harmonics ``Y_l^m(r)`` for ``l = 0..max_degree`` (see the module docstring).

    Args:
        r: ``[..., 3]`` Cartesian vectors.
        max_degree: ``L``.
        r_is_normalized: skip normalising ``r`` (then non-unit ``r`` gives the solid harmonics
            ``|r|^l Y_l^m``, as in e3x).
        cartesian_order: order of the ``2l+1`` components (default True, as e3x).
        normalization: ``"racah"``/``"schmidt"`` (``sum_m Y^2 = 1``), ``"4pi"`` (times
            ``sqrt(2l+1)``) or ``"orthonormal"`` (times ``sqrt((2l+1)/4pi)``).

    Shapes: ``r [..., 3] -> [..., (L+1)^2]``.
    """
    if not isinstance(r, Tensor) or r.dim() == 0 or r.shape[-1] != 3:
        shape = tuple(r.shape) if isinstance(r, Tensor) else type(r).__name__
        raise IrrepsError(f"spherical_harmonics: r must have shape [..., 3], got {shape}")
    _check_degree(max_degree)
    norms = [_normalization_constant(normalization, l) for l in range(max_degree + 1)]
    if not r_is_normalized:
        r, _ = safe_normalize(r)
    coef = _table(("sh", max_degree, cartesian_order, normalization),
                  lambda: _sh_matrix(max_degree, cartesian_order, norms), r.dtype, r.device)  # (n_mono, (L+1)^2)
    powers = _table(("sh-powers", max_degree), lambda: torch.tensor(_sh_polynomials(max_degree)[0]),
                    torch.long, r.device)  # (n_mono, 3)
    pw = _integer_powers(r, max_degree)  # (..., L+1, 3)
    mono = pw[..., powers[:, 0], 0] * pw[..., powers[:, 1], 1] * pw[..., powers[:, 2], 2]  # (..., n_mono)
    return mono @ coef  # (..., (L+1)^2)


def _sh_matrix(max_degree: int, cartesian_order: bool, norms: list[float]) -> Tensor:
    _, coef = _sh_polynomials(max_degree)
    m = torch.tensor(coef, dtype=torch.float64)
    scale = torch.tensor([norms[l] for l in degree_of_index(max_degree)], dtype=torch.float64)
    m = m * scale
    if cartesian_order:
        m = m[:, cartesian_permutation(max_degree)]
    return m


def solid_harmonics(r: Tensor, max_degree: int, cartesian_order: bool = True) -> Tensor:
    """Regular solid harmonics ``|r|^l Y_l^m(r)`` (Racah). Shapes: ``[..., 3] -> [..., (L+1)^2]``."""
    return spherical_harmonics(r, max_degree, r_is_normalized=True, cartesian_order=cartesian_order)


# ------------------------------------------------------------------------------------------------
# Clebsch-Gordan coefficients
def _factorial(n: int) -> int:
    return math.factorial(n)


def _complex_cg(j1: int, m1: int, j2: int, m2: int, j: int, m: int) -> float:
    """<j1 m1 j2 m2 | j m> (Condon-Shortley), by Racah's formula in exact arithmetic."""
    if m != m1 + m2 or not abs(j1 - j2) <= j <= j1 + j2 or abs(m1) > j1 or abs(m2) > j2 or abs(m) > j:
        return 0.0
    f = _factorial
    pre = Fraction((2 * j + 1) * f(j + j1 - j2) * f(j - j1 + j2) * f(j1 + j2 - j), f(j1 + j2 + j + 1))
    pre *= f(j + m) * f(j - m) * f(j1 - m1) * f(j1 + m1) * f(j2 - m2) * f(j2 + m2)
    s = Fraction(0)
    for k in range(0, j1 + j2 - j + 1):
        args = (k, j1 + j2 - j - k, j1 - m1 - k, j2 + m2 - k, j - j2 + m1 + k, j - j1 - m2 + k)
        if min(args) < 0:
            continue
        den = 1
        for a in args:
            den *= f(a)
        s += Fraction((-1) ** k, den)
    if s == 0:
        return 0.0
    return math.copysign(math.sqrt(pre * s * s), s)


def _real_from_complex(l: int) -> list[dict[int, complex]]:
    """Row ``m`` (standard order index ``m + l``): the real harmonic ``Y_l^m`` (no Condon-Shortley
    phase) as ``{mu: coefficient}`` of the complex Condon-Shortley harmonics ``Y_l^mu``."""
    s = 1 / math.sqrt(2)
    rows = []
    for m in range(-l, l + 1):
        if m == 0:
            rows.append({0: 1.0})
        elif m > 0:  # sqrt(2) Re: ((-1)^m Y_m + Y_-m) / sqrt(2)
            rows.append({m: (-1) ** m * s, -m: s})
        else:  # sqrt(2) Im of the |m| harmonic: i (Y_-|m| - (-1)^|m| Y_|m|) / sqrt(2)
            k = -m
            rows.append({-k: 1j * s, k: -1j * (-1) ** k * s})
    return rows


@lru_cache(maxsize=None)
def _real_cg_block(l1: int, l2: int, l3: int) -> tuple[tuple[tuple[float, ...], ...], ...]:
    """Real CG block ``[2l1+1][2l2+1][2l3+1]`` (standard order), e3x's phase convention."""
    u1, u2, u3 = _real_from_complex(l1), _real_from_complex(l2), _real_from_complex(l3)
    phase = 1j ** (l1 + l2 - l3)
    out = []
    for r1 in u1:
        plane = []
        for r2 in u2:
            row = []
            for r3 in u3:
                acc = 0j
                for mu1, c1 in r1.items():
                    for mu2, c2 in r2.items():
                        c3 = r3.get(mu1 + mu2)
                        if c3 is not None:
                            acc += c1 * c2 * c3.conjugate() * _complex_cg(l1, mu1, l2, mu2, l3, mu1 + mu2)
                value = phase * acc
                if abs(value.imag) > 1e-12:  # pragma: no cover - the phase makes every entry real
                    raise AssertionError(f"complex Clebsch-Gordan coefficient for ({l1}, {l2}, {l3})")
                row.append(0.0 if abs(value.real) < 1e-15 else value.real)
            plane.append(tuple(row))
        out.append(tuple(plane))
    return tuple(out)


def _cg_tensor(max1: int, max2: int, max3: int, cartesian_order: bool) -> Tensor:
    d1, d2, d3 = (max1 + 1) ** 2, (max2 + 1) ** 2, (max3 + 1) ** 2
    cg = torch.zeros(d1, d2, d3, dtype=torch.float64)
    for l1 in range(max1 + 1):
        for l2 in range(max2 + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, max3) + 1):
                block = torch.tensor(_real_cg_block(l1, l2, l3), dtype=torch.float64)
                cg[l1 * l1 : (l1 + 1) ** 2, l2 * l2 : (l2 + 1) ** 2, l3 * l3 : (l3 + 1) ** 2] = block
    if cartesian_order:
        cg = cg[cartesian_permutation(max1)][:, cartesian_permutation(max2)][:, :, cartesian_permutation(max3)]
    return cg


def clebsch_gordan(
    max_degree1: int,
    max_degree2: int,
    max_degree3: int,
    cartesian_order: bool = True,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """Real Clebsch-Gordan coefficients for all degrees at once (see the module docstring).

    Shapes: ``[(L1+1)^2, (L2+1)^2, (L3+1)^2]``; entry ``[a, b, c]`` couples component ``a`` of the
    first factor and ``b`` of the second into component ``c`` of the product.
    """
    for name, d in (("max_degree1", max_degree1), ("max_degree2", max_degree2), ("max_degree3", max_degree3)):
        _check_degree(d, name)
    return _table(("cg", max_degree1, max_degree2, max_degree3, cartesian_order),
                  lambda: _cg_tensor(max_degree1, max_degree2, max_degree3, cartesian_order), dtype, device)


def clebsch_gordan_for_degrees(
    degree1: int, degree2: int, degree3: int, cartesian_order: bool = True, *, dtype=torch.float64, device=None
) -> Tensor:
    """The ``[2l1+1, 2l2+1, 2l3+1]`` block of :func:`clebsch_gordan` for one degree triple."""
    full = clebsch_gordan(degree1, degree2, degree3, cartesian_order, dtype=dtype, device=device)
    return full[degree1**2 :, degree2**2 :, degree3**2 :]


# ------------------------------------------------------------------------------------------------
# rotations, reflections, Wigner-D matrices (used by the tests and by anyone checking equivariance)
def random_rotation(generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64) -> Tensor:
    """A uniformly random proper rotation ``[3, 3]`` (QR of a Gaussian matrix, det = +1)."""
    a = torch.randn(3, 3, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))  # Haar-distributed
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.to(dtype)


def random_orthogonal(
    generator: torch.Generator | None = None, reflect: bool = True, dtype: torch.dtype = torch.float64
) -> Tensor:
    """A random orthogonal matrix ``[3, 3]``: a rotation, composed with a reflection through a
    random plane when ``reflect`` (det = -1)."""
    q = random_rotation(generator, torch.float64)
    if reflect:
        n = torch.randn(3, generator=generator, dtype=torch.float64)
        n = n / n.norm()
        q = (torch.eye(3, dtype=torch.float64) - 2 * torch.outer(n, n)) @ q
    return q.to(dtype)


def wigner_d(q: Tensor, max_degree: int, cartesian_order: bool = True) -> Tensor:
    """Block-diagonal ``D(Q) [(L+1)^2, (L+1)^2]`` with ``Y(Q r) = D(Q) Y(r)`` for any orthogonal
    ``Q [3, 3]`` (for an improper ``Q`` the blocks include ``det(Q)^l``). Found by least squares
    on sample directions (exact to float64 rounding). ``Q r`` is ``r @ Q.T`` for row vectors."""
    _check_degree(max_degree)
    if q.shape != (3, 3):
        raise IrrepsError(f"wigner_d: Q must be [3, 3], got {tuple(q.shape)}")
    g = torch.Generator().manual_seed(1234)
    n = max(3 * (max_degree + 1) ** 2, 16)
    u = torch.randn(n, 3, generator=g, dtype=torch.float64)
    qd = q.to(torch.float64)
    y = spherical_harmonics(u, max_degree, cartesian_order=cartesian_order)  # (n, D)
    yq = spherical_harmonics(u @ qd.T, max_degree, cartesian_order=cartesian_order)  # (n, D)
    dt = torch.linalg.lstsq(y, yq).solution  # yq = y @ D^T
    d = dt.T
    mask = torch.zeros_like(d)
    for l in range(max_degree + 1):
        mask[l * l : (l + 1) ** 2, l * l : (l + 1) ** 2] = 1
    return (d * mask).to(q.dtype)


def transform_features(x: Tensor, q: Tensor, cartesian_order: bool = True) -> Tensor:
    """Apply the orthogonal map ``Q`` to features ``[..., P, (L+1)^2, F]``.

    Degree ``l`` of parity ``pi`` transforms with ``D_l(R)`` for the rotation ``R = det(Q) Q``,
    times ``pi`` when ``Q`` is improper: ``P = 1`` features (parity ``(-1)^l``) transform exactly
    like the spherical harmonics; ``P = 2`` channel 1 (odd) flips sign relative to channel 0.
    """
    p, L, _ = check_irreps(x.shape)
    d = wigner_d(q, L, cartesian_order).to(x.dtype)  # (D, D)
    det = float(torch.det(q.to(torch.float64)))
    improper = det < 0
    if p == 2 and improper:
        # D_l(R) = det^l D_l(Q); even channel: D_l(R), odd channel: -D_l(R)
        sign_l = torch.tensor([(-1.0) ** l for l in degree_of_index(L)], dtype=x.dtype, device=x.device)
        d_even = d * sign_l[:, None]
        stacked = torch.stack([d_even, -d_even])  # (2, D, D)
    else:
        stacked = d.unsqueeze(0).expand(p, -1, -1)  # (P, D, D)
    return torch.einsum("pcd,...pdf->...pcf", stacked.to(x.device), x)  # (..., P, D, F)
