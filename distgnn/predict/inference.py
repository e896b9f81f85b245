"""Exact layer-wise inference over a (partitioned) graph, in chunks of destination rows.

``h_0 = x``; for every :class:`~distgnn.models.builder.LayerStep` ``k`` of the model (the
layer-wise protocol, :func:`distgnn.models.builder.layer_steps`):

* a **chunkable** step (one single-hop layer of
  :data:`~distgnn.models.builder.CHUNKABLE_LAYERS`): ``h_{k-1}`` of the owned rows goes through
  ONE halo exchange (``graph.gather_src``: owned rows then halo rows, ``[N + N_halo, F]``); then,
  for each chunk of ``batch_nodes`` owned destination rows ``[a, b)``, the step runs on a
  :class:`ChunkGraph`: the chunk's rows first, then its in-neighbours, with every in-edge of the
  chunk (in the part's edge order); rows ``[0, b - a)`` of the result are ``h_k[a:b]``. Peak
  memory: ``h_{k-1}`` with its halo, ``h_k``, and one chunk's rows and edges -- not the depth;
* any other step with a graph: run on the whole part (its layer exchanges per hop, as forward);
* a per-node step (a Linear head): on the owned rows.

Only ``h_k`` is kept (and the one activation asked for with ``keep``). Models without the
protocol fall back to one whole ``model(x, graph, **inputs)`` (same result, memory of a forward).

Exactness: a chunk's destination rows see exactly their whole-graph in-edges, in the same order,
and the :class:`ChunkGraph` answers in-degree questions with WHOLE-graph in-degrees for every row
(also for in-neighbours whose own in-edges are not in the chunk), so normalisations (GCN's
``D^-1/2 (A + I) D^-1/2``, SAGE's mean) are the whole graph's. Rows past ``b - a`` are
by-products and dropped. A ``ChunkGraph`` refuses what it cannot answer exactly (out-degrees,
weighted degrees, reverse edges, global sums) with a :class:`~distgnn.graph.GraphError`.

Collectives: every rank runs the same steps, so the same exchanges (one per chunkable step, one
for the degree table, those inside whole-part steps), whatever its number of chunks.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn

from ..graph import Graph, GraphError

__all__ = ["ChunkGraph", "LayerReport", "layerwise_forward", "LayerwiseRun"]


class ChunkGraph(Graph):
    """The graph of one chunk: ``edge_index [2, E_c]`` over ``num_nodes`` local rows (the chunk's
    destination rows first, then their in-neighbours), with whole-graph in-degrees.

    ``deg_offset [num_nodes]`` (int64) is added to the local in-edge count: ``in_degree(v) =
    deg_offset[v] + #local edges into v``, on this graph and on every graph derived from it with
    :meth:`with_edges` (self-loops removed or added). Built so that the offset is the whole-graph
    in-degree minus the local in-edge count: the chunk's rows hold all their in-edges (offset 0);
    an in-neighbour ``j`` holds only its self-loops (``deg_offset[j] = deg(j) - loops(j)``), so
    derived graphs that drop or replace loops count ``j`` as the whole graph would.
    """

    def __init__(self, edge_index: Tensor, num_nodes: int, deg_offset: Tensor):
        super().__init__(edge_index, num_nodes, validate=False)
        self.deg_offset = deg_offset

    def in_degree(self, edge_weight: Tensor | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
        if edge_weight is not None:
            raise GraphError("an inference chunk cannot weigh in-degrees (the in-neighbours' own in-edges are "
                             "elsewhere); mark the layer non-chunkable")
        return self.cached(("in_degree", dtype), lambda: (
            self.deg_offset + torch.bincount(self.edge_index[1], minlength=self.num_nodes)).to(dtype))

    def out_degree(self, edge_weight: Tensor | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
        raise GraphError("an inference chunk has no out-degrees; the layer is not chunkable (see CHUNKABLE_LAYERS)")

    def gather_reverse(self, e: Tensor) -> Tensor:
        raise GraphError("an inference chunk has no reverse edges; the layer is not chunkable (see CHUNKABLE_LAYERS)")

    def all_reduce(self, t: Tensor) -> Tensor:
        raise GraphError("an inference chunk cannot sum over the graph; the layer is not chunkable "
                         "(see CHUNKABLE_LAYERS)")

    def with_edges(self, edge_index: Tensor) -> "ChunkGraph":
        return ChunkGraph(edge_index, self.num_nodes, self.deg_offset)


class _Chunker:
    """Cuts the owned rows ``[0, N)`` of ``graph`` into chunks and builds their :class:`ChunkGraph`.

    Built once per inference: the in-edges sorted by target (stable: part edge order kept inside a
    target), the whole-graph in-degree and self-loop count of every source row (owned and halo;
    ONE exchange).
    """

    def __init__(self, graph: Graph):
        n, n_src = graph.num_nodes, graph.num_src_nodes
        src, dst = graph.edge_index
        self.n, self.src, self.dst = n, src, dst
        self.order = torch.argsort(dst, stable=True)  # (E,) edges by target, part order inside one
        self.ptr = torch.zeros(n + 1, dtype=torch.long, device=dst.device)
        self.ptr[1:] = torch.cumsum(torch.bincount(dst, minlength=n), 0)
        loops = torch.bincount(dst[src == dst], minlength=n)  # halo ids never equal owned ids
        table = torch.stack([graph.in_degree(dtype=torch.float64).round().to(torch.long), loops], 1)  # (N, 2)
        table = graph.gather_src(table.to(torch.float64)).round().to(torch.long)  # (N_src, 2): one exchange
        self.deg, self.loops = table[:, 0], table[:, 1]
        self.pos = torch.full((n_src,), -1, dtype=torch.long, device=dst.device)

    def chunk(self, a: int, b: int) -> tuple[Tensor, ChunkGraph]:
        """``(rows [M], graph)``: the source rows the chunk ``[a, b)`` reads (chunk rows first,
        ``M >= b - a``) and its :class:`ChunkGraph` over them."""
        lo, hi = int(self.ptr[a]), int(self.ptr[b])
        eids = torch.sort(self.order[lo:hi]).values  # (E_c,) the part's edge order
        src, dst = self.src[eids], self.dst[eids]
        dev = src.device
        own = torch.arange(a, b, device=dev)
        outside = torch.unique(src[(src < a) | (src >= b)])  # sorted in-neighbours outside the chunk
        rows = torch.cat([own, outside])  # (M,)
        self.pos[rows] = torch.arange(rows.numel(), device=dev)
        try:
            local_src = self.pos[src]
        finally:
            self.pos[rows] = -1
        # in-neighbours keep their self-loops, so graphs derived by dropping/adding loops count them right
        k = self.loops[outside]
        loop_ids = torch.repeat_interleave(torch.arange(b - a, rows.numel(), device=dev), k)
        loops = torch.stack([loop_ids, loop_ids])  # (2, L)
        edge_index = torch.cat([torch.stack([local_src, dst - a]), loops], 1)  # (2, E_c + L)
        local = torch.bincount(edge_index[1], minlength=rows.numel())
        g = ChunkGraph(edge_index, int(rows.numel()), self.deg[rows] - local)
        return rows, g


@dataclass
class LayerReport:
    """What one step did on this rank: its name, rows computed, chunks, seconds."""

    step: int
    name: str
    rows: int
    chunks: int
    seconds: float
    chunked: bool


@dataclass
class LayerwiseRun:
    """Layer-wise inference of ``model`` on one rank, one step per :meth:`step` call (so a driver
    can report progress per layer); :meth:`run` does all of them.

    Args:
        model: any module ``forward(x, graph, **inputs)``; evaluated in eval mode, no autograd.
        x: ``[N, F]`` owned rows; graph: a :class:`~distgnn.graph.Graph` or a partitioned one.
        inputs: extra forward inputs (``{"e": [E, S]}`` or ``{}``).
        batch_nodes: destination rows per chunk (``None`` or 0: the whole part in one chunk -- still
            layer by layer; chunking then costs only the chunk graph's construction).
        keep: step numbers (1-based) whose activations to keep (``--embeddings``).

    Shapes:
        output: ``[N, C]`` after the last step; ``kept[k]``: ``[N, F_k]``.

    ``num_steps`` is 1 for a model without the layer-wise protocol (one whole forward).
    """

    model: nn.Module
    x: Tensor
    graph: Graph
    inputs: dict = field(default_factory=dict)
    batch_nodes: int | None = None
    keep: tuple = ()

    def __post_init__(self):
        from ..models.builder import layer_steps

        self.steps = layer_steps(self.model)
        self.h = self.x
        self.e = self.inputs.get("e")
        self.done = 0
        self.kept: dict[int, Tensor] = {}
        self._chunker = None
        self.model.eval()

    @property
    def layerwise(self) -> bool:
        return self.steps is not None

    @property
    def num_steps(self) -> int:
        return len(self.steps) if self.steps is not None else 1

    def step_names(self) -> list[str]:
        return [s.name for s in self.steps] if self.steps is not None else ["forward"]

    @torch.no_grad()
    def step(self) -> LayerReport:
        """Run the next step (collective when it touches the graph)."""
        t0 = time.perf_counter()
        k = self.done + 1
        n = self.graph.num_nodes
        if self.steps is None:
            self.h = self.model(self.x, self.graph, **self.inputs)  # (N, C)
            report = LayerReport(k, "forward", n, 1, 0.0, False)
        else:
            s = self.steps[k - 1]
            chunks = 1
            if not s.uses_graph:
                self.h, self.e = s.run(self.h, None, self.e)  # (N, F_k)
            elif s.chunkable and self.batch_nodes:
                self.h, chunks = self._chunked(s)
            else:
                self.h, self.e = s.run(self.h, self.graph, self.e)  # (N, F_k)
            report = LayerReport(k, s.name, n, chunks, 0.0, bool(s.chunkable and s.uses_graph and self.batch_nodes))
        if k in self.keep:
            self.kept[k] = self.h
        self.done = k
        report.seconds = time.perf_counter() - t0
        return report

    def _chunked(self, s) -> tuple[Tensor, int]:
        if self._chunker is None:
            self._chunker = _Chunker(self.graph)
        c = self._chunker
        h_src = self.graph.gather_src(self.h)  # (N + N_halo, F): the one halo exchange of this step
        n, size = self.graph.num_nodes, int(self.batch_nodes)
        out, chunks = None, 0
        for a in range(0, n, size):
            b = min(a + size, n)
            rows, g = c.chunk(a, b)
            y, _ = s.run(h_src.index_select(0, rows), g, None)  # (M, F_k)
            if out is None:
                out = y.new_empty((n,) + tuple(y.shape[1:]))  # (N, F_k)
            out[a:b] = y[: b - a]
            chunks += 1
            del y, g, rows
        if out is None:  # a rank without owned rows: the width from an empty run
            rows, g = c.chunk(0, 0)
            y, _ = s.run(h_src.index_select(0, rows), g, None)
            out = y[:0]
        return out, chunks

    def run(self, on_step: Callable[[LayerReport], None] | None = None) -> Tensor:
        """All remaining steps; returns the output ``[N, C]``."""
        while self.done < self.num_steps:
            report = self.step()
            if on_step is not None:
                on_step(report)
        return self.h


def layerwise_forward(model: nn.Module, x: Tensor, graph: Graph, inputs: dict | None = None, *,
                      batch_nodes: int | None = None, keep: tuple = ()) -> tuple[Tensor, dict[int, Tensor]]:
    """``(output [N, C], {step: activation [N, F_k]})`` of ``model`` on ``graph`` by layer-wise
    inference (see the module docstring); eval mode, no autograd. Collective on a partition."""
    run = LayerwiseRun(model, x, graph, dict(inputs or {}), batch_nodes, tuple(keep))
    out = run.run()
    return out, run.kept
