"""Layer-wise chunked inference equals the model's forward on the whole graph and on in-process
partitions (every chunk size, graphs with self-loops, multi-edges and isolated nodes)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from distgnn.graph import Graph, GraphError, run_parts, split_graph
from distgnn.models import LayerStack, build_model
from distgnn.models.builder import CHUNKABLE_LAYERS, LayerStep, layer_steps
from distgnn.predict import ChunkGraph, LayerwiseRun, layerwise_forward
from tests.graphs import random_graph

torch.set_num_threads(1)


def _graph(seed: int = 0, n: int = 40, e: int = 160):
    ei, n = random_graph(n=n, e=e, seed=seed, isolated=(n - 2, n - 1))
    ei = torch.cat([ei, torch.tensor([[5, 5, 5], [5, 5, 6]])], 1)  # a double self-loop, a repeated edge
    x = torch.randn(n, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return ei, n, x


def _model(name: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    if name in ("gcn", "sage", "gat"):
        m = build_model(name, 6, 3, num_layers=3, **kw)
    else:
        m = LayerStack(name, 6, 3, hidden=8, num_layers=3, **kw)
    return m.double().eval()


MODELS = ["gcn", "sage", "gat", "GCNConv", "GraphSageConv", "GATConv", "APPNPConv", "TAGConv", "GINConv", "AGNNConv"]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch_nodes", [None, 1, 3, 16, 1000])
def test_layerwise_equals_forward_on_the_whole_graph(name, batch_nodes):
    ei, n, x = _graph()
    g = Graph(ei, n)
    model = _model(name)
    ref = model(x, g)
    out, kept = layerwise_forward(model, x, Graph(ei, n), batch_nodes=batch_nodes, keep=(1,))
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-10)
    assert kept[1].shape[0] == n


@pytest.mark.parametrize("name", ["gcn", "sage", "gat", "GCNConv", "APPNPConv"])
def test_layerwise_on_in_process_parts_equals_the_whole_graph(name):
    ei, n, x = _graph(seed=1)
    model = _model(name)
    ref = model(x, Graph(ei, n))
    parts = split_graph(ei, torch.arange(n) % 3, n)
    outs = run_parts(parts, lambda p, g: layerwise_forward(model, x[g.node_ids], g, batch_nodes=4)[0])
    got = torch.empty_like(ref)
    for g, o in zip(parts, outs):
        got[g.node_ids] = o
    torch.testing.assert_close(got, ref, atol=1e-12, rtol=1e-10)


def test_steps_compose_to_forward_and_mark_the_chunkable_layers():
    for name in MODELS:
        steps = layer_steps(_model(name))
        assert steps and all(isinstance(s, LayerStep) for s in steps)
        conv = [s for s in steps if s.uses_graph]
        assert all(s.chunkable == (s.name.split()[0] in CHUNKABLE_LAYERS) for s in conv), name
    assert [s.name for s in layer_steps(_model("sage"))] == ["GraphSageConv 1", "GraphSageConv 2", "GraphSageConv 3",
                                                            "head"]


def test_embeddings_are_the_activations_of_the_step():
    ei, n, x = _graph()
    model = _model("gcn")
    g = Graph(ei, n)
    _, kept = layerwise_forward(model, x, g, batch_nodes=5, keep=(1, 2))
    h1 = torch.relu(model.convs[0](x, g))
    torch.testing.assert_close(kept[1], h1)
    torch.testing.assert_close(kept[2], torch.relu(model.convs[1](h1, g)))


class _Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 3).double()

    def forward(self, x, graph):
        return self.lin(x) + graph.in_degree(dtype=x.dtype).unsqueeze(-1)


def test_a_module_without_the_protocol_runs_one_whole_forward():
    ei, n, x = _graph()
    m = _Plain()
    run = LayerwiseRun(m, x, Graph(ei, n), batch_nodes=4)
    assert not run.layerwise and run.num_steps == 1 and run.step_names() == ["forward"]
    torch.testing.assert_close(run.run(), m(x, Graph(ei, n)))


class _WithSteps(nn.Module):
    """A user module implementing the protocol: a GCNConv then a per-node Linear."""

    def __init__(self):
        super().__init__()
        from distgnn.layers import GCNConv

        self.conv = GCNConv(4, in_channels=6).double()
        self.lin = nn.Linear(4, 2).double()

    def forward(self, x, graph):
        return self.lin(torch.tanh(self.conv(x, graph)))

    def layer_steps(self):
        return [LayerStep("conv", lambda x, g, e=None: (torch.tanh(self.conv(x, g)), e), chunkable=True),
                LayerStep("lin", lambda x, g=None, e=None: (self.lin(x), e), uses_graph=False)]


def test_a_user_module_with_the_protocol_is_chunked():
    ei, n, x = _graph()
    m = _WithSteps()
    run = LayerwiseRun(m, x, Graph(ei, n), batch_nodes=7)
    reports = []
    out = run.run(reports.append)
    torch.testing.assert_close(out, m(x, Graph(ei, n)), atol=1e-12, rtol=1e-10)
    assert [(r.name, r.chunks, r.chunked) for r in reports] == [("conv", 6, True), ("lin", 1, False)]


def test_the_chunk_graph_refuses_what_it_cannot_answer_exactly():
    g = ChunkGraph(torch.tensor([[1, 0], [0, 0]]), 2, torch.tensor([0, 3]))
    assert g.in_degree(dtype=torch.float64).tolist() == [2.0, 3.0]
    assert g.with_edges(torch.tensor([[1], [0]])).in_degree().tolist() == [1.0, 3.0]
    with pytest.raises(GraphError, match="no out-degrees; the layer is not chunkable"):
        g.out_degree()
    with pytest.raises(GraphError, match="no reverse edges"):
        g.gather_reverse(torch.zeros(2, 1))
    with pytest.raises(GraphError, match="cannot sum over the graph"):
        g.all_reduce(torch.zeros(1))
    with pytest.raises(GraphError, match="cannot weigh in-degrees"):
        g.in_degree(torch.ones(2))


@pytest.mark.parametrize("layer", ["ECCConv", "XENetConv"])
def test_layers_with_edge_features_run_layer_by_layer(layer):
    ei, n, x = _graph()
    e = torch.randn(ei.shape[1], 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.manual_seed(0)
    m = LayerStack(layer, 6, 3, hidden=8, num_layers=2, edge_dim=3).double().eval()
    ref = m(x, Graph(ei, n), e=e)
    out, kept = layerwise_forward(m, x, Graph(ei, n), {"e": e}, batch_nodes=4, keep=(1,))
    assert not any(s.chunkable for s in layer_steps(m))
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-10)
    assert kept[1].shape == (n, 8)
