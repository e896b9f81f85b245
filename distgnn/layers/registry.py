"""The registry of layers: what the conformance suite runs and what the docs list.

Each entry names a layer class, the modes it supports, its kind and whether it is node-level (its
outputs are per node, so partitioned == whole applies). Kinds:

================  ==================================================================================
``"conv"``        a convolution ``layer(x [N, F], graph, ...)``: the whole conformance suite
                  (``tests/layers/test_conformance.py``) runs it; its dense reference lives in
                  ``tests/layers/references*.py``
``"pooling"``     graph-level pooling (outputs per graph, not per node): its own tests, including a
                  partitioned check of its global sums
``"aggregation"`` a reduction over groups of rows (usable as a ``MessagePassing`` ``aggregate``)
``"edge"``        an edge network ``[E, S] -> [E, *]`` (no graph input)
``"equivariant"`` an E(3)-equivariant layer on irreps features ``[N, P, (L+1)^2, F]``
================  ==================================================================================

"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class LayerEntry:
    name: str
    cls: type[nn.Module]
    modes: tuple[str, ...]
    node_level: bool = True
    kind: str = "conv"


REGISTRY: dict[str, LayerEntry] = {}


KINDS = ("conv", "pooling", "aggregation", "edge", "equivariant")


def register(cls: type[nn.Module], *, node_level: bool = True, kind: str = "conv") -> type[nn.Module]:
    """Add a layer class (with a ``MODES`` attribute) to :data:`REGISTRY`."""
    if cls.__name__ in REGISTRY:
        raise ValueError(f"{cls.__name__} is registered twice")
    if kind not in KINDS:
        raise ValueError(f"register: kind must be one of {KINDS}, got {kind!r}")
    REGISTRY[cls.__name__] = LayerEntry(cls.__name__, cls, tuple(cls.MODES), node_level, kind)
    return cls


def convolutions() -> dict[str, LayerEntry]:
    """The registered layers of kind ``"conv"`` (what the conformance suite runs)."""
    return {name: entry for name, entry in REGISTRY.items() if entry.kind == "conv"}
