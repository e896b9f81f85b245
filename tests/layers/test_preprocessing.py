import pytest
import torch

from distgnn.graph import GraphError
from distgnn.layers import preprocessing as P
from tests.graphs import TINY, TINY_PARAMS, dense
from tests.layers.references import gcn_dense, sym_dense


def as_dense(res, n):
    ei, w = res
    return dense(ei, n, w)


@pytest.mark.parametrize("graph", TINY_PARAMS)
def test_sparse_and_dense_paths_agree_with_the_formulas(graph):
    ei, n = TINY[graph]
    a = dense(ei, n)
    eye = torch.eye(n, dtype=torch.float64)
    d = a.sum(1)
    rw = torch.where(d[:, None] > 0, a / d.clamp(min=1e-300)[:, None], torch.zeros_like(a))
    checks = {
        "degree_matrix": (P.degree_matrix, torch.diag(d)),
        "normalized_adjacency": (P.normalized_adjacency, sym_dense(a)),
        "gcn_filter": (P.gcn_filter, gcn_dense(a)),
        "normalized_laplacian": (P.normalized_laplacian, eye - sym_dense(a)),
    }
    for name, (fn, expected) in checks.items():
        torch.testing.assert_close(fn(a), expected, msg=f"{name} dense")
        w = torch.ones(ei.shape[1], dtype=torch.float64)
        torch.testing.assert_close(as_dense(fn(ei, edge_weight=w, num_nodes=n), n), expected, msg=f"{name} sparse")
    torch.testing.assert_close(P.normalized_adjacency(a, symmetric=False), rw)
    lap = eye - sym_dense(a)
    torch.testing.assert_close(P.rescale_laplacian(lap, 2.0), lap - eye)
    ei_l, w_l = P.normalized_laplacian(ei, edge_weight=torch.ones(ei.shape[1], dtype=torch.float64), num_nodes=n)
    torch.testing.assert_close(as_dense(P.rescale_laplacian(ei_l, 1.5, edge_weight=w_l, num_nodes=n), n), (2 / 1.5) * lap - eye)


def test_rescale_laplacian_estimates_lambda_max():
    ei, n = TINY["star"]
    lap = torch.eye(n, dtype=torch.float64) - sym_dense(dense(ei, n))
    lam = float(torch.linalg.eigvalsh(lap).max())
    torch.testing.assert_close(P.rescale_laplacian(lap), (2 / lam) * lap - torch.eye(n, dtype=torch.float64))
    ei_l, w_l = P.normalized_laplacian(ei, edge_weight=torch.ones(ei.shape[1], dtype=torch.float64), num_nodes=n)
    est = as_dense(P.rescale_laplacian(ei_l, edge_weight=w_l, num_nodes=n), n)
    torch.testing.assert_close(est, (2 / lam) * lap - torch.eye(n, dtype=torch.float64), atol=1e-4, rtol=1e-4)


def test_incidence_and_line_graph():
    ei = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 2, 0]])  # undirected 0-1, 1-2, 0-3, loop at 2
    t = P.incidence_matrix(ei, num_nodes=4)
    assert t.tolist() == [[1, 1, 0], [1, 0, 1], [0, 0, 1], [0, 1, 0]]  # edges (0,1), (0,3), (1,2)
    assert torch.equal(P.incidence_matrix(dense(ei, 4)), t)
    assert P.line_graph(t).tolist() == [[0, 1, 1], [1, 0, 0], [1, 0, 0]]


def test_errors():
    with pytest.raises(GraphError, match=r"must be square \[N, N\]"):
        P.gcn_filter(torch.ones(2, 3))
    with pytest.raises(GraphError, match=r"edge_weight must be \[E\] with E=2"):
        P.gcn_filter(torch.tensor([[0, 1], [1, 0]]), edge_weight=torch.ones(3))
    with pytest.raises(ValueError, match="lambda_max must be positive"):
        P.rescale_laplacian(torch.eye(2), -1.0)


def test_layer_preprocess_is_what_the_layer_computes():
    from distgnn.layers import APPNPConv, ChebConv, GCNConv

    ei, n = TINY["random"]
    a = dense(ei, n)
    torch.testing.assert_close(GCNConv.preprocess(a), gcn_dense(a))
    torch.testing.assert_close(APPNPConv.preprocess(a), gcn_dense(a))
    eye = torch.eye(n, dtype=torch.float64)
    torch.testing.assert_close(ChebConv.preprocess(a, 1.5), (2 / 1.5) * (eye - sym_dense(a)) - eye)


@pytest.mark.parametrize("name,symmetric", [("GCSConv", True), ("ARMAConv", True), ("TAGConv", True), ("DiffusionConv", False)])
def test_propagation_layers_preprocess(name, symmetric):
    from distgnn import layers

    ei, n = TINY["random"]
    a = dense(ei, n)
    expected = sym_dense(a) if symmetric else a / a.sum(1, keepdim=True).clamp(min=1)
    torch.testing.assert_close(getattr(layers, name).preprocess(a), expected)
