"""FeatureModulator: a continuous-convolution kernel computed from edge features."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..graph import GraphError
from .modes import ALL_MODES
from .utils import check_positive_int, check_rate, dropout


class FeatureModulator(nn.Module):
    r"""An edge network: per-edge weights that modulate the features of the source node.

    .. math::
        w(e) = \mathrm{Linear}_2\big(\mathrm{dropout}(\mathrm{GELU}(\mathrm{Linear}_1(e)))\big),
        \qquad m_{j \to i} = x_j \odot w(e_{ji})

    Both Linear layers have a bias; GELU is the exact (erf) one,
    ``GELU(z) = z * (1 + erf(z / sqrt(2))) / 2``; dropout (probability ``dropout``) acts in training
    mode only. The module itself only maps edge features to weights; a layer multiplies them into
    its messages. It is meant to be used as:

    - the edge network of any :class:`~distgnn.layers.MessagePassing` layer, as a continuous
      convolution (``message`` returns ``x_j * w(e)``; ``node_dim`` = the width of ``x``);
    - the kernel network of :class:`~distgnn.layers.ECCConv`:
      ``ECCConv(C, kernel_network=FeatureModulator(S, F * C))`` gives every edge a kernel
      ``[F, C]`` (the output reshaped row-major).

    Example, a continuous convolution ``x'_i = sum_{j -> i} x_j * w(e_ji)``, which runs unchanged
    on a whole graph and on the parts of a partitioned one:

    >>> import torch
    >>> from distgnn.layers import FeatureModulator, MessagePassing
    >>> class ContinuousConv(MessagePassing):
    ...     def __init__(self, edge_dim, channels, hidden_dim=16):
    ...         super().__init__(aggregate="sum")
    ...         self.kernel = FeatureModulator(edge_dim, channels, hidden_dim)
    ...
    ...     def forward(self, x, graph, e):
    ...         return self.propagate(x, graph, e)  # (N, F)
    ...
    ...     def message(self, x_j, e):
    ...         return x_j * self.kernel(e)  # (E, F)
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(4, 8)                                   # [N, F]
    >>> edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])  # [2, E]
    >>> e = torch.randn(4, 3)                                   # [E, S]: e.g. distances, angles
    >>> ContinuousConv(edge_dim=3, channels=8)(x, edge_index, e).shape
    torch.Size([4, 8])

    Reference: the spec alone (``layers.md``; no reference implementation to compare with).

    Args:
        edge_dim: size ``S`` of the edge features.
        node_dim: size of the produced weights (the width of the features they modulate; for
            ECCConv ``F * C``).
        hidden_dim: width of the hidden layer (default 64).
        dropout: dropout probability on the hidden layer, in ``[0, 1)`` (default 0.0).

    Shapes:
        e ``[*, E, edge_dim]`` (any leading dimensions: ``[E, S]``, or ``[B, N, N, S]`` for dense
        batches) -> ``[*, E, node_dim]``. Parameters: ``lin1.weight [hidden_dim, edge_dim]``,
        ``lin1.bias [hidden_dim]``, ``lin2.weight [node_dim, hidden_dim]``, ``lin2.bias
        [node_dim]`` (torch ``nn.Linear`` layout and default initialisation).

    Modes: single, disjoint, mixed, batch (it only sees edge features, whatever their leading
    dimensions; the layer using it decides the mode).
    """

    MODES = ALL_MODES

    def __init__(self, edge_dim: int, node_dim: int, hidden_dim: int = 64, dropout: float = 0.0):
        super().__init__()
        self.edge_dim = check_positive_int(edge_dim, "edge_dim", "FeatureModulator")
        self.node_dim = check_positive_int(node_dim, "node_dim", "FeatureModulator")
        self.hidden_dim = check_positive_int(hidden_dim, "hidden_dim", "FeatureModulator")
        self.dropout = check_rate(dropout, "dropout", "FeatureModulator")
        self.lin1 = nn.Linear(edge_dim, hidden_dim)
        self.lin2 = nn.Linear(hidden_dim, node_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin1.reset_parameters()
        self.lin2.reset_parameters()

    def forward(self, e: Tensor) -> Tensor:
        if not isinstance(e, Tensor) or e.dim() < 1 or e.shape[-1] != self.edge_dim:
            shape = tuple(e.shape) if isinstance(e, Tensor) else type(e).__name__
            raise GraphError(f"FeatureModulator: e must be [E, edge_dim={self.edge_dim}], got {shape}")
        h = F.gelu(self.lin1(e))  # (*, E, hidden_dim), exact erf GELU
        h = dropout(h, self.dropout, self.training)
        return self.lin2(h)  # (*, E, node_dim)

    def extra_repr(self) -> str:
        return f"edge_dim={self.edge_dim}, node_dim={self.node_dim}, hidden_dim={self.hidden_dim}, dropout={self.dropout}"
