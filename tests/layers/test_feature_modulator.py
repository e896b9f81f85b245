"""FeatureModulator: the formula in float64, dropout, gradcheck/gradgradcheck, the docstring's
continuous convolution (run as a doctest, then checked against a dense reference and on
partitions), and ECCConv with a FeatureModulator kernel network."""
from __future__ import annotations

import doctest
import math

import pytest
import torch

from distgnn.graph import GraphError, run_parts, split_graph
from distgnn.layers import ECCConv, FeatureModulator, MessagePassing
from distgnn.layers import feature_modulator as fm_module
from tests.graphs import ASSIGNMENTS, TINY, TINY_PARAMS, random_graph

D = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _gelu(z: torch.Tensor) -> torch.Tensor:
    """The exact GELU from its definition, ``z * Phi(z)``."""
    return z * 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))


def ref_modulator(m: FeatureModulator, e: torch.Tensor) -> torch.Tensor:
    """``w(e) = W_2 GELU(W_1 e + b_1) + b_2``, one edge at a time."""
    rows = []
    for k in range(e.shape[0]):
        h = _gelu(m.lin1.weight @ e[k] + m.lin1.bias)
        rows.append(m.lin2.weight @ h + m.lin2.bias)
    return torch.stack(rows) if rows else e.new_zeros(0, m.node_dim)


def _modulator(*args, **kwargs) -> FeatureModulator:
    torch.manual_seed(0)
    m = FeatureModulator(*args, **kwargs).double()
    with torch.no_grad():  # non-zero biases, so a misplaced bias cannot hide
        m.lin1.bias.uniform_(-1.0, 1.0)
        m.lin2.bias.uniform_(-1.0, 1.0)
    return m


# -- the module ----------------------------------------------------------------------------------
def test_formula_float64_and_leading_dimensions():
    m = _modulator(3, 5, hidden_dim=7)
    e = torch.randn(9, 3, generator=_gen(1), dtype=D) * 2.0
    out = m(e)
    assert out.shape == (9, 5)
    torch.testing.assert_close(out, ref_modulator(m, e), rtol=1e-12, atol=1e-12)
    dense = torch.randn(2, 4, 4, 3, generator=_gen(2), dtype=D)  # [B, N, N, S] (batch mode)
    torch.testing.assert_close(m(dense), ref_modulator(m, dense.reshape(-1, 3)).view(2, 4, 4, 5))
    assert m(e[:0]).shape == (0, 5)
    assert "edge_dim=3, node_dim=5, hidden_dim=7" in repr(m)


def test_gelu_is_the_exact_erf_one_not_tanh():
    m = _modulator(1, 1, hidden_dim=1)
    with torch.no_grad():
        m.lin1.weight.fill_(1.0), m.lin1.bias.zero_(), m.lin2.weight.fill_(1.0), m.lin2.bias.zero_()
    z = torch.tensor([[-2.0], [-0.5], [0.7], [3.0]], dtype=D)
    torch.testing.assert_close(m(z), _gelu(z), rtol=1e-15, atol=1e-15)
    tanh_gelu = torch.nn.functional.gelu(z, approximate="tanh")
    assert (m(z) - tanh_gelu).abs().max() > 1e-5


def test_dropout_acts_in_training_only():
    m = _modulator(3, 256, hidden_dim=256, dropout=0.5)
    with torch.no_grad():  # lin2 = identity: the output is the dropped-out hidden layer itself
        m.lin2.weight.copy_(torch.eye(256, dtype=D))
        m.lin2.bias.zero_()
    e = torch.randn(64, 3, generator=_gen(3), dtype=D)
    h = _gelu(e @ m.lin1.weight.t() + m.lin1.bias)  # (E, hidden)
    m.eval()
    torch.testing.assert_close(m(e), h)
    m.train()
    out = m(e)
    dropped = out == 0
    torch.testing.assert_close(out[~dropped], 2.0 * h[~dropped])  # kept units scaled by 1 / (1 - p)
    assert 0.4 < float(dropped.double().mean()) < 0.6


def test_gradcheck_and_gradgradcheck_float64():
    m = _modulator(2, 3, hidden_dim=4)
    e = torch.randn(5, 2, generator=_gen(4), dtype=D, requires_grad=True)
    params = tuple(p.detach().clone().requires_grad_() for p in m.parameters())
    assert torch.autograd.gradcheck(lambda e, *p: _call(m, p, e), (e,) + params)
    assert torch.autograd.gradgradcheck(lambda e, *p: _call(m, p, e), (e,) + params)


def _call(m: torch.nn.Module, params, *inputs):
    """``m(*inputs)`` with its parameters replaced by ``params`` (so gradcheck perturbs them)."""
    names = [n for n, _ in m.named_parameters()]
    return torch.func.functional_call(m, dict(zip(names, params)), inputs)


@pytest.mark.parametrize(
    "make,match",
    [
        pytest.param(lambda: FeatureModulator(0, 4), r"FeatureModulator: edge_dim must be an int >= 1, got 0", id="edge_dim"),
        pytest.param(lambda: FeatureModulator(3, -1), r"FeatureModulator: node_dim must be an int >= 1, got -1", id="node_dim"),
        pytest.param(lambda: FeatureModulator(3, 4, hidden_dim=2.5), r"FeatureModulator: hidden_dim must be an int >= 1", id="hidden"),
        pytest.param(lambda: FeatureModulator(3, 4, dropout=1.0), r"FeatureModulator: dropout must be in \[0, 1\), got 1.0", id="dropout"),
    ],
)
def test_bad_arguments_are_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_wrong_edge_features_are_a_clear_error():
    m = FeatureModulator(3, 4)
    with pytest.raises(GraphError, match=r"FeatureModulator: e must be \[E, edge_dim=3\], got \(5, 2\)"):
        m(torch.zeros(5, 2))
    with pytest.raises(GraphError, match=r"FeatureModulator: e must be \[E, edge_dim=3\], got list"):
        m([[0.0, 1.0, 2.0]])


# -- the docstring's continuous convolution --------------------------------------------------------
def _docstring_layer():
    """Run the docstring example as a doctest and return its ``ContinuousConv`` class."""
    (test,) = [t for t in doctest.DocTestFinder().find(fm_module) if t.name.endswith("FeatureModulator")]
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    result = runner.run(test, clear_globs=False)
    assert result.attempted >= 5 and result.failed == 0, "the FeatureModulator docstring example fails"
    return test.globs["ContinuousConv"]


def ref_continuous(layer, x, edge_index, e):
    """``x'_i = sum_{j -> i} x_j * w(e_ji)`` with a loop over the edges."""
    w = ref_modulator(layer.kernel, e)
    out = torch.zeros_like(x)
    for k, (j, i) in enumerate(edge_index.t().tolist()):
        out[i] += x[j] * w[k]
    return out


def test_docstring_example_runs():
    cls = _docstring_layer()
    assert issubclass(cls, MessagePassing)


@pytest.mark.parametrize("name", TINY_PARAMS)
def test_docstring_layer_matches_dense_reference(name):
    cls = _docstring_layer()
    edge_index, n = TINY[name]
    torch.manual_seed(1)
    layer = cls(edge_dim=3, channels=4).double()
    x = torch.randn(n, 4, generator=_gen(6), dtype=D)
    e = torch.randn(edge_index.shape[1], 3, generator=_gen(7), dtype=D)
    torch.testing.assert_close(layer(x, edge_index, e), ref_continuous(layer, x, edge_index, e))


def test_docstring_layer_partitioned_equals_whole_values_and_gradients():
    cls = _docstring_layer()
    edge_index, n = random_graph(seed=8)
    torch.manual_seed(2)
    layer = cls(edge_dim=3, channels=4).double()
    x = torch.randn(n, 4, generator=_gen(9), dtype=D, requires_grad=True)
    e = torch.randn(edge_index.shape[1], 3, generator=_gen(10), dtype=D, requires_grad=True)
    weights = torch.randn(n, 4, generator=_gen(11), dtype=D)
    params = list(layer.parameters())

    out = layer(x, edge_index, e)
    torch.testing.assert_close(out, ref_continuous(layer, x.detach(), edge_index, e.detach()))
    whole = torch.autograd.grad((out * weights).sum(), [x, e] + params)

    parts = split_graph(edge_index, ASSIGNMENTS["3-parts"], n)
    outs = run_parts(parts, lambda p, g: layer(x[g.node_ids], g, e[g.edge_ids]))
    for g, o in zip(parts, outs):
        torch.testing.assert_close(o, out[g.node_ids])
    loss = sum((o * weights[g.node_ids]).sum() for g, o in zip(parts, outs))
    for got, want in zip(torch.autograd.grad(loss, [x, e] + params), whole):
        torch.testing.assert_close(got, want)


# -- ECCConv with a FeatureModulator kernel network ------------------------------------------------
def ref_ecc_modulated(layer: ECCConv, x, edge_index, e):
    """``x'_i = x_i W_root + sum_{j -> i} x_j reshape(w(e_ji), [F, C]) + b``."""
    f, c = x.shape[1], layer.channels
    theta = ref_modulator(layer.kernel_fn, e).view(-1, f, c)
    out = x @ layer.root_kernel + layer.bias
    for k, (j, i) in enumerate(edge_index.t().tolist()):
        out[i] += x[j] @ theta[k]
    return out


def _ecc(f=4, c=3, s=2, **kwargs) -> ECCConv:
    torch.manual_seed(3)
    layer = ECCConv(c, kernel_network=_modulator(s, f * c, hidden_dim=6), **kwargs).double()
    with torch.no_grad():
        layer(torch.zeros(1, f, dtype=D), torch.zeros(2, 0, dtype=torch.long), e=torch.zeros(0, s, dtype=D))
        layer.bias.uniform_(-1.0, 1.0)
    return layer


@pytest.mark.parametrize("name", TINY_PARAMS)
def test_ecc_with_feature_modulator_matches_reference(name):
    edge_index, n = TINY[name]
    layer = _ecc()
    x = torch.randn(n, 4, generator=_gen(12), dtype=D)
    e = torch.randn(edge_index.shape[1], 2, generator=_gen(13), dtype=D)
    torch.testing.assert_close(layer(x, edge_index, e=e), ref_ecc_modulated(layer, x, edge_index, e))
    assert "kernel_network=<custom>" in repr(layer)
    assert any(n.startswith("kernel_fn.lin1") for n, _ in layer.named_parameters())


def test_ecc_with_feature_modulator_partitioned_equals_whole_and_mixed_mode():
    edge_index, n = random_graph(seed=14)
    layer = _ecc()
    x = torch.randn(n, 4, generator=_gen(15), dtype=D, requires_grad=True)
    e = torch.randn(edge_index.shape[1], 2, generator=_gen(16), dtype=D)
    out = layer(x, edge_index, e=e)
    whole = torch.autograd.grad(out.square().sum(), [x] + list(layer.parameters()))
    parts = split_graph(edge_index, ASSIGNMENTS["3-parts"], n)
    outs = run_parts(parts, lambda p, g: layer(x[g.node_ids], g, e=e[g.edge_ids]))
    for g, o in zip(parts, outs):
        torch.testing.assert_close(o, out[g.node_ids])
    got = torch.autograd.grad(sum(o.square().sum() for o in outs), [x] + list(layer.parameters()))
    for a, b in zip(got, whole):
        torch.testing.assert_close(a, b)
    xb = torch.randn(2, n, 4, generator=_gen(17), dtype=D)  # mixed: samples share the graph
    outb = layer(xb, edge_index, e=e)
    for b in range(2):
        torch.testing.assert_close(outb[b], layer(xb[b], edge_index, e=e))


def test_ecc_accepts_a_plain_callable_and_lazy_input_size():
    torch.manual_seed(4)
    m = _modulator(2, 3 * 5, hidden_dim=4)
    layer = ECCConv(5, kernel_network=lambda e: m(e), root=True).double()  # F inferred at the first call
    ei = torch.tensor([[0, 1, 2], [1, 2, 0]])
    x = torch.randn(3, 3, generator=_gen(18), dtype=D)
    e = torch.randn(3, 2, generator=_gen(19), dtype=D)
    out = layer(x, ei, e=e)
    layer.kernel_fn = m
    torch.testing.assert_close(out, ref_ecc_modulated(layer, x, ei, e))


def test_ecc_kernel_network_of_wrong_width_is_a_clear_error():
    layer = ECCConv(3, kernel_network=FeatureModulator(2, 7), in_channels=4)
    ei = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(GraphError, match=r"ECCConv: the kernel network must map e \[E, S\] to \[E, F\*C\] = \[2, 12\] "
                                         r"\(F=4 input features, C=3 channels\), got \(2, 7\)"):
        layer(torch.zeros(2, 4), ei, e=torch.zeros(2, 2))
