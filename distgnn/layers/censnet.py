"""CensNetConv (Jiang et al., 2019)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..graph import Graph, GraphError, as_graph
from ..ops import scatter_sum
from .base import MessagePassing
from .modes import prepare
from .utils import Activation, Dense, Initializer, check_positive_int, get_activation, get_initializer
from .xenet import is_dense_adjacency, parallel_sum, restore_edges


def censnet_matrices(edge_index: Tensor, num_nodes: int, dtype: torch.dtype = torch.float64):
    """Dense ``(gcn(A) [N, N], gcn(A_e) [M, M], T [N, M])`` of CensNetConv's convention.

    Each column ``m = (j, i)`` of ``edge_index [2, M]`` is one undirected edge ``{j, i}``:
    ``T[v, m]`` = number of ends of edge ``m`` at node ``v`` (1 and 1; 2 for a self-loop),
    ``A = T T^T`` off the diagonal (``A[u, v]`` = number of edges between ``u`` and ``v``),
    ``A_e = T^T T - 2 I``, and ``gcn`` adds remaining self-loops (the diagonals become 1).
    """
    m = edge_index.shape[1]
    t = torch.zeros(num_nodes, m, dtype=dtype)
    cols = torch.arange(m)
    t.index_put_((edge_index[0], cols), torch.ones(m, dtype=dtype), accumulate=True)
    t.index_put_((edge_index[1], cols), torch.ones(m, dtype=dtype), accumulate=True)

    def gcn(mat: Tensor) -> Tensor:
        mat = mat.clone()
        mat.fill_diagonal_(1.0)
        d = mat.sum(1).rsqrt()
        return d[:, None] * mat * d[None, :]

    line = t.t() @ t - 2.0 * torch.eye(m, dtype=dtype)
    return gcn(t @ t.t()), gcn(line), t


class CensNetConv(MessagePassing):
    r"""CensNet convolution of `Jiang et al. <https://arxiv.org/abs/1806.07440>`_: nodes and
    edges convolved in turn on the graph and on its line graph.

    .. math::
        X' = \sigma\Big(\big[(T\,\mathrm{diag}(E p_e)\,T^\top) \odot \mathrm{gcn}(A)\big] X W_v + b_v\Big),
        \qquad
        E' = \sigma\Big(\big[(T^\top \mathrm{diag}(X p_v)\,T) \odot \mathrm{gcn}(A_e)\big] E W_e + b_e\Big)

    with ``T [N, M]`` the node-edge incidence, ``A_e = T^T T - 2I`` the line graph, ``gcn(M) =
    D^-1/2 (M + I) D^-1/2`` with remaining self-loops (see ``shared/spec/layers.md``) and ``p_v
    [F, 1]``, ``p_e [S, 1]`` trainable. Both updates read the INPUT ``X`` and ``E``.

    **Decision — the undirected graph on distgnn's directed edges.** Each column ``(j, i)`` of
    ``edge_index`` is one undirected edge ``{j, i}`` (pass every undirected edge ONCE, in either
    direction; a graph that lists both ``j -> i`` and ``i -> j`` has two parallel edges between
    ``i`` and ``j``). ``E`` and ``E'`` are aligned with the columns. ``T[v, m]`` counts the ends of
    edge ``m`` at ``v``: 1 at each end, **2 at the node of a self-loop** (the standard unoriented
    incidence of a multigraph). ``A = T T^T`` off the diagonal, so ``A[u, v]`` is the number of
    edges between ``u`` and ``v`` (parallel edges count, as everywhere in distgnn); its diagonal
    is irrelevant because ``gcn`` sets it to 1. A dense adjacency works the same way: each
    nonzero ``a[i, j]`` is one edge ``{j, i}`` (its value is ignored), so pass one triangle of a
    symmetric matrix (e.g. ``torch.tril(a)``). On a simple graph given once per edge this is
    exactly Spektral's ``incidence_matrix`` / ``line_graph`` / ``gcn_filter`` preprocessing.

    Computation (no ``[N, M]`` or ``[M, M]`` matrix is built; every term is a node-level
    aggregation, so a partitioned graph gives exactly the whole-graph result). Write ``deg_T(v) =
    in(v) + out(v)`` (whole-graph degrees, a loop counts twice), ``k_m = T``-entries of edge ``m``
    at its ends (1, or 2 for a loop), ``d_v = 1 + deg_T(v) - 2 loops(v)`` the degrees of ``A + I``
    and ``d_m = 1 + deg_T(a) + deg_T(b) - 2 k_m`` those of ``A_e + I`` for ``m = {a, b}``.

    - Nodes, ``h = X W_v / sqrt(d)``, ``w = E p_e``: ``x'_u = (sum_{m = {u, v}, v != u} w_m c_m h_v
      + (sum_{m at u} k_m w_m) h_u) / sqrt(d_u)`` where ``c_m`` = number of edges between the ends
      of ``m``. The sum over the edges at ``u`` = its incoming edges (stored locally) + its
      outgoing edges (partial sums per local source row, returned with ``graph.scatter_src``).
    - Edges, ``z = E W_e / sqrt(d_m)``, ``y = X p_v``, ``Q_v = sum_{n at v} k_n z_n``: for
      ``m = {a, b}``, ``e'_m = (y_a Q_a + y_b Q_b + (y_a + y_b)(P_m - z_m)) / sqrt(d_m)`` with
      ``P_m`` the sum of ``z`` over all edges between ``a`` and ``b``; for a loop at ``v``,
      ``e'_m = 4 y_v (Q_v - 3 z_m) / sqrt(d_m)``. The source end's ``y``, ``Q`` and ``deg_T``
      come through ``graph.gather_src`` (it may be a halo node).
    - ``c_m`` and ``P_m`` are sums over the parallel copies of the edge in BOTH directions: the
      copies ``j -> i`` are all stored by the owner of ``i`` (summed locally), the reverse copies
      ``i -> j`` by the owner of ``j``; ``graph.gather_reverse`` of the per-direction sums brings
      the latter.

    Args:
        node_channels: output size ``C_v`` of the nodes.
        edge_channels: output size ``C_e`` of the edges.
        activation: ``None``, a name or a callable, applied to both outputs (``"prelu"``: one
            module per output).
        use_bias: add ``b_v``, ``b_e``.
        kernel_initializer: initialiser of ``W_v``, ``W_e``; node_initializer: of ``p_v``;
            edge_initializer: of ``p_e``; bias_initializer: of the biases (Keras names or
            callables).
        in_channels: node input size ``F``; in_edge_channels: edge input size ``S`` (inferred at
            the first call when not given).

    Shapes:
        x ``[N, F]`` (single/disjoint) or ``[B, N, F]`` (batch); a: edge_index ``[2, M]``, a
        graph, dense ``[N, N]`` or ``[B, N, N]``; e ``[M, S]`` (``[N, N, S]`` / ``[B, N, N, S]``
        with a dense ``a``); mask ``[B, N]`` (batch). Outputs ``(X' [N, C_v], E' [M, C_e])``;
        with a dense ``a``, ``E'`` is dense ``[N, N, C_e]`` / ``[B, N, N, C_e]`` (zero where there
        is no edge); masked nodes output zeros and lose their edges.

    Modes: single, disjoint, batch. The seed's preprocessed input (Laplacian, edge Laplacian,
    incidence) is not needed: the layer builds what it needs from the edges;
    :meth:`preprocess` returns those matrices for inspection only.
    """

    MODES = ("single", "disjoint", "batch")

    def __init__(
        self,
        node_channels: int,
        edge_channels: int,
        activation: Activation = None,
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        node_initializer: Initializer = "glorot_uniform",
        edge_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        *,
        in_channels: int | None = None,
        in_edge_channels: int | None = None,
    ):
        super().__init__(aggregate="sum")
        name = "CensNetConv"
        self.node_channels = check_positive_int(node_channels, "node_channels", name)
        self.edge_channels = check_positive_int(edge_channels, "edge_channels", name)
        self.node_kernel = Dense(node_channels, in_channels, False, kernel_initializer)
        self.edge_kernel = Dense(edge_channels, in_edge_channels, False, kernel_initializer)
        self.p_v = Dense(1, in_channels, False, node_initializer)
        self.p_e = Dense(1, in_edge_channels, False, edge_initializer)
        self._bias_init = get_initializer(bias_initializer, f"{name}: bias_initializer")
        self.node_bias = nn.Parameter(torch.empty(node_channels)) if use_bias else None
        self.edge_bias = nn.Parameter(torch.empty(edge_channels)) if use_bias else None
        self.node_activation = get_activation(activation, node_channels, f"{name}: activation")
        self.edge_activation = get_activation(activation, edge_channels, f"{name}: activation")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for d in (self.node_kernel, self.edge_kernel, self.p_v, self.p_e):
            d.reset_parameters()
        for b in (self.node_bias, self.edge_bias):
            if b is not None:
                self._bias_init(b)

    @staticmethod
    def preprocess(a, num_nodes: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``(gcn(A) [N, N], gcn(A_e) [M, M], T [N, M])`` of the layer's convention, dense, for
        inspection only (the layer does not take them). ``a``: edge_index ``[2, M]`` (each column
        one undirected edge) or a dense ``[N, N]`` (each nonzero one edge, in row-major order of
        ``(i, j)``, like the layer)."""
        if is_dense_adjacency(a):
            if a.dim() != 2 or a.shape[0] != a.shape[1]:
                raise GraphError(f"CensNetConv.preprocess: a dense adjacency must be [N, N], got {tuple(a.shape)}")
            dst, src = a.nonzero(as_tuple=True)
            return censnet_matrices(torch.stack([src, dst]), a.shape[0], a.dtype)
        g = as_graph(a, num_nodes)
        return censnet_matrices(g.edge_index, g.num_nodes)

    def forward(self, x: Tensor, a, e: Tensor | None = None, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        inp = prepare("CensNetConv", self.MODES, x, a, e=e, mask=mask)
        if inp.e is None:
            raise GraphError("CensNetConv: edge features e are required ([M, S], or [N, N, S] with a dense a)")
        h, eo = self.conv(inp.x, inp.graph, inp.e.to(inp.x.dtype))
        return inp.restore(h), restore_edges(inp, eo, is_dense_adjacency(a))

    def conv(self, x: Tensor, graph: Graph, e: Tensor) -> tuple[Tensor, Tensor]:
        """``x [N, F]``, ``e [M, S]`` -> ``(x' [N, C_v], e' [M, C_e])`` (see the class docstring)."""
        src, dst = graph.edge_index
        n, n_src, dtype = graph.num_nodes, graph.num_src_nodes, x.dtype
        loop = src == dst  # (M,) on a partition, halo ids never equal owned ids
        k = 1.0 + loop.to(dtype)  # (M,) incidence entries at each end: 1, or 2 for a loop
        deg_t = graph.in_degree(dtype=dtype) + graph.out_degree(dtype=dtype)  # (N,) T 1
        loops = scatter_sum(loop.to(dtype), dst, n)  # (N,)
        d_node = 1.0 + deg_t - 2.0 * loops  # (N,) degrees of A + I
        mult = self._multiplicity(graph, dtype)  # (M,) edges between the ends (non-loops)

        # one gather for everything the source end of an edge needs in the first step
        hv = self.node_kernel(x) * d_node.rsqrt().unsqueeze(-1)  # (N, C_v)
        y = self.p_v(x)  # (N, 1)
        c_v = hv.shape[-1]
        src_rows = graph.gather_src(torch.cat([hv, y, deg_t.unsqueeze(-1)], -1)).index_select(0, src)  # (M, C_v+2)
        dst_rows = torch.cat([hv, y, deg_t.unsqueeze(-1)], -1).index_select(0, dst)  # (M, C_v+2)
        h_j, y_a, deg_a = src_rows[:, :c_v], src_rows[:, c_v : c_v + 1], src_rows[:, -1]
        h_i, y_b, deg_b = dst_rows[:, :c_v], dst_rows[:, c_v : c_v + 1], dst_rows[:, -1]

        d_edge = 1.0 + deg_a + deg_b - 2.0 * k  # (M,) degrees of A_e + I
        z = self.edge_kernel(e) * d_edge.rsqrt().unsqueeze(-1)  # (M, C_e)
        w = self.p_e(e)  # (M, 1)
        coef = w * (mult * (~loop).to(dtype)).unsqueeze(-1)  # (M, 1) off-diagonal weight of A
        wk = w * k.unsqueeze(-1)  # (M, 1) contribution to the diagonal of T diag(w) T^T
        zk = z * k.unsqueeze(-1)  # (M, C_e) contribution to Q

        # sums over the edges at each node: incoming (local) + outgoing (partial sums at sources)
        inc = scatter_sum(torch.cat([coef * h_j, wk, zk], -1), dst, n)  # (N, C_v+1+C_e)
        out = graph.scatter_src(scatter_sum(torch.cat([coef * h_i, wk, zk], -1), src, n_src))  # (N, C_v+1+C_e)
        tot = inc + out
        node = (tot[:, :c_v] + tot[:, c_v : c_v + 1] * hv) * d_node.rsqrt().unsqueeze(-1)  # (N, C_v)
        q = tot[:, c_v + 1 :]  # (N, C_e)

        # edges: Q at both ends, and the sum of z over all edges between the ends
        q_a = graph.gather_src(q).index_select(0, src)  # (M, C_e)
        q_b = q.index_select(0, dst)  # (M, C_e)
        pz = parallel_sum(graph, z)  # (M, C_e) same direction
        pair = pz + graph.gather_reverse(pz)  # (M, C_e) both directions (non-loops)
        plain = y_a * q_a + y_b * q_b + (y_a + y_b) * (pair - z)  # (M, C_e)
        looped = 4.0 * y_b * (q_b - 3.0 * z)  # (M, C_e)
        edge = torch.where(loop.unsqueeze(-1), looped, plain) * d_edge.rsqrt().unsqueeze(-1)  # (M, C_e)

        if self.node_bias is not None:
            node, edge = node + self.node_bias, edge + self.edge_bias
        return self.node_activation(node), self.edge_activation(edge)

    @staticmethod
    def _multiplicity(graph: Graph, dtype: torch.dtype) -> Tensor:
        """``[M]`` number of edges between the two ends of each edge, both directions counted.
        Cached on the graph (computed with one ``gather_reverse``, identically on every part)."""

        def build():
            ones = torch.ones(graph.num_edges, dtype=dtype, device=graph.device)
            same = parallel_sum(graph, ones.unsqueeze(-1))  # (M, 1) copies j -> i
            return (same + graph.gather_reverse(same)).squeeze(-1)  # (M,) + copies i -> j

        return graph.cached(("censnet_multiplicity", dtype), build)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.node_kernel.in_features}, in_edge_channels={self.edge_kernel.in_features}, "
            f"node_channels={self.node_channels}, edge_channels={self.edge_channels}, "
            f"use_bias={self.node_bias is not None}"
        )
