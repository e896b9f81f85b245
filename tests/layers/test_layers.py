"""Behaviour the conformance harness does not cover: explicit sizes, attention outputs, and the
MessagePassing protocol for user-written layers."""
from __future__ import annotations

import copy
import inspect

import pytest
import torch

from distgnn.graph import run_parts, split_graph
from distgnn.layers import GATConv, GCNConv, MessagePassing
from distgnn.layers.registry import convolutions
from distgnn.ops import scatter
from tests.graphs import ASSIGNMENTS, E, dense, random_graph
from tests.layers.references import CASES

REGISTRY = convolutions()  # the conv layers


@pytest.mark.parametrize("name", [n for n, e in REGISTRY.items() if "single" in e.modes])
def test_explicit_in_channels_equals_lazy(name, monkeypatch):
    """``in_channels=F`` creates every parameter up front, with the shapes lazy inference gives."""
    lazy = CASES[name].make()
    e = torch.zeros(2, CASES[name].edge_dim) if CASES[name].edge_dim else None
    lazy(torch.zeros(2, 4), E((0, 1), (1, 0)), **({"e": e} if e is not None else {}))
    cls, init = REGISTRY[name].cls, REGISTRY[name].cls.__init__
    takes_edge_channels = "in_edge_channels" in inspect.signature(init).parameters and CASES[name].edge_dim

    def with_in_channels(self, *args, **kwargs):  # the case's own arguments, plus the input sizes
        kwargs.setdefault("in_channels", 4)
        if takes_edge_channels:
            kwargs.setdefault("in_edge_channels", CASES[name].edge_dim)
        init(self, *args, **kwargs)

    monkeypatch.setattr(cls, "__init__", with_in_channels)
    eager = CASES[name].make()
    assert not any(isinstance(p, torch.nn.parameter.UninitializedParameter) for p in eager.parameters())
    assert {k: v.shape for k, v in eager.state_dict().items()} == {k: v.shape for k, v in lazy.state_dict().items()}
    # the first call must not redraw parameters that already exist (the lazy-init hook runs once)
    before = {k: v.clone() for k, v in eager.state_dict().items()}
    torch.manual_seed(123)
    eager.eval()(torch.randn(3, 4), E((0, 1), (1, 2), (2, 0)), **({"e": torch.randn(3, CASES[name].edge_dim)} if e is not None else {}))
    for k, v in eager.state_dict().items():
        assert torch.equal(v, before[k]), f"{name}: the first call changed {k}"


def test_gat_attention_coefficients_sum_to_one_per_target():
    ei, n = random_graph(seed=2)
    layer = GATConv(4, attn_heads=3, return_attn_coef=True, dropout_rate=0.0)
    out, (edges, alpha) = layer(torch.randn(n, 5), ei)
    assert out.shape == (n, 12) and alpha.shape == (edges.shape[1], 3)
    sums = scatter(alpha, edges[1], n)
    torch.testing.assert_close(sums, torch.ones(n, 3))  # every node has its self-loop


def test_gat_batch_mode_returns_dense_coefficients_and_dropout_only_in_training():
    torch.manual_seed(0)
    layer = GATConv(4, attn_heads=2, return_attn_coef=True, dropout_rate=0.5)
    a = torch.stack([dense(random_graph(n=5, e=8, seed=s, isolated=())[0], 5, dtype=torch.float32) for s in (1, 2)])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    x = torch.randn(2, 5, 3)
    layer.eval()
    out, alpha = layer(x, a, mask=mask)
    assert alpha.shape == (2, 5, 5, 2)
    torch.testing.assert_close(alpha.sum(2)[mask], torch.ones(8, 2))
    assert torch.count_nonzero(alpha[1, 3:]) == 0 and torch.count_nonzero(alpha[1, :, 3:]) == 0
    assert torch.equal(layer(x, a, mask=mask)[0], out)
    layer.train()
    assert not torch.allclose(layer(x, a, mask=mask)[0], out)


class WeightedMax(MessagePassing):
    """A user layer: message uses x_j, x_i, a node kwarg gathered at the source and edge features."""

    def __init__(self):
        super().__init__(aggregate="max")

    def message(self, x_j, x_i, e, scale_j):
        return (x_j - x_i) * scale_j * e  # (E, F)

    def update(self, embeddings, x):
        return embeddings + x

    def forward(self, x, graph, e, scale):
        return self.propagate(x, graph, e, scale=scale)


def test_user_layer_protocol_and_partitioned_equals_whole():
    ei, n = random_graph(seed=3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64, requires_grad=True)
    scale = torch.rand(n, 1, generator=g, dtype=torch.float64) + 0.5
    e = torch.rand(ei.shape[1], 1, generator=g, dtype=torch.float64)
    layer = WeightedMax()
    out = layer(x, ei, e, scale)
    for i in range(n):  # direct evaluation of the formula
        inc = (ei[1] == i).nonzero().flatten()
        if inc.numel() == 0:
            expect = x[i]
        else:
            m = (x[ei[0, inc]] - x[i]) * scale[ei[0, inc]] * e[inc]
            expect = m.max(0).values + x[i]
        torch.testing.assert_close(out[i], expect)
    parts = split_graph(ei, ASSIGNMENTS["3-parts"], n)
    outs = run_parts(parts, lambda p, gr: layer(x[gr.node_ids], gr, e[gr.edge_ids], scale[gr.node_ids]))
    whole_grad = torch.autograd.grad(out.sum(), x)[0]
    part_grad = torch.autograd.grad(sum(o.sum() for o in outs), x)[0]
    for gr, o in zip(parts, outs):
        torch.testing.assert_close(o, out[gr.node_ids])
    torch.testing.assert_close(part_grad, whole_grad)


def test_weighted_gcn_partitioned_equals_whole():
    ei, n = random_graph(seed=4)
    w = torch.rand(ei.shape[1], dtype=torch.float64) + 0.1
    x = torch.randn(n, 3, dtype=torch.float64)
    layer = GCNConv(2).double()
    out = layer(x, ei, edge_weight=w)
    parts = split_graph(ei, ASSIGNMENTS["2-parts"], n)
    reps = [copy.deepcopy(layer) for _ in parts]
    outs = run_parts(parts, lambda p, gr: reps[p](x[gr.node_ids], gr, edge_weight=w[gr.edge_ids]))
    for gr, o in zip(parts, outs):
        torch.testing.assert_close(o, out[gr.node_ids])


def test_repr_names_sizes():
    layer = GCNConv(3)
    assert "in_channels=None" in repr(layer)
    layer(torch.zeros(2, 5), E((0, 1)))
    assert "in_channels=5, channels=3" in repr(layer)


@pytest.mark.parametrize("name", ["GCNConv", "GraphSageConv", "GATConv", "GINConv", "APPNPConv", "ChebConv"])
def test_bad_channels_is_a_clear_error(name):
    with pytest.raises(ValueError, match=rf"{name}: channels must be an int >= 1, got -2"):
        REGISTRY[name].cls(-2)
