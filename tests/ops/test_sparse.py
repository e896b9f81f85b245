import pytest
import torch

from distgnn.ops import CSR, spmm


def reference(src, dst, w, x, n):
    return torch.zeros((n,) + tuple(x.shape[1:]), dtype=x.dtype).index_add(0, dst, x[src] * w.view(-1, *[1] * (x.dim() - 1)))


@pytest.mark.parametrize("trailing", [(3,), (2, 3)], ids=["2d", "3d"])
def test_spmm_matches_gather_scatter_rectangular(trailing):
    g = torch.Generator().manual_seed(0)
    src, dst = torch.randint(0, 9, (30,), generator=g), torch.randint(0, 5, (30,), generator=g)
    csr = CSR.from_edges(src, dst, 5, 9)
    x = torch.randn((9,) + trailing, generator=g, dtype=torch.float64)
    w = torch.randn(30, generator=g, dtype=torch.float64)
    torch.testing.assert_close(spmm(csr, w, x), reference(src, dst, w, x, 5))
    torch.testing.assert_close(spmm(csr, None, x), reference(src, dst, torch.ones(30, dtype=torch.float64), x, 5))


def test_spmm_gradcheck_values_and_features():
    g = torch.Generator().manual_seed(1)
    src, dst = torch.randint(0, 7, (25,), generator=g), torch.randint(0, 6, (25,), generator=g)
    csr = CSR.from_edges(src, dst, 6, 7)
    x = torch.randn(7, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(25, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w_, x_: spmm(csr, w_, x_), (w, x))


def test_spmm_empty_and_unsupported_dtype_fall_back():
    csr = CSR.from_edges(torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), 3, 3)
    assert torch.equal(spmm(csr, None, torch.ones(3, 2)), torch.zeros(3, 2))
    src, dst = torch.tensor([0, 1]), torch.tensor([1, 1])
    csr = CSR.from_edges(src, dst, 2, 2)
    x = torch.tensor([[1.0], [2.0]], dtype=torch.bfloat16)
    assert torch.equal(spmm(csr, None, x), torch.tensor([[0.0], [3.0]], dtype=torch.bfloat16))


def test_per_head_spmm_matches_reference_and_gradchecks():
    g = torch.Generator().manual_seed(2)
    src, dst = torch.randint(0, 7, (25,), generator=g), torch.randint(0, 6, (25,), generator=g)
    csr = CSR.from_edges(src, dst, 6, 7)
    x = torch.randn(7, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)  # (C, H, K)
    w = torch.randn(25, 3, generator=g, dtype=torch.float64, requires_grad=True)  # (E, H)
    expected = torch.zeros(6, 3, 4, dtype=torch.float64).index_add(0, dst, x[src] * w.unsqueeze(-1))
    torch.testing.assert_close(spmm(csr, w, x), expected)
    assert torch.autograd.gradcheck(lambda w_, x_: spmm(csr, w_, x_), (w, x))
    with pytest.raises(ValueError, match=r"need x \[num_cols, 3, K\]"):
        spmm(csr, w, torch.randn(7, 2, 4, dtype=torch.float64))
