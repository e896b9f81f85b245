"""Link prediction models: an encoder (any node model) and a decoder scoring node pairs.

:class:`LinkModel` is one ``nn.Module``, so checkpoints, the runtime's replica and its gradient
all-reduce treat it like any model: ``forward`` is the encoder's (node embeddings), :meth:`LinkModel.score`
the decoder's (one logit per pair).
"""
from __future__ import annotations

import inspect
from typing import Callable

from torch import Tensor, nn

from ..layers.utils import check_positive_int, check_rate, dropout as _dropout
from .builder import ModelError

__all__ = ["DECODERS", "DotDecoder", "LinkModel", "MLPDecoder", "link_model_builder", "make_decoder"]

DECODERS = ("dot", "mlp")


def _check_pair(h_u: Tensor, h_v: Tensor, owner: str) -> None:
    if h_u.shape != h_v.shape or h_u.dim() != 2:
        raise ModelError(f"{owner}: h_u and h_v must both be [M, D], got {tuple(h_u.shape)} and {tuple(h_v.shape)}")


class DotDecoder(nn.Module):
    """Inner-product decoder (Kipf & Welling, "Variational Graph Auto-Encoders", 2016):
    ``s(u, v) = h_u · h_v``, a logit (the edge probability is ``sigmoid(s)``).

    Shapes:
        h_u, h_v: ``[M, D]``; output: ``[M]``.
    """

    def forward(self, h_u: Tensor, h_v: Tensor) -> Tensor:
        _check_pair(h_u, h_v, "DotDecoder")
        return (h_u * h_v).sum(-1)  # (M,)


class MLPDecoder(nn.Module):
    """An MLP on the Hadamard product: ``s(u, v) = MLP(h_u ⊙ h_v)`` (as in OGB's link baselines).

    ``num_layers`` Linear layers ``D -> hidden -> ... -> 1`` with ReLU and dropout between them.

    Args:
        channels: ``D``; hidden: hidden width (default ``D``); num_layers: >= 1 (default 2; 1 is
            a weighted inner product plus a bias); dropout: rate in ``[0, 1)`` (default 0.0).

    Shapes:
        h_u, h_v: ``[M, D]``; output: ``[M]``.
    """

    def __init__(self, channels: int, hidden: int | None = None, num_layers: int = 2, dropout: float = 0.0):
        super().__init__()
        self.channels = check_positive_int(channels, "channels", "MLPDecoder")
        self.hidden = check_positive_int(channels if hidden is None else hidden, "hidden", "MLPDecoder")
        self.num_layers = check_positive_int(num_layers, "num_layers", "MLPDecoder")
        self.dropout = check_rate(dropout, "dropout", "MLPDecoder")
        sizes = [self.channels] + [self.hidden] * (self.num_layers - 1) + [1]
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, h_u: Tensor, h_v: Tensor) -> Tensor:
        _check_pair(h_u, h_v, "MLPDecoder")
        z = h_u * h_v  # (M, D)
        for i, lin in enumerate(self.lins):
            z = lin(z)  # (M, hidden) ... (M, 1)
            if i < len(self.lins) - 1:
                z = _dropout(z.relu(), self.dropout, self.training)
        return z.squeeze(-1)  # (M,)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.hidden}, num_layers={self.num_layers}, dropout={self.dropout}"


def make_decoder(name: str, channels: int) -> nn.Module:
    """A decoder by name: ``"dot"`` (:class:`DotDecoder`) or ``"mlp"`` (:class:`MLPDecoder` of width ``channels``)."""
    if name == "dot":
        return DotDecoder()
    if name == "mlp":
        return MLPDecoder(channels)
    raise ModelError(f"unknown decoder {name!r}; choose one of {', '.join(DECODERS)}")


def _takes_edges(module: nn.Module) -> bool:
    if hasattr(module, "takes_edges"):
        return bool(module.takes_edges)
    try:
        params = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False
    return "e" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class LinkModel(nn.Module):
    """An encoder producing node embeddings and a decoder scoring pairs of them.

    Args:
        encoder: any node model ``forward(x, graph[, e=]) -> [N, D]``.
        decoder: ``forward(h_u [M, D], h_v [M, D]) -> [M]`` logits (:func:`make_decoder`).

    ``forward(x, graph, **inputs)`` is the encoder's (``e=`` is passed on only when the encoder
    takes it: :attr:`takes_edges`); ``score(h_u, h_v)`` is the decoder's. Weight decay follows the
    encoder's ``param_groups`` when it has one, and applies to the decoder.

    Shapes:
        x: ``[N, F]``; forward: ``[N, D]``; score: ``[M, D]``, ``[M, D]`` -> ``[M]``.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        if not isinstance(encoder, nn.Module) or not isinstance(decoder, nn.Module):
            raise ModelError(f"LinkModel: encoder and decoder must be nn.Modules, got {type(encoder).__name__} and "
                             f"{type(decoder).__name__}")
        self.encoder, self.decoder = encoder, decoder
        self.takes_edges = _takes_edges(encoder)

    def forward(self, x: Tensor, graph, **inputs) -> Tensor:
        if not self.takes_edges:
            inputs.pop("e", None)
        return self.encoder(x, graph, **inputs)  # (N, D)

    def score(self, h_u: Tensor, h_v: Tensor) -> Tensor:
        return self.decoder(h_u, h_v)  # (M,)

    def param_groups(self, weight_decay: float) -> list[dict]:
        enc = (self.encoder.param_groups(weight_decay) if hasattr(self.encoder, "param_groups")
               else [{"params": list(self.encoder.parameters()), "weight_decay": weight_decay}])
        dec = list(self.decoder.parameters())
        return enc + ([{"params": dec, "weight_decay": weight_decay}] if dec else [])


def link_model_builder(
    encoder_builder: Callable[[int, int], nn.Module], decoder: str = "dot", embedding_dim: int | None = None
) -> Callable[[int, int], LinkModel]:
    """``build(in_channels, out_channels) -> LinkModel``: the encoder
    ``encoder_builder(in_channels, D)`` and the decoder ``decoder`` of width ``D``, where
    ``D = embedding_dim`` (default: the ``out_channels`` given to ``build``).

    Raises :class:`~distgnn.models.ModelError` for an unknown decoder (at once) or an encoder that
    is not an ``nn.Module``.
    """
    if decoder not in DECODERS:
        raise ModelError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
    if embedding_dim is not None:
        check_positive_int(embedding_dim, "embedding_dim", "link_model_builder")

    def build(in_channels: int, out_channels: int) -> LinkModel:
        d = embedding_dim if embedding_dim is not None else out_channels
        encoder = encoder_builder(in_channels, d)
        if not isinstance(encoder, nn.Module):
            raise ModelError(f"link_model_builder: the encoder builder returned {type(encoder).__name__}, not an "
                             "nn.Module")
        return LinkModel(encoder, make_decoder(decoder, d))

    build.spec = f"link({getattr(encoder_builder, 'spec', 'encoder')}, {decoder})"
    return build
