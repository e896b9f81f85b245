"""XENetConv (Maguire et al., 2021), plus the edge helpers it shares with XENetConvBatch and
CensNetConv: sums over parallel edges and dense edge outputs."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..graph import Graph, GraphError
from ..ops import scatter_sum
from .base import MessagePassing
from .modes import Inputs, prepare
from .utils import PReLU, Activation, Dense, Initializer, check_positive_int, get_activation


# -- helpers over the edges of one part -------------------------------------------------------------
def parallel_groups(graph: Graph) -> tuple[Tensor, int]:
    """``(group [E], G)``: edges with the same ``(src, dst)`` share a group id in ``[0, G)``.

    Every copy of a directed edge ``j -> i`` has the same target, so on a partition all copies are
    stored by the same part (the owner of ``i``) and the groups are exact without any exchange.
    Cached on the graph.
    """

    def build():
        src, dst = graph.edge_index
        key = dst * max(graph.num_src_nodes, 1) + src  # (E,)
        uniq, group = torch.unique(key, return_inverse=True)
        return group, int(uniq.numel())

    return graph.cached("parallel_edge_groups", build)


def parallel_sum(graph: Graph, t: Tensor, mean: bool = False) -> Tensor:
    """``t [E, *]`` -> ``[E, *]``: for each edge ``j -> i`` the sum (or mean) of ``t`` over every
    edge ``j -> i`` (its parallel copies and itself). Identity on a graph without multi-edges.

    ``graph.gather_reverse`` of the result gives, for each edge ``j -> i``, the sum (mean) over ALL
    reverse edges ``i -> j``, independent of the edge order, wherever they are stored.
    """
    group, num_groups = parallel_groups(graph)
    total = scatter_sum(t, group, num_groups)  # (G, *)
    if mean:
        cnt = torch.bincount(group, minlength=num_groups).clamp(min=1).to(t.dtype)  # (G,)
        total = total / cnt.view((-1,) + (1,) * (t.dim() - 1))
    return total.index_select(0, group)  # (E, *)


def is_dense_adjacency(a) -> bool:
    return isinstance(a, Tensor) and a.is_floating_point() and a.layout == torch.strided


def restore_edges(inp: Inputs, eo: Tensor, dense: bool) -> Tensor:
    """Edge outputs ``eo [E, *, C]`` (internal layout) back to the user's layout.

    ``[E, C]`` (single/disjoint), ``[B, E, C]`` (mixed); with a dense adjacency the dense
    ``[N, N, C]`` / ``[B, N, N, C]`` with ``out[..., i, j, :]`` the output of the edge ``j -> i``
    and zeros where there is no edge (batch mode is always dense).
    """
    src, dst = inp.graph.edge_index
    if inp.mode == "batch":
        b, n = inp.batch_shape
        out = eo.new_zeros((b, n, n) + tuple(eo.shape[1:]))  # (B, N, N, C)
        return out.index_put((dst // n, dst % n, src % n), eo)
    if dense:
        n = inp.graph.num_nodes
        out = eo.new_zeros((n, n) + tuple(eo.shape[1:])).index_put((dst, src), eo)  # (N, N, *, C)
        return out.permute(2, 0, 1, 3) if inp.mode == "mixed" else out
    return eo.transpose(0, 1) if inp.mode == "mixed" else eo


def _per_edge(t: Tensor, like: Tensor) -> Tensor:
    """Shared edge features ``t [E, S]`` broadcast to the messages' shape ``[E, *, S]``."""
    shape = (t.shape[0],) + tuple(like.shape[1:-1]) + (t.shape[-1],)
    return t.view((t.shape[0],) + (1,) * (like.dim() - 2) + (t.shape[-1],)).expand(shape)


# -- the layers -------------------------------------------------------------------------------------
class XENetConv(MessagePassing):
    r"""XENet convolution of `Maguire et al. <https://arxiv.org/abs/2110.01780>`_: node AND edge
    updates from a message stack that sees both directions of every edge.

    For each edge ``j -> i``:

    .. math::
        s_{ij} = \mathrm{PReLU}\big(\mathrm{MLP}([x_i \,\|\, x_j \,\|\, e_{ji} \,\|\, e_{ij}])\big)

    where ``e_{ji}`` are the edge's own features and ``e_{ij}`` those of its reverse edge
    ``i -> j``, zeros when the graph has none. The MLP has one Dense per entry of
    ``stack_channels`` with ReLU between them (none after the last), then a PReLU with one slope
    per channel (initialised to 0, as in Keras). With the gates
    ``g_in(s) = \sigma(s w_{in} + b_{in})`` and ``g_out(s) = \sigma(s w_{out} + b_{out})``
    (both 1 when ``attention=False``):

    .. math::
        in_i = \mathrm{agg}_{j \to i}\, g_{in}(s_{ij})\, s_{ij}, \quad
        out_i = \mathrm{agg}_{i \to k}\, g_{out}(s_{ki})\, s_{ki}, \quad
        x'_i = \mathrm{node\_act}([x_i \,\|\, in_i \,\|\, out_i] W_n + b_n), \quad
        e'_{ji} = \mathrm{edge\_act}(s_{ij} W_e + b_e)

    ``in_i`` runs over the incoming edges of ``i``, ``out_i`` over its outgoing edges, using the
    stack of each outgoing edge ``i -> k`` (as seen from its target ``k``). ``E'`` is aligned
    with the input edges.

    Partitions: the incoming sum is local (a part stores every edge whose target it owns). The
    outgoing edges of an owned node are stored by the parts owning their targets: each part sums
    the gated stacks of its edges per LOCAL SOURCE row (``[N_src]``, halo rows included) and
    ``graph.scatter_src`` adds these partial sums into the owners' rows. The reverse features come
    from ``graph.gather_reverse`` (the reverse edge may be stored by another part). ``mean``
    divides the outgoing sum by the whole-graph out-degree (``graph.out_degree``).

    **Decisions** (documented deviations from the Spektral reference):

    - Parallel reverse edges: when a graph holds several edges ``i -> j``, ``e_{ij}`` is the MEAN
      of their features (the reverse edge's features when there is one, zeros when none). Taking
      "the first one" would make the output depend on the order of the edges.
    - ``aggregate`` is ``'sum'`` (default) or ``'mean'``. Max/min/prod are not offered: the
      outgoing aggregation of a node combines partial results from several parts, and the graph
      contract returns partial results with a sum (``scatter_src``) only.
    - ``use_bias``, ``kernel_initializer`` and ``bias_initializer`` apply to every Dense of the
      layer except the two attention gates, which always have a bias (Spektral creates them as
      plain ``Dense(1, activation="sigmoid")``); the gates use the given initialisers.
    - Only the pattern of a dense or weighted adjacency is used (weights are ignored).

    Args:
        stack_channels: width of the message stack: an int or a non-empty list of ints (one Dense
            each); the stack's output width ``C`` is the last entry.
        node_channels: output size ``C_n`` of the nodes.
        edge_channels: output size ``C_e`` of the edges.
        attention: gate the incoming and outgoing stacks with ``g_in``, ``g_out``.
        node_activation, edge_activation: ``None``, a name (``"prelu"`` allowed) or a callable.
        aggregate: ``'sum'`` or ``'mean'`` (see above).
        use_bias: biases of the stack, node and edge Dense layers.
        kernel_initializer, bias_initializer: Keras names or callables.
        in_channels: node input size ``F``; in_edge_channels: edge input size ``S``. Sizes are
            inferred at the first call when not given.

    Shapes:
        x ``[N, F]`` (single/disjoint) or ``[B, N, F]`` (mixed); a: edge_index ``[2, E]``, a graph,
        or dense ``[N, N]``; e ``[E, S]`` aligned with the edges (``[N, N, S]`` with a dense ``a``;
        shared by the samples in mixed mode). Outputs ``(X' [N, C_n], E' [E, C_e])``; mixed:
        ``([B, N, C_n], [B, E, C_e])``; with a dense ``a``, ``E'`` is dense ``[N, N, C_e]``
        (``[B, N, N, C_e]`` mixed), zero where there is no edge.

    Modes: single, disjoint, mixed (dense batches: :class:`XENetConvBatch`).
    """

    MODES = ("single", "disjoint", "mixed")

    def __init__(
        self,
        stack_channels: int | Sequence[int],
        node_channels: int,
        edge_channels: int,
        attention: bool = True,
        node_activation: Activation = None,
        edge_activation: Activation = None,
        aggregate: str = "sum",
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        *,
        in_channels: int | None = None,
        in_edge_channels: int | None = None,
    ):
        name = type(self).__name__
        if not (isinstance(aggregate, str) and aggregate in ("sum", "mean")):
            raise ValueError(
                f"{name}: aggregate must be 'sum' or 'mean', got {aggregate!r} (the outgoing "
                "aggregation combines partial results from several parts by summing them, so "
                "max/min/prod/callables are not supported)"
            )
        super().__init__(aggregate=aggregate)
        if isinstance(stack_channels, int) and not isinstance(stack_channels, bool):
            stack = [stack_channels]
        elif isinstance(stack_channels, Sequence) and len(stack_channels) > 0:
            stack = list(stack_channels)
        else:
            raise ValueError(f"{name}: stack_channels must be an int or a non-empty list of ints, got {stack_channels!r}")
        for c in stack:
            check_positive_int(c, "stack_channels entries", name)
        self.stack_channels = stack
        self.node_channels = check_positive_int(node_channels, "node_channels", name)
        self.edge_channels = check_positive_int(edge_channels, "edge_channels", name)
        if in_channels is not None:
            check_positive_int(in_channels, "in_channels", name)
        if in_edge_channels is not None:
            check_positive_int(in_edge_channels, "in_edge_channels", name)
        self.attention = bool(attention)
        init = dict(kernel_initializer=kernel_initializer, bias_initializer=bias_initializer)
        known = in_channels is not None and in_edge_channels is not None
        sizes = [2 * in_channels + 2 * in_edge_channels if known else None] + stack
        self.stack = nn.ModuleList(Dense(c, sizes[i], use_bias, **init) for i, c in enumerate(stack))
        self.stack_act = PReLU(stack[-1])
        c = stack[-1]
        self.att_in = Dense(1, c, True, **init) if self.attention else None
        self.att_out = Dense(1, c, True, **init) if self.attention else None
        node_in = None if in_channels is None else in_channels + 2 * c
        self.node_model = Dense(node_channels, node_in, use_bias, **init)
        self.edge_model = Dense(edge_channels, c, use_bias, **init)
        self.node_activation = get_activation(node_activation, node_channels, f"{name}: node_activation")
        self.edge_activation = get_activation(edge_activation, edge_channels, f"{name}: edge_activation")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for d in list(self.stack) + [self.att_in, self.att_out, self.node_model, self.edge_model]:
            if d is not None:
                d.reset_parameters()
        nn.init.zeros_(self.stack_act.alpha)

    def forward(self, x: Tensor, a, e: Tensor | None = None) -> tuple[Tensor, Tensor]:
        name = type(self).__name__
        inp = prepare(name, self.MODES, x, a, e=e)
        if inp.e is None:
            raise GraphError(f"{name}: edge features e are required ([E, S], or [N, N, S] with a dense a)")
        h, eo = self.conv(inp.x, inp.graph, inp.e)
        return inp.restore(h), restore_edges(inp, eo, is_dense_adjacency(a))

    def conv(self, x: Tensor, graph: Graph, e: Tensor) -> tuple[Tensor, Tensor]:
        """The layer in the internal layout: ``x [N, *, F]``, ``e [E, S]`` ->
        ``(x' [N, *, C_n], e' [E, *, C_e])``."""
        src, dst = graph.edge_index
        e = e.to(x.dtype)
        e_rev = graph.gather_reverse(parallel_sum(graph, e, mean=True))  # (E, S) e_ij, zeros if none
        ev = self.lift(graph, x_i=x, x_j=x)  # (E, *, F) each
        z = torch.cat([ev["x_i"], ev["x_j"], _per_edge(e, ev["x_i"]), _per_edge(e_rev, ev["x_i"])], -1)  # (E, *, 2F+2S)
        for k, dense in enumerate(self.stack):
            z = dense(z)  # (E, *, stack_k)
            if k < len(self.stack) - 1:
                z = torch.relu(z)
        s = self.stack_act(z)  # (E, *, C)
        if self.attention:
            m_in = torch.sigmoid(self.att_in(s)) * s  # (E, *, C)
            m_out = torch.sigmoid(self.att_out(s)) * s  # (E, *, C)
        else:
            m_in = m_out = s
        agg_in = self.aggregate(m_in, dst, graph.num_nodes)  # (N, *, C)
        agg_out = graph.scatter_src(scatter_sum(m_out, src, graph.num_src_nodes))  # (N, *, C)
        if self.aggr == "mean":
            deg = graph.out_degree(dtype=x.dtype).clamp(min=1)  # (N,) whole-graph out-degree
            agg_out = agg_out / deg.view((-1,) + (1,) * (agg_out.dim() - 1))
        h = self.node_activation(self.node_model(torch.cat([x, agg_in, agg_out], -1)))  # (N, *, C_n)
        eo = self.edge_activation(self.edge_model(s))  # (E, *, C_e)
        return h, eo

    def extra_repr(self) -> str:
        f = self.node_model.in_features
        f = None if f is None else f - 2 * self.stack_channels[-1]
        return (
            f"in_channels={f}, stack_channels={self.stack_channels}, node_channels={self.node_channels}, "
            f"edge_channels={self.edge_channels}, attention={self.attention}, aggregate={self.aggr!r}"
        )
