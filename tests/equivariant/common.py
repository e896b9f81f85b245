"""Shared helpers of the equivariant tests: small point clouds, a straightforward per-edge
reference of MessagePass (float64 loops over coupling paths), and parity bookkeeping."""
from __future__ import annotations

import functools

import torch

from distgnn.equivariant import MessagePass, basis, radial, so3
from distgnn.equivariant.dense import _fused_product

DT = torch.float64
CUTOFF = 3.0


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def cloud(n: int = 7, seed: int = 0, scale: float = 1.2) -> torch.Tensor:
    """``[n, 3]`` random positions (float64)."""
    return torch.randn(n, 3, generator=gen(seed), dtype=DT) * scale


def radius_edges(pos: torch.Tensor, cutoff: float = CUTOFF) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dst, src)`` of every ordered pair closer than ``cutoff`` (no loops), sorted by ``dst``."""
    d = torch.cdist(pos, pos)
    dst, src = torch.nonzero((d < cutoff) & (d > 0), as_tuple=True)
    return dst, src


def features(n: int, p: int, L: int, f: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, p, (L + 1) ** 2, f, generator=gen(seed), dtype=DT)


def edge_basis(pos: torch.Tensor, dst: torch.Tensor, src: torch.Tensor, L: int, k: int = 4, cartesian_order: bool = True):
    r = pos[src] - pos[dst]
    return basis(r, max_degree=L, num=k, radial_fn=radial.reciprocal_bernstein,
                 cutoff_fn=functools.partial(radial.smooth_cutoff, cutoff=CUTOFF), cartesian_order=cartesian_order)


def randomize(module: torch.nn.Module, seed: int = 3) -> torch.nn.Module:
    """Fill every parameter with random values (so biases and unused paths are nonzero too)."""
    g = gen(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.7)
    return module


def make_layer(x, b, seed: int = 3, **kwargs) -> MessagePass:
    """A float64 MessagePass materialised for ``x`` and ``b`` with random parameters."""
    p, L, f = so3.check_irreps(x.shape)
    pb, lb, k = so3.check_irreps(b.shape)
    mp = MessagePass(**kwargs).double()
    mp.materialize(p, L, f, k, lb, pb)
    return randomize(mp, seed)


def irrep_parity(num_parity: int, channel: int, l: int) -> int:
    """0 even, 1 odd."""
    return l % 2 if num_parity == 1 else channel


def reference_tensor(w: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor, p3: int, l3max: int, cartesian_order: bool):
    """Unfused channel-wise product of single feature vectors, loop over coupling paths.

    ``w [P1, L1+1, P2, L2+1, P3, L3+1, F]``, ``x1 [P1, D1, F]``, ``x2 [P2, D2, F]`` -> ``[P3, D3, F]``.
    """
    p1n, d1, f = x1.shape
    p2n, d2, _ = x2.shape
    l1max, l2max = int(round(d1**0.5)) - 1, int(round(d2**0.5)) - 1
    out = torch.zeros(p3, (l3max + 1) ** 2, f, dtype=x1.dtype)
    for p1 in range(p1n):
        for l1 in range(l1max + 1):
            for p2 in range(p2n):
                for l2 in range(l2max + 1):
                    for c3 in range(p3):
                        for l3 in range(abs(l1 - l2), min(l1 + l2, l3max) + 1):
                            par = (irrep_parity(p1n, p1, l1) + irrep_parity(p2n, p2, l2)) % 2
                            if par != irrep_parity(p3, c3, l3):
                                continue
                            cg = so3.clebsch_gordan_for_degrees(l1, l2, l3, cartesian_order)[: 2 * l1 + 1, : 2 * l2 + 1, : 2 * l3 + 1]
                            a = x1[p1, l1 * l1 : (l1 + 1) ** 2]  # (2l1+1, F)
                            b = x2[p2, l2 * l2 : (l2 + 1) ** 2]
                            z = torch.einsum("af,bf,abc->cf", a, b, cg)
                            out[c3, l3 * l3 : (l3 + 1) ** 2] += w[p1, l1, p2, l2, c3, l3] * z
    return out


def reference_dense(kernel: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """``x [..., P, D, Fin]`` -> ``[..., P, D, Fout]`` degree by degree."""
    p, d, _ = x.shape[-3:]
    L = int(round(d**0.5)) - 1
    blocks = []
    for c in range(p):
        per_l = [x[..., c, l * l : (l + 1) ** 2, :] @ kernel[c, l] for l in range(L + 1)]
        blocks.append(torch.cat(per_l, dim=-2))
    y = torch.stack(blocks, dim=-3)
    if bias is not None:
        y = y.clone()
        y[..., 0, 0, :] += bias
    return y


def reference_message_pass(mp: MessagePass, x: torch.Tensor, b: torch.Tensor, dst, src, num_nodes: int, weights=None):
    """Per edge: filter = Dense(b_e), product with x[src_e] (unfused: path loop; fused: the
    matrix formulation), times weights_e, summed into dst_e."""
    layout = mp.product.layout
    pb, lb, p, L, p3, l3, f = layout
    out = torch.zeros(num_nodes, p3, (l3 + 1) ** 2, f, dtype=x.dtype)
    bias = mp.filter.bias if mp.use_basis_bias else None
    for e in range(dst.numel()):
        filt = reference_dense(mp.filter.kernel, bias, b[e])  # (Pb, Db, F)
        xe = x[src[e]] if weights is None else x[src[e]] * weights[e]
        if mp.use_fused_tensor:
            k = {name: getattr(mp.fused_tensor, name) for name in mp.fused_tensor._KERNELS}
            z = _fused_product(filt, xe, k, layout[:6], mp.cartesian_order)
        else:
            z = reference_tensor(mp.tensor.kernel, filt, xe, p3, l3, mp.cartesian_order)
        out[dst[e]] = out[dst[e]] + z
    return out
