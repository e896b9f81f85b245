"""Small labelled graphs shared by the tests (``edge_index`` rows: source, target)."""
from __future__ import annotations

import pytest
import torch


def E(*pairs) -> torch.Tensor:
    if not pairs:
        return torch.empty(2, 0, dtype=torch.long)
    return torch.tensor(pairs, dtype=torch.long).t().contiguous()


def dense(edge_index: torch.Tensor, n: int, weight=None, dtype=torch.float64) -> torch.Tensor:
    """``A [N, N]`` with ``A[i, j]`` = total weight of the edges ``j -> i``."""
    a = torch.zeros(n, n, dtype=dtype)
    w = torch.ones(edge_index.shape[1], dtype=dtype) if weight is None else weight.to(dtype)
    a.index_put_((edge_index[1], edge_index[0]), w, accumulate=True)
    return a


def random_graph(n=12, e=30, seed=0, isolated=(10, 11)):
    """Random directed graph with a self-loop, a duplicated edge and isolated nodes."""
    g = torch.Generator().manual_seed(seed)
    live = torch.tensor([i for i in range(n) if i not in isolated])
    ei = live[torch.randint(0, live.numel(), (2, e), generator=g)]
    ei = torch.cat([ei, E((3, 3), (ei[0, 0].item(), ei[1, 0].item()))], 1)
    return ei, n


TINY = {
    "path": (E((0, 1), (1, 2), (2, 3), (3, 4)), 5),
    "star": (E(*[(j, 0) for j in range(1, 6)], *[(0, j) for j in range(1, 6)]), 6),
    "isolated-node": (E((0, 1), (1, 0), (1, 2)), 4),
    "self-loop": (E((0, 0), (0, 1), (1, 2), (2, 2), (2, 0)), 3),
    "multi-edge": (E((0, 1), (0, 1), (1, 2), (2, 1), (2, 1), (2, 1)), 3),
    "empty": (E(), 4),
    "random": random_graph(),
}

TINY_PARAMS = [pytest.param(name, id=name) for name in TINY]

# Assignments of random_graph()'s 12 nodes: part 2 of "3-parts" owns only the isolated nodes 10,
# 11 (a part with no edges); "4-parts-one-empty" has a part that owns nothing at all.
ASSIGNMENTS = {
    "2-parts": torch.tensor([0, 1] * 6),
    "3-parts": torch.tensor([0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 2, 2]),
    "4-parts-one-empty": torch.tensor([0, 0, 1, 1, 3, 3, 0, 1, 3, 0, 1, 3]),
}
