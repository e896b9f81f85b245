"""The message-passing core: the only place where a layer reads neighbour rows.

``propagate(x, graph, e=None, **kwargs)`` computes::

    x'_i = update( aggregate_{j -> i} message(x_j, x_i, e_ji, ...) )

``x`` holds the rows the layer computes (node dimension first: ``[N, *, F]``); the source-side
rows come from ``graph.gather_src(x)``, which on a partitioned graph appends the halo rows
fetched from their owners. Multi-hop layers call ``propagate`` once per hop and so exchange once
per hop.

``message`` receives, by parameter name:

=================  ======================================================================
``x_j``, ``x_i``   rows of ``x`` at the source / target of every edge ``[E, *, F]``
``e``              edge features ``[E, S]`` (as passed to ``propagate``)
``edge_weight``    ``[E]`` (or ``[E, *]``) weights as passed to ``propagate``
``index``          ``[E]`` target of every edge; ``num_nodes``: ``N``
``<name>_j``       ``kwargs[name]`` (a node tensor ``[N, *]``) gathered at the sources
``<name>_i``       ``kwargs[name]`` gathered at the targets
any other name     ``kwargs[name]`` as given
=================  ======================================================================

The default message is ``x_j`` (times ``edge_weight`` when given). When ``message`` is not
overridden and the aggregation is ``sum`` or ``mean``, the core uses one CSR sparse-dense product
instead of materialising ``[E, F]`` messages.
"""
from __future__ import annotations

import inspect
from functools import lru_cache

from torch import Tensor, nn

from ..graph import Graph, as_graph
from ..ops import scatter
from ..ops.scatter import Reduce, check_reduce
from ..ops.sparse import spmm

_SPECIAL = {"x_j", "x_i", "e", "edge_weight", "index", "num_nodes"}


@lru_cache(maxsize=None)
def _params(fn) -> tuple[tuple[str, ...], bool]:
    sig = inspect.signature(fn)
    names = tuple(n for n, p in sig.parameters.items() if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
    var_kw = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    return names, var_kw


def _takes_graph(fn) -> bool:
    """Whether a callable (a module: its ``forward``) accepts a ``graph`` keyword."""
    target = type(fn).forward if isinstance(fn, nn.Module) else fn
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False
    return "graph" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def broadcast_edges(w: Tensor, like: Tensor) -> Tensor:
    """View ``w [E, *k]`` so it broadcasts against ``like [E, *k, ...]`` (trailing singleton dims)."""
    return w.view(tuple(w.shape) + (1,) * (like.dim() - w.dim()))


class MessagePassing(nn.Module):
    """Base class of every convolution (see the module docstring for the protocol).

    Args:
        aggregate: ``'sum'``, ``'mean'``, ``'max'``, ``'min'``, ``'prod'`` or a callable
            ``f(messages [E, *], index [E], num_nodes) -> [N, *]`` (called with ``graph=`` the
            layer's graph too when it accepts that keyword, for reductions that need whole-graph
            counts on a partition). Empty neighbourhoods give 0.

    Subclasses override :meth:`message`, :meth:`aggregate` and :meth:`update` as needed; no
    per-call state is stored on the module.
    """

    def __init__(self, aggregate: Reduce = "sum"):
        super().__init__()
        self.aggr = check_reduce(aggregate, f"{type(self).__name__}: aggregate")

    # -- the protocol ---------------------------------------------------------------------------
    def message(self, x_j: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        return x_j if edge_weight is None else x_j * broadcast_edges(edge_weight, x_j)

    def aggregate(self, messages: Tensor, index: Tensor, num_nodes: int, graph: Graph | None = None) -> Tensor:
        """Reduce ``messages [E, *]`` per target. A callable ``aggregate`` that takes a ``graph``
        keyword (e.g. :class:`~distgnn.layers.EquilibriumAggregation`, whose regulariser counts the
        groups of the whole graph) receives the layer's graph, so it stays exact on a partition."""
        if graph is not None and callable(self.aggr) and _takes_graph(self.aggr):
            return self.aggr(messages, index, num_nodes, graph=graph)
        return scatter(messages, index, num_nodes, self.aggr)

    def update(self, embeddings: Tensor) -> Tensor:
        return embeddings

    # -- the core -------------------------------------------------------------------------------
    def propagate(
        self,
        x: Tensor,
        graph: Graph | Tensor,
        e: Tensor | None = None,
        *,
        edge_weight: Tensor | None = None,
        **kwargs,
    ) -> Tensor:
        """``x [N, *, F]`` -> ``[N, *, F']`` (see the module docstring)."""
        graph = as_graph(graph, x.shape[0])
        if self._fused(x, edge_weight):
            out = self._spmm(x, graph, edge_weight)
        else:
            msg = self.message(**self._message_args(x, graph, e, edge_weight, kwargs))
            index = graph.edge_index[1]
            if "graph" in _params(type(self).aggregate)[0]:
                out = self.aggregate(msg, index, graph.num_nodes, graph=graph)  # (N, *, F')
            else:  # a subclass's own aggregate(messages, index, num_nodes)
                out = self.aggregate(msg, index, graph.num_nodes)  # (N, *, F')
        names, var_kw = _params(type(self).update)
        extra = {k: v for k, v in kwargs.items() if var_kw or k in names}
        if "x" in names and "x" not in extra:
            extra["x"] = x
        return self.update(out, **extra)

    def lift(self, graph: Graph, **node_tensors: Tensor) -> dict[str, Tensor]:
        """Node tensors to edges: ``name_j`` -> rows at the sources, ``name_i`` -> at the targets.

        ``lift(g, a_i=s, a_j=t)`` returns ``{"a_i": s[dst], "a_j": gather_src(t)[src]}``; use it
        for per-edge quantities computed outside :meth:`message` (e.g. attention coefficients).
        """
        src, dst = graph.edge_index
        out = {}
        for name, t in node_tensors.items():
            if name.endswith("_j"):
                out[name] = graph.gather_src(t).index_select(0, src)
            elif name.endswith("_i"):
                out[name] = t.index_select(0, dst)
            else:
                raise ValueError(f"lift: argument names must end in _i or _j, got {name!r}")
        return out

    def _fused(self, x: Tensor, edge_weight: Tensor | None) -> bool:
        # edge weights [E] (one matrix), or [E, *h] with x [N, *h, F] (one matrix per head)
        return (
            type(self).message is MessagePassing.message
            and self.aggr in ("sum", "mean")
            and (edge_weight is None or edge_weight.dim() == 1 or edge_weight.shape[1:] == x.shape[1:-1])
        )

    def _spmm(self, x: Tensor, graph: Graph, edge_weight: Tensor | None) -> Tensor:
        x_src = graph.gather_src(x)  # (N_src, *, F)
        w = edge_weight
        if self.aggr == "mean":
            deg = graph.in_degree(dtype=x.dtype).clamp(min=1)  # (N,)
            inv = (1.0 / deg).index_select(0, graph.edge_index[1])  # (E,)
            w = inv if w is None else w * broadcast_edges(inv, w)
        if w is not None and w.dtype != x.dtype:
            w = w.to(x.dtype)
        return spmm(graph.csr(), w, x_src)  # (N, *, F)

    def _message_args(self, x, graph, e, edge_weight, kwargs) -> dict:
        names, var_kw = _params(type(self).message)
        src, dst = graph.edge_index
        args = {}
        for name in names:
            if name == "x_j":
                args[name] = graph.gather_src(x).index_select(0, src)  # (E, *, F)
            elif name == "x_i":
                args[name] = x.index_select(0, dst)  # (E, *, F)
            elif name == "e":
                args[name] = e
            elif name == "edge_weight":
                args[name] = edge_weight
            elif name == "index":
                args[name] = dst
            elif name == "num_nodes":
                args[name] = graph.num_nodes
            elif name in kwargs:
                args[name] = kwargs[name]
            elif name.endswith("_j") and name[:-2] in kwargs:
                args[name] = graph.gather_src(kwargs[name[:-2]]).index_select(0, src)
            elif name.endswith("_i") and name[:-2] in kwargs:
                args[name] = kwargs[name[:-2]].index_select(0, dst)
        if var_kw:
            for k, v in kwargs.items():
                args.setdefault(k, v)
        return args
