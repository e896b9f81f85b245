"""Bring your own model: :func:`model_builder` and :class:`LayerStack`.

A model spec is one of

* ``"gcn"``, ``"sage"``, ``"gat"``: the ready-made stacks of :data:`distgnn.models.MODELS`;
* the name of a registered node-level convolution (``distgnn.layers.registry.convolutions()``,
  kind ``"conv"``, mode ``"single"``), case-insensitive (``"ChebConv"``, ``"chebconv"``): a
  :class:`LayerStack` of that layer;
* ``"package.module:function"``: the user's ``function(in_channels, out_channels) -> nn.Module``,
  imported;
* a callable ``fn(in_channels, out_channels) -> nn.Module``.

**Layer-wise protocol** (exact inference, :mod:`distgnn.predict`): :func:`layer_steps` returns the
model's layer sequence as :class:`LayerStep` objects whose composition is the forward, so an
evaluator can run layer 1 for every node, exchange halo rows, run layer 2, ..., keeping one
layer's activations. The ready-made stacks (``gcn``, ``sage``, ``gat``) and :class:`LayerStack`
implement it; a user module may too, with a method ``layer_steps() -> list[LayerStep]``; for any
other module :func:`layer_steps` returns ``None`` (evaluators then run one whole forward).
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.utils import check_positive_int, check_rate, dropout as _dropout

__all__ = ["CHUNKABLE_LAYERS", "LayerStack", "LayerStep", "ModelError", "layer_names", "layer_steps", "model_builder"]

# layers whose output width is their input width (AGNNConv, CrystalConv) or at least it
# (GatedGraphConv pads its input): the stack projects the input to ``hidden`` and ends in a Linear head
_WIDTH_KEEPING = ("AGNNConv", "CrystalConv", "GatedGraphConv")
# constructor arguments the stack supplies when the user does not
_DEFAULT_ARGS = {"GatedGraphConv": {"n_layers": 2}}


# single-hop layers that read only the in-edges of the rows they compute, once, and whole-graph
# in-degrees (no out-degrees, reverse edges or global sums): a layer-wise evaluator may run them on
# a chunk of destination rows with their in-neighbours (tests/predict checks each one)
CHUNKABLE_LAYERS = ("GCNConv", "GraphSageConv", "GATConv")


@dataclass(frozen=True)
class LayerStep:
    """One step of a model's layer sequence: applying a model's steps in order IS its forward.

    ``run(x, graph, e) -> (x', e')``: ``x [N, F] -> [N, F']`` (the step's activation, what
    ``--embeddings`` exports), ``e``: edge features ``[E, S]`` or ``None``, passed on (layers that
    update edge features return new ones).

    Attributes:
        name: for progress lines (``"GCNConv 1"``, ``"head"``).
        run: the callable above; it reads ``self.training`` of its module (dropout), like forward.
        uses_graph: ``False`` for per-node steps (a Linear head): no neighbour rows, no exchange.
        chunkable: the step reads neighbour rows only through ONE single-hop layer of
            :data:`CHUNKABLE_LAYERS` and no edge features, so it may run on a chunk of destination
            rows and their in-neighbours (:mod:`distgnn.predict.inference`); otherwise an evaluator
            runs it on the whole part (halo exchange inside the layer, as in forward).
    """

    name: str
    run: Callable
    uses_graph: bool = True
    chunkable: bool = False


def _conv_step(name: str, conv: nn.Module, rate: float, module: nn.Module, act=None, pre=None,
               takes_edges: bool = False) -> LayerStep:
    """``x -> [pre] -> dropout -> conv -> [act]`` as a :class:`LayerStep` (edge features passed on)."""

    def run(x: Tensor, graph, e: Tensor | None = None):
        if pre is not None:
            x = pre(x)  # (N, hidden)
        x = _dropout(x, rate, module.training)
        out = conv(x, graph, e=e) if takes_edges else conv(x, graph)
        x, e = out if isinstance(out, tuple) else (out, e)  # (N, width), (E, S')
        return (act(x) if act is not None else x), e

    chunkable = type(conv).__name__ in CHUNKABLE_LAYERS and not takes_edges
    return LayerStep(name, run, uses_graph=True, chunkable=chunkable)


def _node_step(name: str, fn: Callable[[Tensor], Tensor]) -> LayerStep:
    return LayerStep(name, lambda x, graph=None, e=None: (fn(x), e), uses_graph=False, chunkable=True)


def layer_steps(model: nn.Module) -> list[LayerStep] | None:
    """The layer sequence of ``model`` (see :class:`LayerStep`), or ``None`` when it exposes none.

    Known: :class:`~distgnn.models.GCN`, :class:`~distgnn.models.GraphSAGE`,
    :class:`~distgnn.models.GAT`, :class:`LayerStack`, a :class:`~distgnn.models.LinkModel` of
    one of them (its encoder's steps), and any module with a ``layer_steps()``
    method (the protocol; it must return steps whose composition equals its forward).
    """
    from . import GAT, GCN, GraphSAGE

    own = getattr(model, "layer_steps", None)
    if callable(own):
        return list(own())
    from .link import LinkModel

    if isinstance(model, LinkModel):  # its forward is the encoder's: so are its steps
        return layer_steps(model.encoder)
    if isinstance(model, (GCN, GAT, GraphSAGE)):
        steps, last = [], len(model.convs) - 1
        for i, conv in enumerate(model.convs):
            sage = isinstance(model, GraphSAGE)
            act = F.relu if sage else (model.hidden_activation if i < last else None)
            steps.append(_conv_step(f"{type(conv).__name__} {i + 1}", conv, model.dropout, model, act))
        if isinstance(model, GraphSAGE):
            steps.append(_node_step("head", model.head))
        return steps
    return None


class ModelError(ValueError):
    """A model spec that cannot be resolved or built; the message names the spec and how to fix it."""


def _conv_entries() -> dict:
    from ..layers.registry import convolutions

    return {name: e for name, e in convolutions().items() if e.node_level and "single" in e.modes}


def layer_names() -> list[str]:
    """The registered node-level convolutions a :class:`LayerStack` can be built from."""
    return sorted(_conv_entries())


def _takes(fn, name: str) -> bool:
    return name in inspect.signature(fn).parameters


class LayerStack(nn.Module):
    """``num_layers`` layers of one registered convolution, ReLU and dropout between them.

    ``x -> dropout -> conv_1 -> ReLU -> dropout -> ... -> conv_L``: hidden layers have ``hidden``
    channels, the last one ``out_channels``. Layers whose width cannot be chosen (``AGNNConv``,
    ``CrystalConv``: output width = input width; ``GatedGraphConv``: at least the input width)
    run between a Linear input projection (``in_channels -> hidden``, then ReLU) and a Linear head
    (``hidden -> out_channels``). Layers that return ``(X', E')`` (``XENetConv``,
    ``CensNetConv``) pass ``E'`` to the next layer; the last ``E'`` is dropped.

    Args:
        layer: a registered convolution name (case-insensitive) or its class.
        in_channels, out_channels: ``F`` and the output width.
        hidden: hidden width (default 64); num_layers: >= 1 (default 2); dropout: rate in
            ``[0, 1)`` (default 0.5) applied to the input of every layer.
        layer_args: extra keyword arguments for every layer's constructor (e.g. ``{"K": 3}``);
            ``channels``/``in_channels`` are set by the stack. Edge-output widths
            (``edge_channels``) default to ``hidden``, XENetConv's ``stack_channels`` to ``hidden``.
        edge_dim: ``S``, the width of the edge features passed as ``e`` (0: none). Layers that
            need edge features (ECCConv, CrystalConv, XENetConv, CensNetConv) require ``S > 0``.

    Shapes:
        x: ``[N, F]``; e: ``[E, S]`` aligned with the graph's edges (optional).
        output: ``[N, out_channels]``.

    Modes: single (a whole graph or one part of a partitioned graph).
    """

    def __init__(
        self,
        layer: str | type,
        in_channels: int,
        out_channels: int,
        hidden: int = 64,
        num_layers: int = 2,
        dropout: float = 0.5,
        layer_args: dict | None = None,
        edge_dim: int = 0,
    ):
        super().__init__()
        entries = _conv_entries()
        if isinstance(layer, str):
            match = {n.lower(): n for n in entries}.get(layer.lower())
            if match is None:
                raise ModelError(f"LayerStack: unknown layer {layer!r}; choose one of {', '.join(sorted(entries))}")
            cls = entries[match].cls
        else:
            cls = layer
        name = cls.__name__
        check_positive_int(in_channels, "in_channels", "LayerStack")
        check_positive_int(out_channels, "out_channels", "LayerStack")
        self.hidden = check_positive_int(hidden, "hidden", "LayerStack")
        self.num_layers = check_positive_int(num_layers, "num_layers", "LayerStack")
        self.dropout = check_rate(dropout, "dropout", "LayerStack")
        self.edge_dim = check_positive_int(edge_dim, "edge_dim", "LayerStack", minimum=0)
        self.layer_name = name
        args = {**_DEFAULT_ARGS.get(name, {}), **(layer_args or {})}
        for key in ("channels", "in_channels", "in_edge_channels", "node_channels"):
            if key in args:
                raise ModelError(f"LayerStack: layer_args may not set {key!r}; the stack chooses it (use --hidden)")
        self.takes_edges = _takes(cls.forward, "e")
        needs_edges = "in_edge_channels" in inspect.signature(cls.__init__).parameters
        if needs_edges and edge_dim == 0:
            raise ModelError(f"LayerStack: {name} needs edge features (edge_dim > 0); this graph has none")
        keep_width = name in _WIDTH_KEEPING
        self.input = nn.Linear(in_channels, hidden) if keep_width else None
        self.head = nn.Linear(hidden, out_channels) if keep_width else None
        self.convs = nn.ModuleList()
        f, s = (hidden if keep_width else in_channels), edge_dim
        for i in range(num_layers):
            width = hidden if (keep_width or i < num_layers - 1) else out_channels
            conv, f, s = self._make(cls, name, args, width, f, s, keep_width)
            self.convs.append(conv)

    def _make(self, cls, name: str, args: dict, width: int, f: int, s: int, keep_width: bool):
        kw = dict(args)
        params = inspect.signature(cls.__init__).parameters
        kw["in_channels"] = f
        if "in_edge_channels" in params:
            kw["in_edge_channels"] = s
        if "node_channels" in params:  # XENetConv, CensNetConv: node and edge widths
            kw["node_channels"] = width
            kw.setdefault("edge_channels", self.hidden)
            if "stack_channels" in params:
                kw.setdefault("stack_channels", self.hidden)
        elif "channels" in params and not (keep_width and name != "GatedGraphConv"):
            kw["channels"] = width
        try:
            conv = cls(**kw)
        except (TypeError, ValueError) as exc:
            shown = ", ".join(f"{k}={v!r}" for k, v in kw.items())
            raise ModelError(f"LayerStack: {name}({shown}) failed: {exc}") from None
        s_out = kw.get("edge_channels", s) if "node_channels" in params else s
        return conv, (f if keep_width else width), s_out

    def forward(self, x: Tensor, graph, e: Tensor | None = None) -> Tensor:
        if self.input is not None:
            x = F.relu(self.input(_dropout(x, self.dropout, self.training)))  # (N, hidden)
        for i, conv in enumerate(self.convs):
            x = _dropout(x, self.dropout, self.training)
            out = conv(x, graph, e=e) if self.takes_edges else conv(x, graph)
            x, e = out if isinstance(out, tuple) else (out, e)  # (N, width), (E, S')
            if i < len(self.convs) - 1 or self.head is not None:
                x = F.relu(x)
        if self.head is not None:
            x = self.head(x)  # (N, out_channels)
        return x

    def layer_steps(self) -> list[LayerStep]:
        """The stack as :class:`LayerStep` objects (the layer-wise protocol): one per convolution
        (the input projection, when there is one, runs inside the first), then the head."""
        steps, last = [], len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            pre = None
            if i == 0 and self.input is not None:
                pre = lambda x: F.relu(self.input(_dropout(x, self.dropout, self.training)))  # noqa: E731
            act = F.relu if (i < last or self.head is not None) else None
            steps.append(_conv_step(f"{self.layer_name} {i + 1}", conv, self.dropout, self, act, pre, self.takes_edges))
        if self.head is not None:
            steps.append(_node_step("head", self.head))
        return steps

    def extra_repr(self) -> str:
        return f"layer={self.layer_name}, hidden={self.hidden}, num_layers={self.num_layers}, dropout={self.dropout}"


def _checked(builder: Callable, label: str) -> Callable[[int, int], nn.Module]:
    def build(in_channels: int, out_channels: int) -> nn.Module:
        try:
            model = builder(in_channels, out_channels)
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of user code is reported as one line
            raise ModelError(f"model {label} failed to build ({in_channels} -> {out_channels}): "
                             f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(model, nn.Module):
            raise ModelError(f"model {label} returned {type(model).__name__}, not a torch.nn.Module")
        return model

    build.spec = label
    return build


def _import(spec: str) -> Callable:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ModelError(f"model {spec!r}: write package.module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"model {spec!r}: cannot import module {module_name!r} ({type(exc).__name__}: {exc})") from None
    fn = module
    for part in attr.split("."):
        if not hasattr(fn, part):
            raise ModelError(f"model {spec!r}: module {module_name!r} has no attribute {attr!r}")
        fn = getattr(fn, part)
    if not callable(fn):
        raise ModelError(f"model {spec!r}: {attr!r} is a {type(fn).__name__}, not a callable fn(in_channels, out_channels)")
    return fn


def model_builder(
    spec: str | Callable,
    *,
    hidden: int | None = None,
    num_layers: int = 2,
    dropout: float | None = None,
    layer_args: dict | None = None,
    edge_dim: int = 0,
) -> Callable[[int, int], nn.Module]:
    """``build(in_channels, out_channels) -> nn.Module`` for a model spec (see the module docstring).

    Args:
        spec: ``"gcn"``/``"sage"``/``"gat"``, a registered convolution name, ``"pkg.mod:fn"`` or a
            callable ``fn(in_channels, out_channels)``.
        hidden: hidden width (default: 16 gcn, 64 sage, 8 per head gat, 64 for a LayerStack);
            num_layers: default 2; dropout: default the model's (0.5; 0.6 for gat).
        layer_args: keyword arguments for the stack (``gcn``/``sage``/``gat``: their constructor,
            e.g. ``{"heads": 4}``) or for every layer of a :class:`LayerStack`.
        edge_dim: edge feature width ``S`` the model will receive as ``e`` (0: none).

    ``hidden``, ``num_layers``, ``dropout``, ``layer_args`` apply to named specs only; a user
    builder receives only ``(in_channels, out_channels)``.

    Raises:
        ModelError: unknown name (lists the choices), import failure (names the module or
        attribute); when ``build`` runs: the builder raised, or returned something not a Module.
    """
    from . import MODELS, build_model

    layer_args = dict(layer_args or {})
    if not isinstance(spec, str):
        if not callable(spec):
            raise ModelError(f"model must be a name, package.module:function or a callable, got {type(spec).__name__}")
        return _checked(spec, getattr(spec, "__qualname__", repr(spec)))
    if ":" in spec:
        return _checked(_import(spec), repr(spec))
    if spec in MODELS:
        kw = dict(layer_args, num_layers=num_layers)
        if dropout is not None:
            kw["dropout"] = dropout
        return _checked(lambda i, o: build_model(spec, i, o, hidden, **kw), repr(spec))
    entries = _conv_entries()
    match = {n.lower(): n for n in entries}.get(spec.lower())
    if match is None:
        raise ModelError(f"unknown model {spec!r}; choose one of {', '.join(sorted(MODELS))}, a layer "
                         f"({', '.join(sorted(entries))}) or package.module:function")
    hid = 64 if hidden is None else hidden
    rate = 0.5 if dropout is None else dropout

    def stack(i: int, o: int) -> nn.Module:
        return LayerStack(match, i, o, hidden=hid, num_layers=num_layers, dropout=rate, layer_args=layer_args,
                          edge_dim=edge_dim)

    return _checked(stack, repr(match))
