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
