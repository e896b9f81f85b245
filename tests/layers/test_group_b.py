"""CrystalConv, ECCConv, EdgeConv, GatedGraphConv, GeneralConv: what the conformance harness does
not see (argument errors, explicit sizes, training-only behaviour, mixed mode on partitions)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch.nn.parameter import UninitializedParameter

from distgnn.graph import GraphError, run_parts, split_graph
from distgnn.layers.crystal import CrystalConv
from distgnn.layers.ecc import ECCConv
from distgnn.layers.edge_conv import EdgeConv
from distgnn.layers.gated_graph import GatedGraphConv
from distgnn.layers.general import GeneralConv
from distgnn.layers.utils import PReLU
from tests.graphs import ASSIGNMENTS, E, random_graph
from tests.layers.references import CASES  # imports references_group_b (never import it first)
from tests.layers.references_group_b import ref_crystal

GROUP_B = ("CrystalConv", "ECCConv", "EdgeConv", "GatedGraphConv", "GeneralConv")

# name -> (lazy factory, eager factory with the same architecture, edge feature size)
EAGER = {
    "CrystalConv": (lambda: CrystalConv(), lambda: CrystalConv(in_channels=4, in_edge_channels=3), 3),
    "ECCConv": (lambda: ECCConv(5, kernel_network=[6]), lambda: ECCConv(5, kernel_network=[6], in_channels=4, in_edge_channels=3), 3),
    "ECCConv-no-hidden": (lambda: ECCConv(5, root=False), lambda: ECCConv(5, root=False, in_channels=4, in_edge_channels=3), 3),
    "EdgeConv": (lambda: EdgeConv(5, mlp_hidden=[6, 2]), lambda: EdgeConv(5, mlp_hidden=[6, 2], in_channels=4), 0),
    "GatedGraphConv": (lambda: GatedGraphConv(6, 2), lambda: GatedGraphConv(6, 2, in_channels=4), 0),
    "GeneralConv": (lambda: GeneralConv(5), lambda: GeneralConv(5, in_channels=4), 0),
}


def _call(layer, x, a, s, **kw):
    if s:
        kw["e"] = torch.randn(a.shape[1], s, dtype=x.dtype)
    return layer(x, a, **kw)


@pytest.mark.parametrize("name", list(EAGER))
def test_explicit_in_channels_equals_lazy(name):
    make_lazy, make_eager, s = EAGER[name]
    lazy, eager = make_lazy(), make_eager()
    assert "in_channels=None" in repr(lazy) and "in_channels=4" in repr(eager)
    _call(lazy, torch.zeros(2, 4), E((0, 1)), s)
    assert not any(isinstance(p, UninitializedParameter) for p in eager.parameters())
    assert {k: v.shape for k, v in eager.state_dict().items()} == {k: v.shape for k, v in lazy.state_dict().items()}
    if name != "GatedGraphConv":  # no parameter depends on its input size: nothing to infer
        assert "in_channels=4" in repr(lazy)
    out = _call(eager, torch.randn(3, 4), E((0, 1), (2, 1)), s)
    assert out.shape[0] == 3 and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "make,match",
    [
        pytest.param(lambda: CrystalConv(aggregate="median"), "CrystalConv: aggregate must be one of", id="crystal-aggregate"),
        pytest.param(lambda: CrystalConv(in_channels=0), r"CrystalConv: in_channels must be an int >= 1, got 0", id="crystal-in"),
        pytest.param(lambda: CrystalConv(in_edge_channels=-1), r"CrystalConv: in_edge_channels must be an int >= 0", id="crystal-edge"),
        pytest.param(lambda: CrystalConv(activation="nope"), "CrystalConv: activation: unknown activation 'nope'", id="crystal-act"),
        pytest.param(lambda: CrystalConv(activation="prelu"), "CrystalConv: activation: 'prelu' needs a known number of channels", id="crystal-prelu"),
        pytest.param(lambda: CrystalConv(kernel_initializer="nope"), "CrystalConv: kernel_initializer: unknown initializer", id="crystal-init"),
        pytest.param(lambda: ECCConv(-2), r"ECCConv: channels must be an int >= 1, got -2", id="ecc-channels"),
        pytest.param(lambda: ECCConv(4, kernel_network=[3, 0]), r"ECCConv: kernel_network entries must be an int >= 1, got 0", id="ecc-net"),
        pytest.param(lambda: ECCConv(4, bias_initializer="nope"), "ECCConv: bias_initializer: unknown initializer", id="ecc-init"),
        pytest.param(lambda: ECCConv(4, activation="nope"), "ECCConv: activation: unknown activation", id="ecc-act"),
        pytest.param(lambda: EdgeConv(0), r"EdgeConv: channels must be an int >= 1, got 0", id="edge-channels"),
        pytest.param(lambda: EdgeConv(4, mlp_hidden=[2, -1]), r"EdgeConv: mlp_hidden entries must be an int >= 1", id="edge-hidden"),
        pytest.param(lambda: EdgeConv(4, mlp_activation="nope"), "EdgeConv: .*unknown activation 'nope'", id="edge-act"),
        pytest.param(lambda: EdgeConv(4, kernel_initializer="nope"), "EdgeConv: .*unknown initializer 'nope'", id="edge-init"),
        pytest.param(lambda: EdgeConv(4, aggregate="median"), "EdgeConv: aggregate must be one of", id="edge-aggregate"),
        pytest.param(lambda: GatedGraphConv(0, 2), r"GatedGraphConv: channels must be an int >= 1, got 0", id="gated-channels"),
        pytest.param(lambda: GatedGraphConv(4, 0), r"GatedGraphConv: n_layers must be an int >= 1, got 0", id="gated-layers"),
        pytest.param(lambda: GatedGraphConv(4, 2, in_channels=5), "GatedGraphConv: the input has F=5 features but channels=4", id="gated-width"),
        pytest.param(lambda: GeneralConv(0), r"GeneralConv: channels must be an int >= 1, got 0", id="general-channels"),
        pytest.param(lambda: GeneralConv(4, dropout=1.0), r"GeneralConv: dropout must be in \[0, 1\), got 1.0", id="general-dropout"),
        pytest.param(lambda: GeneralConv(4, kernel_initializer="nope"), "GeneralConv: .*unknown initializer 'nope'", id="general-init"),
        pytest.param(lambda: GeneralConv(4, activation="nope"), "GeneralConv: activation: unknown activation", id="general-act"),
        pytest.param(lambda: GeneralConv(4, aggregate=3), "GeneralConv: aggregate must be one of", id="general-aggregate"),
    ],
)
def test_bad_arguments_are_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_gated_graph_conv_rejects_wider_input_at_first_call():
    layer = GatedGraphConv(3, 2)
    with pytest.raises(ValueError, match=r"GatedGraphConv: the input has F=5 features but channels=3; .* channels >= 5"):
        layer(torch.zeros(4, 5), E((0, 1)))
    assert layer(torch.zeros(4, 3), E((0, 1))).shape == (4, 3)


def test_ecc_requires_edge_features_of_the_right_length():
    layer = ECCConv(3)
    with pytest.raises(GraphError, match=r"ECCConv needs edge features: call it as layer\(x, a, e=e\)"):
        layer(torch.zeros(3, 4), E((0, 1)))
    with pytest.raises(GraphError, match=r"ECCConv: e must be \[E, S\] with E=1"):
        layer(torch.zeros(3, 4), E((0, 1)), e=torch.zeros(2, 3))


@pytest.mark.parametrize("hidden", [[2], []], ids=["kernel-network", "single-dense"])
def test_ecc_other_edge_width_after_build_is_a_clear_error(hidden):
    layer = ECCConv(3, kernel_network=hidden)
    layer(torch.zeros(2, 4), E((0, 1)), e=torch.zeros(1, 3))
    with pytest.raises(GraphError, match="ECCConv: the layer was built for S=3 edge features, got S=2"):
        layer(torch.zeros(2, 4), E((0, 1)), e=torch.zeros(1, 2))


def test_crystal_conv_without_edge_features_is_s_equal_zero():
    """Spektral's CrystalConv takes e=None: z = [x_i || x_j]."""
    ei, n = random_graph(seed=5)
    x = torch.randn(n, 4, dtype=torch.float64)
    layer = CrystalConv(activation="softplus", bias_initializer=lambda t: torch.nn.init.uniform_(t, -0.5, 0.5)).double()
    out = layer(x, ei)
    assert layer.kernel_f.shape == (8, 4)
    no_e = torch.zeros(ei.shape[1], 0, dtype=torch.float64)
    torch.testing.assert_close(out, ref_crystal(layer, x, None, edge_index=ei, e=no_e))
    torch.testing.assert_close(layer(x, ei, e=no_e), out)
    with pytest.raises(GraphError, match=r"CrystalConv: the kernels are \[8, 4\] = \[2F \+ S, F\] but x has F=4 and e has S=2"):
        layer(x, ei, e=torch.zeros(ei.shape[1], 2, dtype=torch.float64))
    with pytest.raises(GraphError, match=r"CrystalConv: e must be \[E, S\] with E=1"):
        CrystalConv()(torch.zeros(3, 4), E((0, 1)), e=torch.zeros(2, 3))


@pytest.mark.parametrize(
    "make,s,match",
    [
        (lambda: CrystalConv(), 2, r"CrystalConv: the kernels are \[10, 4\] = \[2F \+ S, F\] but x has F=3"),
        (lambda: ECCConv(3), 2, "ECCConv: the layer was built for F=4 input features, got F=3"),
        (lambda: EdgeConv(3), 0, "EdgeConv: the layer was built for F=4 input features, got F=3"),
        (lambda: GatedGraphConv(5, 1, in_channels=4), 0, "GatedGraphConv: built with in_channels=4, got F=3"),
    ],
    ids=["CrystalConv", "ECCConv", "EdgeConv", "GatedGraphConv"],
)
def test_other_input_width_after_build_is_a_clear_error(make, s, match):
    layer = make()
    _call(layer, torch.zeros(2, 4), E((0, 1)), s)
    with pytest.raises(GraphError, match=match):
        _call(layer, torch.zeros(2, 3), E((0, 1)), s)


def test_general_conv_defaults_prelu_per_channel_dropout_only_in_training():
    layer = GeneralConv()
    assert layer.channels == 256 and layer.batch_norm is not None and layer.aggr == "sum"
    assert isinstance(layer.activation, PReLU) and layer.activation.alpha.shape == (256,)
    torch.manual_seed(0)
    layer = GeneralConv(8, dropout=0.5)
    ei, n = random_graph(seed=1)
    x = torch.randn(n, 3)
    layer.eval()
    out = layer(x, ei)
    assert torch.equal(layer(x, ei), out)
    layer.train()
    before = layer.batch_norm.running_mean.clone()
    assert not torch.allclose(layer(x, ei), layer(x, ei))  # a new dropout mask each call
    assert not torch.equal(layer.batch_norm.running_mean, before)  # training updates the statistics


def test_gated_graph_conv_initialisation_is_keras_style():
    torch.manual_seed(0)
    layer = GatedGraphConv(8, 3)
    w_hh = layer.gru.weight_hh  # (3C, C): Keras' recurrent kernel [C, 3C] transposed, orthogonal
    torch.testing.assert_close(w_hh.t() @ w_hh, torch.eye(8), atol=1e-5, rtol=0)
    assert torch.count_nonzero(layer.gru.bias_ih) == 0 and torch.count_nonzero(layer.gru.bias_hh) == 0
    limit = (6 / (8 + 24)) ** 0.5  # glorot uniform on [C, 3C]
    assert 0.9 * limit < layer.gru.weight_ih.abs().max() <= limit
    k_limit = (6 / (8 * 3 + 8 * 3)) ** 0.5  # Keras fans of [L, C, C]: C * L each
    assert 0.9 * k_limit < layer.kernel.abs().max() <= k_limit


@pytest.mark.parametrize("name", GROUP_B)
@pytest.mark.parametrize("split", ["3-parts", "4-parts-one-empty"])
def test_mixed_mode_in_training_partitioned_equals_whole(name, split):
    """Mixed mode (shared graph and edge features) on partitions, batch norm in training mode."""
    case = CASES[name]
    edge_index, n = random_graph(seed=16)
    torch.manual_seed(0)
    snapshot = case.make().double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, n, 4, generator=g, dtype=torch.float64, requires_grad=True)
    e = torch.randn(edge_index.shape[1], case.edge_dim, generator=g, dtype=torch.float64) if case.edge_dim else None
    kw = lambda ids: {} if e is None else {"e": e[ids]}  # noqa: E731
    with torch.no_grad():
        snapshot.eval()(x, edge_index, **kw(slice(None)))  # materialise the lazy sizes
    snapshot.train()
    layer = copy.deepcopy(snapshot)
    out = layer(x, edge_index, **kw(slice(None)))  # (B, N, C)
    r = torch.randn(out.shape, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad((out * r).sum(), x)
    parts = split_graph(edge_index, ASSIGNMENTS[split], n, num_parts=int(ASSIGNMENTS[split].max()) + 1)
    reps = [copy.deepcopy(snapshot) for _ in parts]
    outs = run_parts(parts, lambda p, gr: reps[p](x[:, gr.node_ids], gr, **kw(gr.edge_ids)))
    part_out = torch.empty_like(out)
    for gr, o in zip(parts, outs):
        part_out[:, gr.node_ids] = o.detach()
    torch.testing.assert_close(part_out, out.detach())
    (part_grad,) = torch.autograd.grad(sum((o * r[:, gr.node_ids]).sum() for gr, o in zip(parts, outs)), x)
    torch.testing.assert_close(part_grad, grad)
    for bname, buf in layer.named_buffers():
        for rep in reps:
            torch.testing.assert_close(dict(rep.named_buffers())[bname], buf)
