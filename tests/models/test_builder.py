import math

import pytest
import torch
from torch import nn

from distgnn.data import sbm
from distgnn.graph import Graph
from distgnn.models import GAT, GCN, LayerStack, ModelError, build_model, layer_names, model_builder
from distgnn.tasks import get_task
from tests.layers.references import CASES


@pytest.fixture(scope="module")
def tiny():
    data = sbm(num_nodes=90, num_classes=3, avg_degree=5, num_features=6, num_val=20, num_test=20, seed=3)
    e = torch.randn(data.num_edges, 3, generator=torch.Generator().manual_seed(0))
    return data, Graph(data.edge_index, data.num_nodes), e


def test_every_single_mode_conv_is_a_choice():
    from distgnn.layers.registry import convolutions

    want = sorted(n for n, e in convolutions().items() if e.node_level and "single" in e.modes)
    assert layer_names() == want and len(want) >= 19
    assert "XENetConvBatch" not in want and "GINConvBatch" not in want


@pytest.mark.parametrize("name", layer_names())
def test_layer_stack_trains(name, tiny):
    data, graph, e = tiny
    case = CASES[name]
    edge_dim = 3 if case.edge_dim else 0
    torch.manual_seed(0)
    model = model_builder(name.lower(), hidden=8, dropout=0.0, edge_dim=edge_dim)(data.num_features, data.num_classes)
    assert isinstance(model, LayerStack) and (model.takes_edges or not case.edge_dim)
    task, mask = get_task("node-classification"), data.train_mask
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        out = model(data.x, graph, e=e) if edge_dim else model(data.x, graph)
        assert out.shape == (data.num_nodes, data.num_classes) and bool(torch.isfinite(out).all())
        loss = task.loss(out[mask], data.y[mask]) / int(mask.sum())
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0], f"{name}: loss did not fall: {losses}"


def test_layer_args_reach_every_layer():
    model = model_builder("ChebConv", layer_args={"K": 3}, num_layers=3, hidden=5)(4, 2)
    assert [c.K for c in model.convs] == [3, 3, 3]
    assert [c.channels for c in model.convs] == [5, 5, 2]


def test_named_stacks_match_build_model():
    torch.manual_seed(0)
    a = model_builder("gcn", num_layers=3)(6, 3)
    torch.manual_seed(0)
    b = build_model("gcn", 6, 3, num_layers=3)
    assert isinstance(a, GCN) and len(a.convs) == 3
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    g = model_builder("gat", hidden=4, dropout=0.2, layer_args={"heads": 2})(6, 3)
    assert isinstance(g, GAT) and g.dropout == 0.2 and g.convs[0].attn_heads == 2


def user_model(in_channels, out_channels):
    return nn.Linear(in_channels, out_channels)


def test_import_spec_and_callable(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        "from torch import nn\n"
        "def mlp(i, o):\n    return nn.Sequential(nn.Linear(i, 4), nn.ReLU(), nn.Linear(4, o))\n"
        "def broken(i, o):\n    raise RuntimeError('no GPU here')\n"
        "def wrong(i, o):\n    return 3\n"
        "NOT_CALLABLE = 5\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert isinstance(model_builder("my_models:mlp")(5, 2), nn.Sequential)
    assert isinstance(model_builder(user_model)(5, 2), nn.Linear)
    with pytest.raises(ModelError, match=r"model 'my_models:broken' failed to build \(5 -> 2\): RuntimeError: no GPU here"):
        model_builder("my_models:broken")(5, 2)
    with pytest.raises(ModelError, match="model 'my_models:wrong' returned int, not a torch.nn.Module"):
        model_builder("my_models:wrong")(5, 2)
    with pytest.raises(ModelError, match="'NOT_CALLABLE' is a int, not a callable"):
        model_builder("my_models:NOT_CALLABLE")
    with pytest.raises(ModelError, match="module 'my_models' has no attribute 'nope'"):
        model_builder("my_models:nope")


@pytest.mark.parametrize(
    "call, match",
    [
        pytest.param(lambda: model_builder("mlp"), r"unknown model 'mlp'; choose one of gat, gcn, sage, a layer \(AGNNConv, ",
                     id="unknown-name"),
        pytest.param(lambda: model_builder("no_such_pkg.mod:fn"),
                     "model 'no_such_pkg.mod:fn': cannot import module 'no_such_pkg.mod' \\(ModuleNotFoundError", id="no-module"),
        pytest.param(lambda: model_builder("pkg:"), "write package.module:function", id="no-attr"),
        pytest.param(lambda: model_builder(3), "model must be a name", id="not-callable"),
        pytest.param(lambda: model_builder("ECCConv")(4, 2), "ECCConv needs edge features \\(edge_dim > 0\\)", id="needs-edges"),
        pytest.param(lambda: model_builder("ChebConv", layer_args={"Q": 1})(4, 2),
                     r"LayerStack: ChebConv\(.*\) failed: .*unexpected keyword argument 'Q'", id="bad-layer-arg"),
        pytest.param(lambda: model_builder("ChebConv", layer_args={"channels": 3})(4, 2), "may not set 'channels'",
                     id="reserved-arg"),
        pytest.param(lambda: model_builder("gcn", layer_args={"K": 3})(4, 2), "model 'gcn' failed to build .*TypeError", id="gcn-bad-arg"),
        pytest.param(lambda: LayerStack("XENetConvBatch", 4, 2), "unknown layer 'XENetConvBatch'", id="batch-only"),
        pytest.param(lambda: model_builder("GCNConv", hidden=0)(4, 2), "hidden must be an int >= 1", id="hidden"),
    ],
)
def test_builder_errors(call, match):
    with pytest.raises(ModelError, match=match):
        call()
