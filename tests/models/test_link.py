import inspect

import pytest
import torch
from torch import nn

from distgnn.graph import Graph
from distgnn.models import (
    DECODERS,
    DotDecoder,
    LinkModel,
    MLPDecoder,
    ModelError,
    link_model_builder,
    make_decoder,
    model_builder,
)
from distgnn.launch.replica import accepts_edge_features


def test_dot_decoder_numbers():
    h_u, h_v = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    want = torch.tensor([sum(h_u[i, c] * h_v[i, c] for c in range(3)) for i in range(5)], dtype=torch.float64)
    assert torch.allclose(DotDecoder()(h_u, h_v), want)


def test_mlp_decoder_numbers_and_shapes():
    torch.manual_seed(0)
    dec = MLPDecoder(4, hidden=6, num_layers=3).double()
    h_u, h_v = torch.randn(7, 4, dtype=torch.float64), torch.randn(7, 4, dtype=torch.float64)
    z = h_u * h_v
    a, b, c = dec.lins
    want = (torch.relu(torch.relu(z @ a.weight.T + a.bias) @ b.weight.T + b.bias) @ c.weight.T + c.bias).view(-1)
    assert torch.allclose(dec(h_u, h_v), want)
    assert [tuple(l.weight.shape) for l in dec.lins] == [(6, 4), (6, 6), (1, 6)]
    assert torch.allclose(dec(h_u, h_v), dec(h_v, h_u))  # symmetric in u, v
    assert tuple(MLPDecoder(4, num_layers=1).lins[0].weight.shape) == (1, 4)
    assert DECODERS == ("dot", "mlp") and isinstance(make_decoder("mlp", 4), MLPDecoder)
    assert isinstance(make_decoder("dot", 4), DotDecoder)


class EdgeEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 3)

    def forward(self, x, graph, e=None):
        return self.lin(x) + (0 if e is None else e.sum())


def test_link_model_forwards_and_scores():
    torch.manual_seed(0)
    build = link_model_builder(model_builder("gcn", hidden=8, dropout=0.0), "mlp", embedding_dim=5)
    model = build(3, 99)  # embedding_dim wins over out_channels
    assert isinstance(model, LinkModel) and model.decoder.channels == 5
    x, g = torch.randn(4, 3), Graph(torch.tensor([[0, 1, 2], [1, 2, 3]]), 4)
    h = model(x, g, e=torch.ones(3, 1))  # e dropped: GCN takes none
    assert torch.equal(h, model.encoder(x, g)) and h.shape == (4, 5)
    assert torch.equal(model.score(h[:2], h[2:]), model.decoder(h[:2], h[2:]))
    assert not model.takes_edges and accepts_edge_features(model)
    # groups: GCN's first-layer-only decay, then the decoder's
    groups = model.param_groups(0.1)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0, 0.1]
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in model.parameters())
    # an encoder taking e receives it
    edge = LinkModel(EdgeEncoder(), DotDecoder())
    x2 = torch.randn(4, 2)
    assert edge.takes_edges and torch.equal(edge(x2, g, e=torch.ones(3, 1)), edge.encoder(x2, g, e=torch.ones(3, 1)))
    assert "inputs" in inspect.signature(LinkModel.forward).parameters
    # default D = the out_channels build receives
    assert link_model_builder(model_builder("gcn"))(3, 7)(x, g).shape == (4, 7)


def test_link_model_gradients_reach_encoder_and_decoder():
    torch.manual_seed(0)
    model = link_model_builder(model_builder("gcn", hidden=4, dropout=0.0), "mlp")(3, 4).double()
    x, g = torch.randn(4, 3, dtype=torch.float64), Graph(torch.tensor([[0, 1, 2], [1, 2, 3]]), 4)
    h = model(x, g)
    model.score(h[[0, 1]], h[[2, 3]]).sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.decoder.parameters())
    assert any(bool(p.grad.abs().sum() > 0) for p in model.encoder.parameters())


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda: make_decoder("cosine", 4), "unknown decoder 'cosine'; choose one of dot, mlp", id="decoder"),
    pytest.param(lambda: link_model_builder(model_builder("gcn"), "bilinear"), "unknown decoder 'bilinear'",
                 id="builder-decoder"),
    pytest.param(lambda: link_model_builder(model_builder("gcn"), embedding_dim=0),
                 "link_model_builder: embedding_dim must be an int >= 1", id="embedding-dim"),
    pytest.param(lambda: link_model_builder(lambda i, o: 3)(2, 2), "the encoder builder returned int", id="encoder"),
    pytest.param(lambda: LinkModel(nn.Linear(2, 2), "dot"), "LinkModel: encoder and decoder must be nn.Modules",
                 id="link-model"),
    pytest.param(lambda: MLPDecoder(0), "MLPDecoder: channels must be an int >= 1", id="mlp-channels"),
    pytest.param(lambda: MLPDecoder(3, dropout=1.0), r"MLPDecoder: dropout must be in \[0, 1\)", id="mlp-dropout"),
    pytest.param(lambda: DotDecoder()(torch.zeros(2, 3), torch.zeros(3, 3)), "DotDecoder: h_u and h_v must both be",
                 id="shapes"),
])
def test_errors(call, match):
    with pytest.raises((ModelError, ValueError), match=match):
        call()
