"""Partitions of the test graphs written by the real partitioner, for the runtime tests."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from distgnn.data import GraphData
from distgnn.partition import Assignment, partition


@dataclass(frozen=True)
class FixedPartitioner:
    """A partitioner that returns a given assignment (so tests choose awkward parts)."""

    part: tuple[int, ...]
    name: str = "fixed"
    uses_weights: bool = False

    def assign(self, graph, num_parts, *, weights=None, seed=0, progress=None) -> Assignment:
        return Assignment(np.asarray(self.part, dtype=np.int32))


def write_parts(out, edge_index: torch.Tensor, num_nodes: int, assignment: torch.Tensor, **node_data) -> str:
    """Partition ``edge_index`` by ``assignment`` into Parquet shards at ``out``; returns ``out``."""
    data = GraphData(edge_index=edge_index, num_nodes=num_nodes, name="test-graph", **node_data)
    num_parts = int(assignment.max()) + 1
    partition(data, num_parts, out, method=FixedPartitioner(tuple(int(a) for a in assignment)))
    return str(out)


# random_graph()'s 12 nodes in 3 interleaved parts: on 2 ranks, rank 0 merges parts 0 and 1 and
# both ranks have halo rows (every part has cut edges to every other)
INTERLEAVED_3 = torch.tensor([0, 1, 2] * 4)
