import pytest
import torch

from distgnn import ops
from tests.graphs import TINY, TINY_PARAMS, dense
from tests.layers.references import gcn_dense, sym_dense


def to_dense(graph, w, n):
    return dense(graph.edge_index, n, w)


@pytest.mark.parametrize("name", TINY_PARAMS)
def test_gcn_norm_matches_dense(name):
    ei, n = TINY[name]
    g, w = ops.gcn_norm(ei, dtype=torch.float64, num_nodes=n)
    torch.testing.assert_close(to_dense(g, w, n), gcn_dense(dense(ei, n)))


@pytest.mark.parametrize("name", TINY_PARAMS)
def test_sym_rw_and_laplacian_match_dense(name):
    ei, n = TINY[name]
    a = dense(ei, n)
    torch.testing.assert_close(dense(ei, n, ops.sym_norm(ei, dtype=torch.float64, num_nodes=n)), sym_dense(a))
    rw = a / a.sum(1, keepdim=True).clamp(min=1)
    torch.testing.assert_close(dense(ei, n, ops.rw_norm(ei, dtype=torch.float64, num_nodes=n)), rw)
    g, w = ops.scaled_laplacian(ei, lambda_max=1.5, dtype=torch.float64, num_nodes=n)
    lap = (2 / 1.5) * (torch.eye(n, dtype=torch.float64) - sym_dense(a)) - torch.eye(n, dtype=torch.float64)
    torch.testing.assert_close(to_dense(g, w, n), lap)


def test_weighted_gcn_norm_uses_weighted_degrees():
    ei = torch.tensor([[0, 1, 1], [1, 0, 2]])
    w = torch.tensor([2.0, 3.0, 0.5], dtype=torch.float64)
    g, wn = ops.gcn_norm(ei, w)
    torch.testing.assert_close(to_dense(g, wn, 3), gcn_dense(dense(ei, 3, w)))


def test_remaining_self_loops_never_doubled():
    ei = torch.tensor([[0, 0, 1, 1], [0, 0, 2, 1]])  # two loops at 0, one at 1
    g, w = ops.add_self_loops(ei, torch.tensor([5.0, 6.0, 7.0, 8.0]))
    a = dense(g.edge_index, 3, w)
    assert torch.equal(torch.diagonal(a), torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64))
    assert a[2, 1] == 7.0 and g.num_edges == 4


def test_estimate_lambda_max_matches_eigvalsh():
    ei, n = TINY["random"]
    ei = torch.cat([ei, ei.flip(0)], 1)  # symmetric
    a = dense(ei, n)
    lap = torch.eye(n, dtype=torch.float64) - sym_dense(a)
    expected = float(torch.linalg.eigvalsh(lap).max())
    assert abs(ops.estimate_lambda_max(ei, iterations=500, num_nodes=n) - expected) < 1e-3


def test_lambda_max_must_be_positive():
    with pytest.raises(ValueError, match="lambda_max must be positive"):
        ops.scaled_laplacian(TINY["path"][0], lambda_max=0.0)


def test_remove_self_loops_keeps_order_and_weights():
    ei = torch.tensor([[0, 1, 1, 2], [0, 2, 1, 0]])
    g, w = ops.remove_self_loops(ei, torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert g.edge_index.tolist() == [[1, 2], [2, 0]] and w.tolist() == [2.0, 4.0]


class _Spy(torch.autograd.Function):
    """Identity that records, in its backward, whether the incoming gradient is in the graph."""

    @staticmethod
    def forward(ctx, x, seen):
        ctx.seen = seen
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        ctx.seen.append(grad.requires_grad)
        return _Spy.apply(grad, ctx.seen), None


class _NoHalo:
    """The exchange of a part without halo rows: gathers zero rows, through :class:`_Spy`."""

    def __init__(self):
        self.seen = []

    def gather(self, x):
        return _Spy.apply(x[:0], self.seen)  # (0, *)

    def scatter(self, y):
        return y.new_zeros((0,) + tuple(y.shape[1:]))

    def all_reduce(self, t):
        return t


@pytest.mark.parametrize("norm", ["gcn_norm", "sym_norm", "scaled_laplacian"])
def test_second_order_keeps_empty_pieces_in_the_graph(norm):
    """On a part with no edge of its own and no halo, the first derivative w.r.t. its (empty) edge
    weights and the gradient its exchange receives stay in the autograd graph (``torch.cat`` drops
    a 1-D empty input from its backward): a second derivative then runs the same halo exchanges
    on every part, or a part would leave the others waiting in a collective."""
    from distgnn.graph import PartitionedGraph

    ex = _NoHalo()
    g = PartitionedGraph(torch.empty(2, 0, dtype=torch.long), 2, 0, ex)
    w = torch.empty(0, dtype=torch.float64, requires_grad=True)
    out = getattr(ops, norm)(g, w, **({} if norm == "scaled_laplacian" else {"dtype": torch.float64}))
    weights = out[1] if isinstance(out, tuple) else out
    loss = (weights * torch.arange(1.0, weights.numel() + 1, dtype=torch.float64)).sum()
    (gw,) = torch.autograd.grad(loss, w, create_graph=True)
    assert gw.grad_fn is not None, "the first derivative w.r.t. empty weights left the graph"
    assert ex.seen and all(ex.seen), "the exchange's backward got a gradient outside the graph"
