import pytest
import torch

from distgnn.layers import Dense, get_activation, get_initializer
from distgnn.layers.utils import dropout


def test_dropout_keeps_expectation_and_gradients_match_mask():
    torch.manual_seed(0)
    x = torch.ones(200_000, dtype=torch.float64, requires_grad=True)
    y = dropout(x, 0.3)
    kept = y != 0
    assert abs(kept.double().mean().item() - 0.7) < 0.005
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())
    assert dropout(x, 0.3, training=False) is x
    xs = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(1)
    mask = dropout(torch.ones(5, 4, dtype=torch.float64), 0.5)
    torch.manual_seed(1)
    assert torch.autograd.gradcheck(lambda t: dropout(t, 0.5) * 0 + t * mask, (xs,))


def test_dense_is_lazy_and_keras_initialised():
    torch.manual_seed(0)
    d = Dense(300)
    assert d.in_features is None
    y = d(torch.zeros(2, 500))
    assert y.shape == (2, 300) and d.kernel.shape == (500, 300)
    limit = (6 / (500 + 300)) ** 0.5  # glorot uniform
    assert d.kernel.abs().max() <= limit and d.kernel.abs().max() > 0.95 * limit
    assert torch.count_nonzero(d.bias) == 0


def test_activation_and_initializer_errors():
    with pytest.raises(ValueError, match="unknown activation 'nope'"):
        get_activation("nope")
    with pytest.raises(ValueError, match="unknown initializer 'nope'"):
        get_initializer("nope")
    with pytest.raises(ValueError, match="'prelu' needs a known number of channels"):
        get_activation("prelu")
    assert torch.equal(get_activation("prelu", 3)(torch.tensor([-1.0, 2.0, -3.0])), torch.tensor([0.0, 2.0, 0.0]))
    assert torch.equal(get_activation(torch.abs)(torch.tensor([-2.0])), torch.tensor([2.0]))
