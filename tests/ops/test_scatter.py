import pytest
import torch

from distgnn import ops


def loop_reduce(src, index, n, how):
    out = torch.zeros((n,) + tuple(src.shape[1:]), dtype=src.dtype)
    for i in range(n):
        rows = src[index == i]
        if rows.shape[0] == 0:
            continue
        out[i] = {"sum": rows.sum(0), "mean": rows.mean(0), "max": rows.max(0).values,
                  "min": rows.min(0).values, "prod": rows.prod(0)}[how]
    return out


@pytest.mark.parametrize("how", ops.REDUCTIONS)
@pytest.mark.parametrize("trailing", [(), (3,), (2, 3)], ids=["1d", "2d", "3d"])
def test_scatter_matches_loop_with_empty_segments_zero(how, trailing):
    g = torch.Generator().manual_seed(0)
    src = torch.randn((20,) + trailing, generator=g, dtype=torch.float64)
    index = torch.randint(0, 6, (20,), generator=g)
    index[index == 4] = 5  # segment 4 (and 6) empty
    out = ops.scatter(src, index, 7, how)
    torch.testing.assert_close(out, loop_reduce(src, index, 7, how))
    assert torch.count_nonzero(out[4]) == 0 and torch.count_nonzero(out[6]) == 0


@pytest.mark.parametrize("how", ["sum", "mean", "max", "min", "prod"])
def test_scatter_gradcheck(how):
    g = torch.Generator().manual_seed(1)
    src = torch.randn(12, 3, generator=g, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4])
    assert torch.autograd.gradcheck(lambda s: ops.scatter(s, index, 6, how), (src,))


def test_callable_reduce_and_bad_name():
    src, index = torch.ones(3, 2), torch.tensor([0, 0, 1])
    out = ops.scatter(src, index, 2, lambda m, i, n: ops.scatter_sum(m, i, n) * 10)
    assert torch.equal(out, torch.tensor([[20.0, 20.0], [10.0, 10.0]]))
    with pytest.raises(ValueError, match="aggregate must be one of sum, mean, max, min, prod or a callable"):
        ops.scatter(src, index, 2, "median")


def test_segment_softmax_normalises_each_segment_and_is_stable():
    src = torch.tensor([1000.0, 1001.0, -5.0, 3.0, 3.0], dtype=torch.float64)
    index = torch.tensor([0, 0, 1, 2, 2])
    out = ops.segment_softmax(src, index, 4)
    e = torch.exp(torch.tensor([-1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(out[:2], e / e.sum())
    torch.testing.assert_close(out[2:], torch.tensor([1.0, 0.5, 0.5], dtype=torch.float64))
    src = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: ops.segment_softmax(s, index, 4), (src,))


def test_degrees():
    ei = torch.tensor([[0, 0, 1, 2, 2, 2], [1, 2, 2, 0, 0, 2]])
    assert torch.equal(ops.in_degree(ei), torch.tensor([2.0, 1.0, 3.0]))
    assert torch.equal(ops.out_degree(ei), torch.tensor([2.0, 1.0, 3.0]))
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert torch.equal(ops.in_degree(ei, w), torch.tensor([9.0, 1.0, 11.0]))
    assert torch.equal(ops.out_degree(ei, w), torch.tensor([3.0, 3.0, 15.0]))
    assert torch.equal(ops.degree(ei[1], 4), torch.tensor([2.0, 1.0, 3.0, 0.0]))
