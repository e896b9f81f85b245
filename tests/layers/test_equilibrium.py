"""EquilibriumAggregation: against a float64 reference that unrolls the descent with
``torch.autograd.grad(create_graph=True)`` on the energy written from the formula (values and
gradients), groups by index / ptr / one group, empty groups, extra dimensions,
gradcheck/gradgradcheck, and as the aggregate of a MessagePassing layer, partitioned == whole."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from distgnn.graph import Graph, GraphError, run_parts, split_graph
from distgnn.layers import EquilibriumAggregation, MessagePassing
from tests.graphs import ASSIGNMENTS, TINY, TINY_PARAMS, random_graph

D = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _eq(f=3, c=2, hidden=(4,), grad_iter=3, lamb=0.3, seed=0) -> EquilibriumAggregation:
    torch.manual_seed(seed)
    m = EquilibriumAggregation(f, c, list(hidden), grad_iter=grad_iter, lamb=lamb).double()
    with torch.no_grad():  # LayerNorm affine terms away from (1, 0), so a misplaced one shows
        for norm in m.norms:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
        m.raw_rate.fill_(0.4)  # larger steps than the default: later steps matter more
    return m


# -- the reference ----------------------------------------------------------------------------------------
def ref_energy(m: EquilibriumAggregation, x, y, index, total: int):
    """``sum_g mean_{i in g} F(x_i, y_g) + softplus(lambda) * sum_g |y_g|^2 / total``."""
    inp = torch.cat([x, y[index]], dim=-1)  # (E, F + C)
    h = inp
    for k, lin in enumerate(m.lins):
        norm = m.norms[k]
        h = torch.tanh(F.layer_norm(lin(h), norm.normalized_shape, norm.weight, norm.bias, norm.eps)) + m.res[k](inp)
    potential = (m.out(h) + m.res[-1](inp)).squeeze(-1)  # (E,)
    groups = y.shape[0]
    count = torch.bincount(index, minlength=groups).clamp(min=1).to(x.dtype)
    per_group = x.new_zeros(groups).index_add(0, index, potential) / count
    return per_group.sum() + F.softplus(m.lamb).squeeze() * y.square().sum() / total


def ref_forward(m: EquilibriumAggregation, x, index, groups: int, total: int | None = None):
    """The unrolled momentum descent with autograd for the inner gradient (as the paper)."""
    y = x.new_zeros(groups, m.out_channels).requires_grad_()
    velocity = torch.zeros_like(y)
    for _ in range(m.grad_iter):
        with torch.enable_grad():
            g = torch.autograd.grad(ref_energy(m, x, y, index, total or groups), y, create_graph=True)[0]
        velocity = torch.sigmoid(m.raw_momentum) * velocity - F.softplus(m.raw_rate) * g
        y = y + velocity
    return y


def _grads(out, inputs, w=None):
    """Gradients of ``sum(out * w)`` (``w`` random by default); parameters that cannot reach the
    output (the biases of the last potential layers do not change ``grad_y``) get zeros."""
    w = torch.randn(out.shape, generator=_gen(99), dtype=out.dtype) if w is None else w
    return torch.autograd.grad((out * w).sum(), inputs, allow_unused=True, materialize_grads=True)


# -- values against the reference --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "hidden,grad_iter",
    [pytest.param((), 3, id="no-hidden"), pytest.param((5,), 4, id="one-hidden"),
     pytest.param((4, 3), 3, id="two-hidden"), pytest.param((3, 4, 2), 2, id="three-hidden"),
     pytest.param((4,), 1, id="one-step")],
)
def test_matches_autograd_reference_values_and_gradients(hidden, grad_iter):
    m = _eq(3, 2, hidden, grad_iter)
    x = torch.randn(10, 3, generator=_gen(1), dtype=D, requires_grad=True)
    index = torch.tensor([0, 0, 1, 3, 3, 3, 4, 4, 0, 1])  # group 2 and 5 empty
    out = m(x, index, dim_size=6)
    want = ref_forward(m, x, index, 6)
    assert out.shape == (6, 2)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    assert torch.all(out[2] == 0) and torch.all(out[5] == 0)
    params = [x] + list(m.parameters())
    for got, exp in zip(_grads(out, params), _grads(want, params)):
        torch.testing.assert_close(got, exp, rtol=1e-10, atol=1e-12)


def test_zero_steps_give_zeros_and_no_rows_give_zeros():
    m = _eq(grad_iter=0)
    x = torch.randn(4, 3, generator=_gen(2), dtype=D)
    torch.testing.assert_close(m(x, torch.tensor([0, 1, 1, 0])), torch.zeros(2, 2, dtype=D), rtol=0, atol=0)
    m = _eq()
    out = m(x[:0], torch.zeros(0, dtype=torch.long), dim_size=3)
    torch.testing.assert_close(out, torch.zeros(3, 2, dtype=D), rtol=0, atol=0)
    assert m(x[:0], torch.zeros(0, dtype=torch.long)).shape == (0, 2)


def test_groups_interact_through_the_regulariser_mean():
    """``R`` is a mean over groups (as the reference): more (even empty) groups, weaker pull to 0."""
    m = _eq(hidden=(4,), grad_iter=4, lamb=2.0)
    x = torch.randn(5, 3, generator=_gen(3), dtype=D)
    index = torch.zeros(5, dtype=torch.long)
    alone = m(x, index)
    padded = m(x, index, dim_size=7)
    torch.testing.assert_close(padded[0], ref_forward(m, x, index, 7)[0])
    assert (padded[0] - alone[0]).abs().max() > 1e-3


def test_ptr_groups_and_one_group_equal_index_groups():
    m = _eq(hidden=(4, 3))
    x = torch.randn(9, 3, generator=_gen(4), dtype=D)
    ptr = torch.tensor([0, 2, 2, 6, 9])  # group 1 empty
    index = torch.tensor([0, 0, 2, 2, 2, 2, 3, 3, 3])
    torch.testing.assert_close(m(x, ptr=ptr), m(x, index, dim_size=4), rtol=0, atol=0)
    torch.testing.assert_close(m(x, index, ptr=ptr), m(x, index), rtol=0, atol=0)
    torch.testing.assert_close(m(x), m(x, torch.zeros(9, dtype=torch.long)), rtol=0, atol=0)
    torch.testing.assert_close(m(x, dim_size=1), ref_forward(m, x, torch.zeros(9, dtype=torch.long), 1))


def test_extra_dimensions_are_independent_problems():
    m = _eq(hidden=(4,))
    x = torch.randn(2, 7, 3, generator=_gen(5), dtype=D)  # [B, E, F], groups along dim -2
    index = torch.tensor([1, 0, 1, 1, 2, 0, 2])
    out = m(x, index)
    assert out.shape == (2, 3, 2)
    for b in range(2):
        torch.testing.assert_close(out[b], m(x[b], index), rtol=1e-13, atol=1e-13)
    rows_first = m(x.transpose(0, 1), index, dim=0)  # [E, B, F] (messages of mixed mode)
    torch.testing.assert_close(rows_first, out.transpose(0, 1), rtol=1e-13, atol=1e-13)


def test_works_without_autograd_and_in_inference_mode():
    m = _eq(hidden=(4,))
    x = torch.randn(6, 3, generator=_gen(6), dtype=D)
    index = torch.tensor([0, 1, 1, 0, 2, 2])
    out = m(x, index)
    with torch.no_grad():
        torch.testing.assert_close(m(x, index), out, rtol=0, atol=0)
    with torch.inference_mode():
        torch.testing.assert_close(m(x, index), out.detach(), rtol=0, atol=0)


def test_gradcheck_and_gradgradcheck_float64():
    m = _eq(2, 2, hidden=(3,), grad_iter=2)
    names = [n for n, _ in m.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in m.parameters())
    x = torch.randn(5, 2, generator=_gen(7), dtype=D, requires_grad=True)
    index = torch.tensor([0, 2, 2, 0, 2])

    def fn(x, *p):
        return torch.func.functional_call(m, dict(zip(names, p)), (x, index), {"dim_size": 4})

    assert torch.autograd.gradcheck(fn, (x,) + params)
    assert torch.autograd.gradgradcheck(fn, (x,) + params)
    m0 = _eq(2, 2, hidden=(), grad_iter=2)
    names0 = [n for n, _ in m0.named_parameters()]
    params0 = tuple(p.detach().clone().requires_grad_() for p in m0.parameters())

    def fn0(x, *p):
        return torch.func.functional_call(m0, dict(zip(names0, p)), (x, index))

    assert torch.autograd.gradcheck(fn0, (x,) + params0)
    assert torch.autograd.gradgradcheck(fn0, (x,) + params0)


# -- as the aggregate of a message-passing layer ------------------------------------------------------------
class EquilibriumConv(MessagePassing):
    """``x'_i = EquilibriumAggregation_{j -> i}([x_j || x_j - x_i])``."""

    def __init__(self, aggr: EquilibriumAggregation):
        super().__init__(aggregate=aggr)

    def forward(self, x, graph):
        return self.propagate(x, graph)  # (N, *, C): the core passes the graph to the aggregate

    def message(self, x_j, x_i):
        return torch.cat([x_j, x_j - x_i], dim=-1)  # (E, *, 2F)


class _BlindConv(EquilibriumConv):
    """The same layer with an ``aggregate`` override that drops the graph."""

    def aggregate(self, messages, index, num_nodes):
        return self.aggr(messages, index, num_nodes)


def _ref_conv(conv: EquilibriumConv, x, edge_index, n):
    src, dst = edge_index
    messages = torch.cat([x[src], x[src] - x[dst]], dim=-1)
    return ref_forward(conv.aggr, messages, dst, n)


@pytest.mark.parametrize("name", TINY_PARAMS)
def test_message_passing_aggregate_matches_reference(name):
    edge_index, n = TINY[name]
    conv = EquilibriumConv(_eq(4, 3, hidden=(5,)))
    x = torch.randn(n, 2, generator=_gen(8), dtype=D)
    out = conv(x, edge_index)
    assert out.shape == (n, 3)
    torch.testing.assert_close(out, _ref_conv(conv, x, edge_index, n), rtol=1e-12, atol=1e-12)
    no_in = torch.bincount(edge_index[1], minlength=n) == 0
    assert torch.all(out[no_in] == 0)


def test_message_passing_mixed_mode_equals_single_per_sample():
    edge_index, n = random_graph(seed=9)
    conv = EquilibriumConv(_eq(4, 3, hidden=(5,)))
    x = torch.randn(n, 2, 2, generator=_gen(10), dtype=D)  # internal mixed layout [N, B, F]
    out = conv(x, edge_index)
    for b in range(2):
        torch.testing.assert_close(out[:, b], conv(x[:, b], edge_index), rtol=1e-12, atol=1e-12)


def test_message_passing_partitioned_equals_whole_values_and_gradients():
    edge_index, n = random_graph(seed=11)
    conv = EquilibriumConv(_eq(4, 3, hidden=(5, 4), grad_iter=3))
    x = torch.randn(n, 2, generator=_gen(12), dtype=D, requires_grad=True)
    w = torch.randn(n, 3, generator=_gen(13), dtype=D)
    params = list(conv.parameters())
    out = conv(x, edge_index)
    torch.testing.assert_close(out, _ref_conv(conv, x, edge_index, n), rtol=1e-12, atol=1e-12)
    whole = _grads(out, [x] + params, w)

    parts = split_graph(edge_index, ASSIGNMENTS["3-parts"], n)
    outs = run_parts(parts, lambda p, g: conv(x[g.node_ids], g))
    for g, o in zip(parts, outs):
        torch.testing.assert_close(o, out[g.node_ids])
    loss = sum((o * w[g.node_ids]).sum() for g, o in zip(parts, outs))
    got = torch.autograd.grad(loss, [x] + params, allow_unused=True, materialize_grads=True)
    for got, want in zip(got, whole):
        torch.testing.assert_close(got, want)

    # an aggregate that does not see the graph counts only its own part's groups in the mean
    blind = _BlindConv(copy.deepcopy(conv.aggr))
    outs = run_parts(parts, lambda p, g: blind(x[g.node_ids], g))
    assert max(float((o - out[g.node_ids]).detach().abs().max()) for g, o in zip(parts, outs)) > 1e-6


def test_module_form_with_a_partitioned_graph_counts_all_groups():
    edge_index, n = random_graph(seed=14)
    m = _eq(3, 2, hidden=(4,))
    x = torch.randn(n, 3, generator=_gen(15), dtype=D)
    parts = split_graph(edge_index, ASSIGNMENTS["3-parts"], n)
    index = torch.arange(n) % 2  # two groups per part, computed locally: 2 * 3 groups in all
    outs = run_parts(parts, lambda p, g: m(x[g.node_ids], index[: g.num_nodes], dim_size=2, graph=g))
    for g, o in zip(parts, outs):
        want = ref_forward(m, x[g.node_ids], index[: g.num_nodes], 2, total=2 * len(parts))
        torch.testing.assert_close(o, want, rtol=1e-12, atol=1e-12)
    whole = Graph(edge_index, n)
    torch.testing.assert_close(m(x, index, graph=whole), m(x, index), rtol=0, atol=0)


# -- errors -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make,match",
    [
        pytest.param(lambda: EquilibriumAggregation(0, 2, [3]), r"EquilibriumAggregation: in_channels must be an int >= 1, got 0", id="in"),
        pytest.param(lambda: EquilibriumAggregation(3, 2, 4), r"EquilibriumAggregation: num_layers is the list of hidden sizes .* got 4", id="int-layers"),
        pytest.param(lambda: EquilibriumAggregation(3, 2, [4, 0]), r"EquilibriumAggregation: num_layers entries must be an int >= 1, got 0", id="layer-size"),
        pytest.param(lambda: EquilibriumAggregation(3, 2, [4], grad_iter=-1), r"EquilibriumAggregation: grad_iter must be an int >= 0, got -1", id="grad-iter"),
        pytest.param(lambda: EquilibriumAggregation(3, 2, [4], lamb="x"), r"EquilibriumAggregation: lamb must be a number, got 'x'", id="lamb"),
    ],
)
def test_bad_arguments_are_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs_are_clear_errors():
    m = EquilibriumAggregation(3, 2, [4])
    x = torch.zeros(4, 3)
    cases = [
        (lambda: m(torch.zeros(4, 2)), r"EquilibriumAggregation: x must be \[E, F\] with F=3, got \(4, 2\)"),
        (lambda: m(torch.zeros(3)), r"EquilibriumAggregation: x must be \[E, F\] with F=3, got \(3,\)"),
        (lambda: m(x, dim=-1), r"EquilibriumAggregation: dim=-1 must name a row dimension of x \(4, 3\)"),
        (lambda: m(x, dim=2), r"EquilibriumAggregation: dim=2 must name a row dimension"),
        (lambda: m(x, torch.zeros(4)), r"EquilibriumAggregation: index must be an int64 \[E\] tensor with E=4, got \(4,\)"),
        (lambda: m(x, torch.zeros(3, dtype=torch.long)), r"EquilibriumAggregation: index must be an int64 \[E\] tensor with E=4, got \(3,\)"),
        (lambda: m(x, torch.tensor([0, 1, 2, 3]), dim_size=2), r"EquilibriumAggregation: index must lie in \[0, 2\) \(dim_size\), got values in \[0, 3\]"),
        (lambda: m(x, torch.tensor([0, -1, 0, 0])), r"EquilibriumAggregation: index must lie in \[0, 1\)"),
        (lambda: m(x, ptr=torch.tensor([0, 3])), r"EquilibriumAggregation: ptr must rise from 0 to the number of rows E=4, got \[0, 3\]"),
        (lambda: m(x, ptr=torch.tensor([0, 3, 2, 4])), r"EquilibriumAggregation: ptr must rise from 0 to the number of rows E=4"),
        (lambda: m(x, ptr=torch.tensor([0.0, 4.0])), r"EquilibriumAggregation: ptr must be an int64 \[G \+ 1\] tensor, got \(2,\)"),
        (lambda: m(x, ptr=torch.tensor([0, 4]), dim_size=3), r"EquilibriumAggregation: dim_size=3 but ptr describes 1 groups"),
        (lambda: m(x, dim_size=2), r"EquilibriumAggregation: without index or ptr all rows form one group, but dim_size=2"),
        (lambda: m(x, torch.zeros(4, dtype=torch.long), 3, 3), r"EquilibriumAggregation: give the number of groups once"),
        (lambda: m(x, torch.zeros(4, dtype=torch.long), dim_size=-1), r"EquilibriumAggregation: dim_size must be an int >= 0, got -1"),
        (lambda: m(x, graph="g"), r"EquilibriumAggregation: graph must be a distgnn Graph, got str"),
    ]
    for call, match in cases:
        with pytest.raises(GraphError, match=match):
            call()
