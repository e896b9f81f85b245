import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from distgnn.ops import CSR, spmm
from distgnn.ops.sparse import sddmm


def reference(src, dst, w, x, n):
    return torch.zeros((n,) + tuple(x.shape[1:]), dtype=x.dtype).index_add(0, dst, x[src] * w.view(-1, *[1] * (x.dim() - 1)))


def dense_a(src, dst, w, rows, cols):
    """``A [rows, cols]`` (``[rows, cols, H]`` for ``w [E, H]``): duplicate edges add up."""
    a = torch.zeros((rows, cols) + tuple(w.shape[1:]), dtype=w.dtype)
    return a.index_put((dst, src), w, accumulate=True)


def dense_spmm(src, dst, w, x, rows):
    """``A(w) @ x`` with plain dense matmul (per head: ``einsum``): the float64 reference."""
    a = dense_a(src, dst, w, rows, x.shape[0])
    if w.dim() == 1:
        return a @ x.reshape(x.shape[0], -1)
    return torch.einsum("rch,chk->rhk", a, x)


# rows, cols, edges (src, dst): duplicate edges, unsorted edges, self-loops, a rectangular A, no edge
GRAPHS = {
    "duplicates-unsorted-loops": (
        4, 5, [(4, 1), (0, 2), (2, 2), (1, 0), (4, 1), (3, 3), (0, 2), (4, 1), (1, 3), (2, 0)]
    ),
    "self-loops-only": (3, 3, [(2, 2), (0, 0), (2, 2), (1, 1)]),
    "rectangular-random": (6, 7, None),
    "empty": (3, 4, []),
}
GRAPH_PARAMS = [pytest.param(name, id=name) for name in GRAPHS]


def graph(name):
    rows, cols, edges = GRAPHS[name]
    if edges is None:
        g = torch.Generator().manual_seed(1)
        src, dst = torch.randint(0, cols, (9,), generator=g), torch.randint(0, rows, (9,), generator=g)
        src, dst = torch.cat([src, src[:2]]), torch.cat([dst, dst[:2]])  # two duplicates
    elif edges:
        src, dst = torch.tensor(edges).t()
    else:
        src = dst = torch.empty(0, dtype=torch.long)
    return src, dst, rows, cols


def leaves(shape_w, shape_x, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape_w, generator=g, dtype=torch.float64).requires_grad_()
    x = torch.randn(shape_x, generator=g, dtype=torch.float64).requires_grad_()
    return w, x


@pytest.mark.parametrize("trailing", [(3,), (2, 3)], ids=["2d", "3d"])
def test_spmm_matches_gather_scatter_rectangular(trailing):
    g = torch.Generator().manual_seed(0)
    src, dst = torch.randint(0, 9, (30,), generator=g), torch.randint(0, 5, (30,), generator=g)
    csr = CSR.from_edges(src, dst, 5, 9)
    x = torch.randn((9,) + trailing, generator=g, dtype=torch.float64)
    w = torch.randn(30, generator=g, dtype=torch.float64)
    torch.testing.assert_close(spmm(csr, w, x), reference(src, dst, w, x, 5))
    torch.testing.assert_close(spmm(csr, None, x), reference(src, dst, torch.ones(30, dtype=torch.float64), x, 5))


def test_spmm_empty_and_unsupported_dtype_fall_back():
    csr = CSR.from_edges(torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), 3, 3)
    assert torch.equal(spmm(csr, None, torch.ones(3, 2)), torch.zeros(3, 2))
    src, dst = torch.tensor([0, 1]), torch.tensor([1, 1])
    csr = CSR.from_edges(src, dst, 2, 2)
    x = torch.tensor([[1.0], [2.0]], dtype=torch.bfloat16)
    assert torch.equal(spmm(csr, None, x), torch.tensor([[0.0], [3.0]], dtype=torch.bfloat16))


def test_per_head_spmm_matches_reference():
    g = torch.Generator().manual_seed(2)
    src, dst = torch.randint(0, 7, (25,), generator=g), torch.randint(0, 6, (25,), generator=g)
    csr = CSR.from_edges(src, dst, 6, 7)
    x = torch.randn(7, 3, 4, generator=g, dtype=torch.float64)  # (C, H, K)
    w = torch.randn(25, 3, generator=g, dtype=torch.float64)  # (E, H)
    expected = torch.zeros(6, 3, 4, dtype=torch.float64).index_add(0, dst, x[src] * w.unsqueeze(-1))
    torch.testing.assert_close(spmm(csr, w, x), expected)
    with pytest.raises(ValueError, match=r"need x \[num_cols, 3, K\]"):
        spmm(csr, w, torch.randn(7, 2, 4, dtype=torch.float64))


def test_transposed_view_swaps_the_orientations():
    src, dst, rows, cols = graph("duplicates-unsorted-loops")
    csr = CSR.from_edges(src, dst, rows, cols)
    w = torch.randn(src.numel(), dtype=torch.float64)
    t = csr.t()
    assert (t.num_rows, t.num_cols) == (cols, rows)
    torch.testing.assert_close(t.matrix(w).to_dense(), dense_a(src, dst, w, rows, cols).t())
    torch.testing.assert_close(csr.matrix(w, transpose=True).to_dense(), t.matrix(w).to_dense())
    tt = t.t()
    for name in ("crow", "col", "perm", "crow_t", "col_t", "perm_t"):
        assert getattr(tt, name) is getattr(csr, name)
    # the targets of the CSR positions, expanded from the row pointers (not stored)
    torch.testing.assert_close(csr.row, dst[csr.perm], rtol=0, atol=0)
    torch.testing.assert_close(t.row, src[csr.perm_t], rtol=0, atol=0)
    torch.testing.assert_close(csr.row_t, t.row, rtol=0, atol=0)


@pytest.mark.parametrize("heads", [None, 2], ids=["1d", "per-head"])
@pytest.mark.parametrize("name", GRAPH_PARAMS)
def test_sddmm_in_edge_order(name, heads):
    src, dst, rows, cols = graph(name)
    csr = CSR.from_edges(src, dst, rows, cols)
    h = () if heads is None else (heads,)
    a, b = leaves((rows,) + h + (3,), (cols,) + h + (3,), seed=3)
    expected = (a[dst] * b[src]).sum(-1)  # (E,) or (E, H)
    torch.testing.assert_close(sddmm(csr, a, b), expected)
    assert gradgradcheck(lambda a_, b_: sddmm(csr, a_, b_), (a, b))


# -- derivatives: gradcheck and gradgradcheck of values and x --------------------------------------
@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(((), (2,)), id="values[E]-x[C,K]"),
        pytest.param(((), (2, 2)), id="values[E]-x[C,2,K]"),
        pytest.param(((2,), (2, 2)), id="values[E,H]-x[C,H,K]"),
    ],
)
@pytest.mark.parametrize("name", GRAPH_PARAMS)
def test_spmm_gradcheck_and_gradgradcheck(name, shape):
    src, dst, rows, cols = graph(name)
    csr = CSR.from_edges(src, dst, rows, cols)
    w, x = leaves((src.numel(),) + shape[0], (cols,) + shape[1], seed=4)
    fn = lambda w_, x_: spmm(csr, w_, x_)  # noqa: E731
    torch.testing.assert_close(fn(w, x).reshape(rows, -1), dense_spmm(src, dst, w, x, rows).reshape(rows, -1))
    assert gradcheck(fn, (w, x))
    assert gradgradcheck(fn, (w, x))
    if w.dim() == 1 and x.dim() == 2:
        assert gradgradcheck(lambda x_: spmm(csr, w.detach(), x_), (x,))  # values constant
        assert gradgradcheck(lambda w_: spmm(csr, w_, x.detach()), (w,))  # features constant
        assert gradgradcheck(lambda x_: spmm(csr, None, x_), (x,))  # all-ones values


def _second_order(spmm_fn, w, x, r, s):
    """Second derivatives of ``f = <r, A(w) x>``-based quantities through both paths of the backward."""
    out = spmm_fn(w, x)
    gw, gx = torch.autograd.grad((out * r).sum() + (out**2).sum(), (w, x), create_graph=True)
    # through dL/dx (spmm on A^T) and dL/dw (sddmm), differentiated again w.r.t. both
    return torch.autograd.grad((gx * s).sum() + (gw**2).sum(), (w, x))


@pytest.mark.parametrize("heads", [None, 3], ids=["1d", "per-head"])
def test_second_derivative_matches_dense_reference_with_duplicate_edges(heads):
    """The previous backward left autograd to differentiate a sparse-tensor constructor, whose
    gradient merges duplicate entries: at second order it raised on this graph ("returned an
    invalid gradient"). Now the second derivative equals the one of a dense float64 matmul."""
    src, dst, rows, cols = graph("duplicates-unsorted-loops")
    csr = CSR.from_edges(src, dst, rows, cols)
    h = () if heads is None else (heads,)
    w, x = leaves((src.numel(),) + h, (cols,) + h + (2,), seed=5)
    g = torch.Generator().manual_seed(6)
    r = torch.randn((rows,) + h + (2,), generator=g, dtype=torch.float64)
    s = torch.randn(x.shape, generator=g, dtype=torch.float64)
    got = _second_order(lambda w_, x_: spmm(csr, w_, x_), w, x, r, s)
    expected = _second_order(lambda w_, x_: dense_spmm(src, dst, w_, x_, rows).view((rows,) + h + (2,)), w, x, r, s)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # duplicate copies of an edge get equal (not merged, not dropped) value derivatives
    assert torch.equal(got[0][0], got[0][4]) and torch.equal(got[0][0], got[0][7])


def test_third_derivative_matches_dense_reference():
    src, dst, rows, cols = graph("duplicates-unsorted-loops")
    csr = CSR.from_edges(src, dst, rows, cols)
    w, x = leaves((src.numel(),), (cols, 2), seed=7)

    def third(fn):
        out = fn(w, x)
        (gx,) = torch.autograd.grad((out**3).sum(), (x,), create_graph=True)
        (gw,) = torch.autograd.grad((gx**2).sum(), (w,), create_graph=True)
        return torch.autograd.grad((gw * torch.arange(w.numel(), dtype=w.dtype)).sum(), (w, x))

    got = third(lambda w_, x_: spmm(csr, w_, x_))
    expected = third(lambda w_, x_: dense_spmm(src, dst, w_, x_, rows))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


def test_float32_first_order_uses_the_csr_product_and_matches_float64():
    src, dst, rows, cols = graph("rectangular-random")
    csr = CSR.from_edges(src, dst, rows, cols)
    w, x = leaves((src.numel(), 2), (cols, 2, 3), seed=8)
    r = torch.randn(rows, 2, 3, dtype=torch.float64)
    g64 = torch.autograd.grad((spmm(csr, w, x) * r).sum(), (w, x))
    w32, x32 = w.detach().float().requires_grad_(), x.detach().float().requires_grad_()
    out32 = spmm(csr, w32, x32)
    assert out32.grad_fn.next_functions[0][0].name() == "_SpMMBackward"  # the CSR product, under a view
    g32 = torch.autograd.grad((out32 * r.float()).sum(), (w32, x32))
    for a, b in zip(g32, g64):
        torch.testing.assert_close(a, b.float(), rtol=1e-5, atol=1e-5)
