"""The node-classification dataset every loader and generator returns.

``GraphData`` is the one data contract between loaders, the partitioner and training:

=============  ==================  =====================================================
field          shape / dtype       meaning
=============  ==================  =====================================================
edge_index     ``[2, E]`` int64    row 0 source ``j``, row 1 target ``i`` (``j -> i``)
num_nodes      int                 ``N``; every id in ``edge_index`` lies in ``[0, N)``
x              ``[N, F]`` float    node features (or ``None``)
y              ``[N]`` int64       class labels ``0..C-1`` (``C <= N``), ``-1`` for unlabelled
                                   nodes (or ``None``); other tasks (:mod:`distgnn.tasks`):
                                   ``[N]``/``[N, C]`` float targets (NaN unlabelled) or an
                                   ``[N, C]`` 0/1 multi-label column
train_mask     ``[N]`` bool        training nodes (or ``None``); likewise ``val_mask``,
                                   ``test_mask``; a masked node must have a label
edge_attr      ``[E, S]`` float    edge features aligned with ``edge_index`` (or ``None``)
name           str                 a label for logs and manifests
transforms     tuple of str        the feature transforms applied, in order (recorded in a
                                   partition's manifest; :mod:`distgnn.data.transforms`)
=============  ==================  =====================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor


class DataError(ValueError):
    """Raised for malformed graph data: the message names the field (and file) at fault."""


@dataclass
class GraphData:
    edge_index: Tensor
    num_nodes: int
    x: Tensor | None = None
    y: Tensor | None = None
    train_mask: Tensor | None = None
    val_mask: Tensor | None = None
    test_mask: Tensor | None = None
    edge_attr: Tensor | None = None
    name: str = "graph"
    meta: dict = field(default_factory=dict)
    transforms: tuple[str, ...] = ()  # feature transforms applied so far (distgnn.data.transforms)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def num_features(self) -> int:
        return 0 if self.x is None else int(self.x.shape[1])

    @property
    def num_classes(self) -> int:
        if self.y is None or self.y.numel() == 0:
            return 0
        if self.y.dim() == 2:
            return int(self.y.shape[1])
        if self.y.is_floating_point():
            return 1
        return int(self.y.max().item()) + 1

    def validate(self, source: str | None = None) -> None:
        """Check every field against the table above; raise :class:`DataError` naming the field."""
        where = f" in {source}" if source else (f" in {self.name!r}" if self.name else "")
        n = self.num_nodes
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise DataError(f"num_nodes{where} must be a non-negative int, got {n!r}")
        ei = self.edge_index
        if not isinstance(ei, Tensor) or ei.dim() != 2 or ei.shape[0] != 2:
            shape = tuple(ei.shape) if isinstance(ei, Tensor) else type(ei).__name__
            raise DataError(f"edge_index{where} must be a [2, E] tensor, got {shape}")
        if ei.dtype != torch.long:
            raise DataError(f"edge_index{where} must be int64, got {ei.dtype}")
        if ei.numel():
            lo, hi = int(ei.min()), int(ei.max())
            if lo < 0:
                raise DataError(f"edge_index{where} has a negative node id ({lo})")
            if hi >= n:
                raise DataError(
                    f"edge_index{where} refers to node {hi} but num_nodes is {n} (ids must be < num_nodes)"
                )
        if self.x is not None:
            _check_rows(self.x, n, "x", where, dim=2)
            if not self.x.is_floating_point():
                raise DataError(f"x{where} must be a floating-point tensor, got {self.x.dtype}")
            if not bool(torch.isfinite(self.x).all()):
                bad = int((~torch.isfinite(self.x)).any(dim=1).nonzero()[0, 0])
                raise DataError(f"x{where} has NaN or infinite values (first at node {bad})")
        classes = self.y is not None and self.y.dim() == 1 and not self.y.is_floating_point()
        if self.y is not None and not classes:  # regression targets or a multi-label column (distgnn.tasks checks them)
            _check_rows(self.y, n, "y", where, dim=self.y.dim() if self.y.dim() in (1, 2) else 1)
        if classes:
            _check_rows(self.y, n, "y", where, dim=1)
            if self.y.dtype != torch.long:
                raise DataError(f"y{where} must be int64 class ids, got {self.y.dtype}")
            if self.y.numel() and int(self.y.min()) < -1:
                raise DataError(f"y{where} has a label below -1 (use -1 for unlabelled nodes)")
            if self.y.numel() and int(self.y.max()) >= n:
                raise DataError(f"y{where} has class id {int(self.y.max())} but only {n} nodes (class ids must be "
                                "0..C-1 with C at most the number of nodes)")
        for name in ("train_mask", "val_mask", "test_mask"):
            m = getattr(self, name)
            if m is not None:
                _check_rows(m, n, name, where, dim=1)
                if m.dtype != torch.bool:
                    raise DataError(f"{name}{where} must be a bool tensor, got {m.dtype}")
                if classes and bool((m & (self.y < 0)).any()):
                    node = int((m & (self.y < 0)).nonzero()[0, 0])
                    raise DataError(f"y{where} is -1 (no label) at node {node}, which is in {name}; label it or "
                                    "leave it out of the mask")
        if self.edge_attr is not None:
            ea = self.edge_attr
            if ea.dim() != 2 or ea.shape[0] != ei.shape[1]:
                raise DataError(
                    f"edge_attr{where} must be [E, S] with E={ei.shape[1]}, got {tuple(ea.shape)}"
                )
            if ea.is_floating_point() and not bool(torch.isfinite(ea).all()):
                raise DataError(f"edge_attr{where} has NaN or infinite values")

    def with_(self, **changes) -> "GraphData":
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)

    def __repr__(self) -> str:
        parts = [f"num_nodes={self.num_nodes}", f"num_edges={self.num_edges}"]
        if self.x is not None:
            parts.append(f"num_features={self.num_features}")
        if self.y is not None:
            parts.append(f"num_classes={self.num_classes}")
        for name in ("train_mask", "val_mask", "test_mask"):
            m = getattr(self, name)
            if m is not None:
                parts.append(f"{name.split('_')[0]}={int(m.sum())}")
        return f"GraphData({self.name!r}, {', '.join(parts)})"


def _check_rows(t: Tensor, n: int, name: str, where: str, dim: int) -> None:
    if not isinstance(t, Tensor):
        raise DataError(f"{name}{where} must be a tensor, got {type(t).__name__}")
    if t.dim() != dim or t.shape[0] != n:
        want = "[N, F]" if dim == 2 else "[N]"
        raise DataError(f"{name}{where} must be {want} with N={n}, got shape {tuple(t.shape)}")


def simple_edge_index(src: Tensor, dst: Tensor, num_nodes: int, *, undirected: bool = False) -> Tensor:
    """The simple graph of edges ``src -> dst``: self-loops and duplicates removed, sorted.

    Args:
        src, dst: ``[E]`` int64 endpoint ids in ``[0, num_nodes)``.
        num_nodes: ``N``.
        undirected: also add every reverse edge ``dst -> src`` (before removing duplicates).

    Returns:
        ``[2, E']`` int64, sorted by source then target (PyG's ``coalesce`` order).
    """
    if undirected:
        src, dst = torch.cat([src, dst]), torch.cat([dst, src])
    keep = src != dst
    key = torch.unique(src[keep] * num_nodes + dst[keep])  # sorted
    return torch.stack([key // num_nodes, key % num_nodes])
