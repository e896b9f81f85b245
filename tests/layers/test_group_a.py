"""AGNNConv, ARMAConv, DiffusionConv, TAGConv, GCSConv, GTVConv: behaviour the conformance harness
does not see (argument errors, hand-computed values, edge weights on partitions, dropout)."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from distgnn.graph import GraphError, run_parts, split_graph
from distgnn.layers.agnn import AGNNConv
from distgnn.layers.arma import ARMAConv
from distgnn.layers.diffusion import DiffusionConv
from distgnn.layers.gcs import GCSConv
from distgnn.layers.gtv import GTVConv
from distgnn.layers.tag import TAGConv
from tests.graphs import ASSIGNMENTS, E, dense, random_graph
from tests.layers.references import CASES

D = torch.float64
GROUP = ["AGNNConv", "ARMAConv", "DiffusionConv", "TAGConv", "GCSConv", "GTVConv"]
UNDIRECTED_PATH = E((0, 1), (1, 0), (1, 2), (2, 1))  # 0 - 1 - 2


def col(*v) -> torch.Tensor:
    return torch.tensor(v, dtype=D).unsqueeze(1)  # (N, 1)


def set_(param: torch.Tensor, value) -> None:
    with torch.no_grad():
        param.copy_(torch.as_tensor(value, dtype=param.dtype).view_as(param))


# -- argument validation -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: AGNNConv(trainable="yes"), r"AGNNConv: trainable must be a bool, got 'yes'"),
        (lambda: AGNNConv(aggregate="median"), r"AGNNConv: aggregate must be one of sum, mean"),
        (lambda: AGNNConv(in_channels=0), r"AGNNConv: in_channels must be an int >= 1, got 0"),
        (lambda: AGNNConv(activation="prelu"), r"AGNNConv: activation: 'prelu' needs a known number of channels"),
        (lambda: ARMAConv(0), r"ARMAConv: channels must be an int >= 1, got 0"),
        (lambda: ARMAConv(4, order=0), r"ARMAConv: order must be an int >= 1, got 0"),
        (lambda: ARMAConv(4, iterations=1.5), r"ARMAConv: iterations must be an int >= 1, got 1.5"),
        (lambda: ARMAConv(4, share_weights=1), r"ARMAConv: share_weights must be a bool, got 1"),
        (lambda: ARMAConv(4, dropout_rate=1.0), r"ARMAConv: dropout_rate must be in \[0, 1\), got 1.0"),
        (lambda: ARMAConv(4, gcn_activation="nope"), r"ARMAConv: gcn_activation: unknown activation 'nope'"),
        (lambda: ARMAConv(4, kernel_initializer="nope"), r"ARMAConv: kernel_initializer: unknown initializer 'nope'"),
        (lambda: DiffusionConv(-1), r"DiffusionConv: channels must be an int >= 1, got -1"),
        (lambda: DiffusionConv(3, K=0), r"DiffusionConv: K must be an int >= 1, got 0"),
        (lambda: DiffusionConv(3, kernel_initializer="nope"), r"DiffusionConv: kernel_initializer: unknown initializer"),
        (lambda: TAGConv(2, K=0), r"TAGConv: K must be an int >= 1, got 0"),
        (lambda: TAGConv(2, aggregate="median"), r"TAGConv: aggregate must be one of"),
        (lambda: TAGConv(2, in_channels=-3), r"TAGConv: in_channels must be an int >= 1, got -3"),
        (lambda: GCSConv("4"), r"GCSConv: channels must be an int >= 1, got '4'"),
        (lambda: GCSConv(4, bias_initializer="nope"), r"GCSConv: bias_initializer: unknown initializer 'nope'"),
        (lambda: GTVConv(4, epsilon=0.0), r"GTVConv: epsilon must be a number > 0, got 0.0"),
        (lambda: GTVConv(4, delta_coeff="big"), r"GTVConv: delta_coeff must be a number, got 'big'"),
        (lambda: GTVConv(4, activation=3), r"GTVConv: activation must be None, a name, a module or a callable"),
    ],
)
def test_bad_arguments_are_clear_errors(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_unsupported_modes_and_wrong_widths_are_clear_errors():
    x = torch.randn(2, 3, 4)
    with pytest.raises(GraphError, match="GTVConv does not support mixed mode"):
        GTVConv(2)(x, UNDIRECTED_PATH)
    with pytest.raises(GraphError, match="AGNNConv: x has 4 features but in_channels=3"):
        AGNNConv(in_channels=3)(torch.randn(3, 4), UNDIRECTED_PATH)
    with pytest.raises(GraphError, match="DiffusionConv: x has 4 features but in_channels=3"):
        DiffusionConv(2, in_channels=3)(torch.randn(3, 4), UNDIRECTED_PATH)
    with pytest.raises(GraphError, match="TAGConv: x has 4 features but the layer was built for 3"):
        TAGConv(2, in_channels=3)(torch.randn(3, 4), UNDIRECTED_PATH)
    with pytest.raises(GraphError, match="ARMAConv: x has 4 features but the layer was built for 3"):
        ARMAConv(2, in_channels=3)(torch.randn(3, 4), UNDIRECTED_PATH)


@pytest.mark.parametrize("name", GROUP)
def test_explicit_in_channels_equals_lazy(name):
    lazy = CASES[name].make()
    cls = type(lazy)
    lazy(torch.zeros(3, 4), UNDIRECTED_PATH)
    eager = cls(in_channels=4) if cls is AGNNConv else cls(lazy.channels, in_channels=4)
    assert not any(isinstance(p, torch.nn.parameter.UninitializedParameter) for p in eager.parameters())
    assert {k: v.shape for k, v in eager.state_dict().items()} == {k: v.shape for k, v in lazy.state_dict().items()}
    assert "in_channels=4" in repr(eager) or cls is AGNNConv


# -- hand-computed values --------------------------------------------------------------------------
def test_agnn_isolated_node_keeps_its_features_and_loops_are_not_doubled():
    x = torch.randn(4, 3, dtype=D)
    layer = AGNNConv().double()
    out = layer(x, UNDIRECTED_PATH)  # node 3 is isolated: only its added self-loop
    torch.testing.assert_close(out[3], x[3])
    with_loop = torch.cat([UNDIRECTED_PATH, E((1, 1))], 1)  # an existing loop is kept once
    torch.testing.assert_close(layer(x, with_loop), out)
    same = torch.ones(4, 3, dtype=D) * torch.tensor([[1.0], [2.0], [3.0], [4.0]], dtype=D)  # all cos = 1
    torch.testing.assert_close(layer(same, UNDIRECTED_PATH)[1], same[:3].mean(0))  # uniform over {0, 1, 2}


def test_agnn_beta_sharpens_attention_and_fixed_beta_is_a_buffer():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.1], [-1.0, 0.3]], dtype=D)
    layer = AGNNConv().double()
    set_(layer.beta, 50.0)  # almost a hard max of the cosine: node 1 attends to itself and node 0
    out = layer(x, UNDIRECTED_PATH)
    cos = torch.nn.functional.cosine_similarity(x[1:2], x, dim=1)
    p = torch.softmax(50.0 * cos, 0)
    torch.testing.assert_close(out[1], p @ x)
    fixed = AGNNConv(trainable=False)
    assert "beta" in dict(fixed.named_buffers()) and not list(fixed.parameters())


def test_diffusion_uses_true_powers_of_the_random_walk_matrix():
    chain = E((0, 1), (1, 2))  # 0 -> 1 -> 2, so rw(A) = A
    layer = DiffusionConv(1, K=3, activation=None).double()
    set_(layer.kernel, [[1.0], [10.0], [100.0]])
    out = layer(col(1, 2, 4), chain)
    # s0 = [1, 2, 4], s1 = A s0 = [0, 1, 2], s2 = A^2 s0 = [0, 0, 1]
    torch.testing.assert_close(out, col(1, 2 + 10, 4 + 20 + 100))
    # weighted in-degrees: node 2 averages its sources with weights 1 and 3
    fan_in = E((0, 2), (1, 2))
    out = layer(col(1, 2, 0), fan_in, edge_weight=torch.tensor([1.0, 3.0], dtype=D))
    torch.testing.assert_close(out, col(1, 2, 10 * (0.25 * 1 + 0.75 * 2)))
    # features are summed: two features give the sum of the two one-feature results
    two = torch.cat([col(1, 2, 4), col(3, 0, 1)], 1)
    torch.testing.assert_close(layer(two, chain), layer(col(4, 2, 5), chain))


def test_tag_uses_true_powers_of_sym_a():
    x = col(1, 2, 4)
    s = torch.tensor([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=D) / math.sqrt(2)  # sym(A) of the path
    expected = x + 10 * s @ x + 100 * s @ s @ x  # the reference code would use s @ x twice
    for channels in (1, 3):  # C >= F: powers of X; C < F below: Horner
        layer = TAGConv(channels, K=2, use_bias=False, in_channels=1).double()
        set_(layer.kernel, torch.tensor([[1.0], [10.0], [100.0]], dtype=D).expand(3, channels))
        torch.testing.assert_close(layer(x, UNDIRECTED_PATH), expected.expand(3, channels))
    wide = TAGConv(1, K=2, use_bias=False, in_channels=2).double()  # F = 2 > C = 1: Horner
    set_(wide.kernel, [[1.0], [0.0], [10.0], [0.0], [100.0], [0.0]])
    torch.testing.assert_close(wide(torch.cat([x, -x], 1), UNDIRECTED_PATH), expected)


def test_gcs_node_without_neighbours_keeps_only_the_skip_term():
    layer = GCSConv(2, bias_initializer="ones").double()
    x = torch.randn(4, 3, dtype=D)
    out = layer(x, UNDIRECTED_PATH)
    torch.testing.assert_close(out[3], x[3] @ layer.kernel_2.kernel + 1.0)


def test_gtv_known_values_and_epsilon():
    layer = GTVConv(1, delta_coeff=0.5, use_bias=False, in_channels=1).double()
    set_(layer.kernel.kernel, [[1.0]])
    pair = E((0, 1), (1, 0), (0, 0))  # a self-loop changes nothing
    # Gamma = 1 / |0 - 2| = 0.5: x'_0 = 0 - 0.5 * 0.5 * (0 - 2), x'_1 = 2 - 0.5 * 0.5 * (2 - 0)
    torch.testing.assert_close(layer(col(0, 2), pair), col(0.5, 1.5))
    # |0 - 1e-4| < epsilon = 1e-3: Gamma = 1 / epsilon
    torch.testing.assert_close(layer(col(0, 1e-4), pair), col(0.05, 1e-4 - 0.05))
    # edge weights scale Gamma
    out = layer(col(0, 2), E((0, 1), (1, 0)), edge_weight=torch.tensor([4.0, 1.0], dtype=D))
    torch.testing.assert_close(out, col(0.5, 2 - 0.5 * 2.0 * 2))


# -- dropout ------------------------------------------------------------------------------------------
def test_arma_dropout_only_in_training_and_weight_sharing_shapes():
    torch.manual_seed(0)
    layer = ARMAConv(3, order=2, iterations=4, share_weights=True, dropout_rate=0.5, in_channels=5).double()
    x = torch.randn(4, 5, dtype=D)
    plain = copy.deepcopy(layer)
    plain.dropout_rate = 0.0
    layer.eval()
    torch.testing.assert_close(layer(x, UNDIRECTED_PATH), plain(x, UNDIRECTED_PATH))
    layer.train()
    assert not torch.allclose(layer(x, UNDIRECTED_PATH), plain.train()(x, UNDIRECTED_PATH))
    assert layer.skip_kernel.shape == (2, 2, 5, 3) and layer.kernel_hidden.shape == (1, 2, 3, 3)
    assert ARMAConv(3, iterations=4).kernel_hidden.shape == (3, 1, 3, 3)
    assert ARMAConv(3).kernel_hidden is None


# -- edge weights: dense reference and partitions (the harness uses unweighted graphs) ----------------
WEIGHTED = ["ARMAConv", "DiffusionConv", "TAGConv", "GCSConv", "GTVConv"]


def _built(name):
    torch.manual_seed(0)
    layer = CASES[name].make().double()
    layer(torch.zeros(2, 4, dtype=D), E((0, 1)))
    return layer


@pytest.mark.parametrize("name", WEIGHTED)
def test_weighted_edges_match_reference_and_partitions(name):
    ei, n = random_graph(seed=21)
    w = torch.rand(ei.shape[1], generator=torch.Generator().manual_seed(1), dtype=D) + 0.2
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(2), dtype=D).requires_grad_()
    layer = _built(name)
    out = layer(x, ei, edge_weight=w)
    expected = CASES[name].reference(copy.deepcopy(layer), x.detach(), dense(ei, n, w), edge_index=ei)
    torch.testing.assert_close(out, expected)
    grad = torch.autograd.grad(out.square().sum(), x)[0]
    parts = split_graph(ei, ASSIGNMENTS["3-parts"], n)
    reps = [copy.deepcopy(layer) for _ in parts]
    outs = run_parts(parts, lambda p, g: reps[p](x[g.node_ids], g, edge_weight=w[g.edge_ids]))
    for g, o in zip(parts, outs):
        torch.testing.assert_close(o, out[g.node_ids])
    part_grad = torch.autograd.grad(sum(o.square().sum() for o in outs), x)[0]
    torch.testing.assert_close(part_grad, grad)


@pytest.mark.parametrize("name", ["ARMAConv", "DiffusionConv", "GCSConv", "GTVConv"])
def test_weighted_dense_batch_matches_reference_per_sample(name):
    layer = _built(name)
    n = 5
    g = torch.Generator().manual_seed(3)
    a = torch.stack([dense(random_graph(n=n, e=9, seed=s, isolated=())[0], n) for s in (4, 5)])
    a = a * (torch.rand(a.shape, generator=g, dtype=D) + 0.5)
    x = torch.randn(2, n, 4, generator=g, dtype=D)
    out = layer(x, a)
    for b in range(2):
        torch.testing.assert_close(out[b], CASES[name].reference(layer, x[b], a[b], edge_index=None))
