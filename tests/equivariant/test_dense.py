"""Dense, Tensor and FusedTensor: formulas, parity bookkeeping, O(3) equivariance, lazy sizes, errors."""
from __future__ import annotations

import itertools

import pytest
import torch

from distgnn.equivariant import Dense, FusedTensor, Tensor, so3
from distgnn.equivariant.dense import _fused_product, parity_mask
from distgnn.equivariant.so3 import IrrepsError

from tests.equivariant.common import DT, gen, randomize, reference_dense, reference_tensor


def feats(shape, seed):
    return torch.randn(shape, generator=gen(seed), dtype=DT)


@pytest.mark.parametrize("p,L", [(1, 0), (1, 2), (2, 1), (2, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_dense_equals_its_formula_and_is_equivariant(p, L, bias):
    x = feats((4, 3, p, (L + 1) ** 2, 5), 1)
    d = Dense(6, use_bias=bias).double()
    y = d(x)
    assert d.kernel.shape == (p, L + 1, 5, 6) and y.shape == (4, 3, p, (L + 1) ** 2, 6)
    randomize(d)
    y = d(x)
    torch.testing.assert_close(y, reference_dense(d.kernel, d.bias, x))
    for q in (so3.random_orthogonal(gen(2), reflect=False), so3.random_orthogonal(gen(3), reflect=True)):
        torch.testing.assert_close(d(so3.transform_features(x, q)), so3.transform_features(y, q), rtol=1e-12, atol=1e-12)


def test_dense_lazy_and_eager_sizes():
    eager = Dense(4, in_features=3, in_parity=2, in_max_degree=1)
    assert eager.kernel.shape == (2, 2, 3, 4) and eager.bias.shape == (4,)
    assert eager.bias.abs().sum() == 0  # zeros
    w = eager.kernel.detach()
    # lecun normal per matrix: variance ~ 1/F_in, truncated at 2 std
    big = Dense(64, in_features=256, in_parity=1, in_max_degree=0)
    var = big.kernel.detach().var().item()
    assert 0.8 / 256 < var < 1.2 / 256 and big.kernel.abs().max() <= 2 * (1 / 256) ** 0.5 / 0.8796 + 1e-6
    lazy = Dense(4)
    assert lazy.has_uninitialized_params()
    lazy.load_state_dict(eager.state_dict())  # shapes come from the state dict
    torch.testing.assert_close(lazy.kernel.detach(), w)
    with pytest.raises(IrrepsError, match=r"Dense: built for inputs \[\.\., 2, 4, 3\], got \[\.\., 1, 4, 3\]"):
        lazy(torch.zeros(5, 1, 4, 3))


@pytest.mark.parametrize("p1,l1,p2,l2,lout,pseudo", [
    (1, 1, 1, 1, None, True), (1, 2, 2, 1, 3, True), (2, 2, 2, 2, 2, True), (2, 1, 1, 2, None, False),
    (1, 2, 1, 2, 1, False), (1, 0, 1, 2, None, True), (2, 0, 1, 3, 2, True),
])
def test_tensor_equals_the_path_by_path_formula(p1, l1, p2, l2, lout, pseudo):
    x1 = feats((3, p1, (l1 + 1) ** 2, 4), 1)
    x2 = feats((3, p2, (l2 + 1) ** 2, 4), 2)
    for cartesian in (True, False):
        t = Tensor(lout, pseudo, cartesian).double()
        t(x1, x2)
        randomize(t)
        y = t(x1, x2)
        P3, L3 = t.layout[4], t.layout[5]
        ref = torch.stack([reference_tensor(t.kernel, x1[i], x2[i], P3, L3, cartesian) for i in range(3)])
        torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)


def test_tensor_output_layout_rules():
    x_s = feats((2, 1, 1, 3), 0)  # scalar features
    x_v = feats((2, 1, 4, 3), 1)  # l <= 1, proper
    x_p = feats((2, 2, 4, 3), 2)  # with pseudotensors
    assert Tensor().double()(x_s, x_v).shape == (2, 1, 4, 3)  # scalar input: never pseudotensors
    assert Tensor(max_degree=0).double()(x_v, x_v).shape == (2, 1, 1, 3)  # scalar output: idem
    assert Tensor().double()(x_v, x_v).shape == (2, 2, 4, 3)  # vector x vector: cross product is a pseudovector
    assert Tensor(include_pseudotensors=False).double()(x_p, x_v).shape == (2, 1, 4, 3)
    assert Tensor(max_degree=2).double()(x_v, x_p).shape == (2, 2, 9, 3)
    # parity: in P=1 output the odd-degree channel holds odd irreps only; a vector x vector with
    # include_pseudotensors=False has no degree-1 output (the cross product is dropped)
    v_only = x_v.clone()
    v_only[:, :, 0] = 0  # pure vectors: their only degree-1 product is the cross product
    t = Tensor(include_pseudotensors=False).double()
    t(v_only, v_only)
    assert randomize(t)(v_only, v_only)[:, 0, 1:].abs().max() < 1e-14
    assert t(x_v, x_v)[:, 0, 1:].abs().max() > 1e-3  # scalar x vector is a vector
    # forbidden (parity-violating or triangle-violating) kernel entries are initialised to zero
    t = Tensor(max_degree=2, in_features=3, in_parity1=1, in_max_degree1=1, in_parity2=2, in_max_degree2=1)
    mask = parity_mask(1, 1, 2, 1, 2, 2, triangle=True)
    assert (t.kernel.detach()[mask == 0] == 0).all() and (t.kernel.detach()[mask == 1] != 0).all()


def _equivariance(module, x1, x2, reflect, seed):
    q = so3.random_orthogonal(gen(seed), reflect=reflect)
    co = module.cartesian_order
    y = module(x1, x2)
    yq = module(so3.transform_features(x1, q, co), so3.transform_features(x2, q, co))
    torch.testing.assert_close(yq, so3.transform_features(y, q, co), rtol=1e-11, atol=1e-11)
    # every output irrep some path can produce is nonzero, so the check covers each degree and parity
    p1, l1, p2, l2, p3, l3, _ = module.layout
    reachable = parity_mask(p1, l1, p2, l2, p3, l3, triangle=True).sum(dim=(0, 1, 2, 3))  # (P3, L3+1)
    assert reachable.sum() >= p3 * (l3 + 1) - 1  # only P=1 x P=1 misses one (the pseudoscalar)
    for c, l in itertools.product(range(p3), range(l3 + 1)):
        block = y[..., c, l * l : (l + 1) ** 2, :].abs().max()
        assert (block > 1e-6) if reachable[c, l] else (block < 1e-12), (c, l)


@pytest.mark.parametrize("fused", [False, True], ids=["tensor", "fused"])
@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
@pytest.mark.parametrize("p1,p2,pseudo", [(1, 1, True), (1, 2, True), (2, 2, True), (2, 1, False), (1, 1, False)])
def test_products_are_o3_equivariant(fused, reflect, p1, p2, pseudo):
    x1 = feats((5, p1, 9, 3), 4)
    x2 = feats((5, p2, 16, 3), 5)
    cls = FusedTensor if fused else Tensor
    for cartesian in (True, False):
        m = cls(max_degree=3, include_pseudotensors=pseudo, cartesian_order=cartesian).double()
        m(x1, x2)
        _equivariance(randomize(m), x1, x2, reflect, seed=6 + reflect)


def test_fused_coupling_tensor_equals_the_matrix_formulation():
    x1 = feats((4, 2, 9, 3), 7)
    x2 = feats((4, 1, 4, 3), 8)
    for pseudo in (True, False):
        m = FusedTensor(max_degree=2, include_pseudotensors=pseudo).double()
        m(x1, x2)
        randomize(m)
        k = {name: getattr(m, name) for name in m._KERNELS}
        direct = _fused_product(x1, x2, k, m.layout[:6], True)
        torch.testing.assert_close(m(x1, x2), direct, rtol=1e-12, atol=1e-12)
    # init: e3x's masks (P=1 inputs: odd-degree weights of the even part are zero, ...)
    f = FusedTensor(in_features=3, in_parity1=1, in_max_degree1=2, in_parity2=1, in_max_degree2=2)
    assert (f.kernel_e1.detach()[1] == 0).all() and (f.kernel_o1.detach()[[0, 2]] == 0).all()
    assert (f.kernel_eoo.detach()[0] == 0).all() and (f.kernel_eee.detach() != 0).all()


def test_gradcheck_and_gradgradcheck_of_the_products():
    x1 = feats((2, 1, 4, 2), 1).requires_grad_()
    x2 = feats((2, 2, 4, 2), 2).requires_grad_()
    for cls in (Tensor, FusedTensor):
        m = cls(max_degree=2).double()
        m(x1, x2)
        randomize(m)
        params = tuple(m.parameters())
        fn = lambda a, b, *w: m(a, b)  # noqa: E731 - parameters enter through the module
        assert torch.autograd.gradcheck(fn, (x1, x2) + params)
        assert torch.autograd.gradgradcheck(fn, (x1, x2))


def test_state_dict_round_trip_and_size_errors():
    x1, x2 = feats((2, 1, 4, 3), 1), feats((2, 2, 9, 3), 2)
    for cls in (Tensor, FusedTensor):
        a = cls().double()
        ya = a(x1, x2)
        b = cls().double()
        b.load_state_dict(a.state_dict())
        torch.testing.assert_close(b(x1, x2), ya)
        with pytest.raises(IrrepsError, match=rf"{cls.__name__}: built for inputs"):
            a(x1, feats((2, 2, 4, 3), 3))
    with pytest.raises(IrrepsError, match=r"Tensor: the product of inputs with max degrees 1 and 2 has degree at most 3, got max_degree=4"):
        Tensor(max_degree=4).double()(x1, x2)
    with pytest.raises(IrrepsError, match=r"Tensor: inputs1 and inputs2 must have the same number of features"):
        Tensor().double()(x1, feats((2, 2, 9, 4), 2))
    with pytest.raises(IrrepsError, match=r"FusedTensor: inputs1: axis -2 must have size"):
        FusedTensor().double()(feats((2, 1, 5, 3), 1), x2)
    with pytest.raises(IrrepsError, match=r"Tensor: max_degree must be None or an int >= 0, got -1"):
        Tensor(max_degree=-1)
    with pytest.raises(IrrepsError, match=r"Dense: in_parity must be 1 or 2, got 3"):
        Dense(4, in_parity=3)
