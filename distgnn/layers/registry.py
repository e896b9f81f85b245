"""The registry of layers: what the conformance suite runs and what the docs list.

Each entry names a layer class, the modes it supports and whether it is node-level (its outputs
are per node, so partitioned == whole applies). Adding a layer = one entry here plus its dense
reference in ``tests/layers/references.py``.
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


REGISTRY: dict[str, LayerEntry] = {}


def register(cls: type[nn.Module], *, node_level: bool = True) -> type[nn.Module]:
    """Add a layer class (with a ``MODES`` attribute) to :data:`REGISTRY`."""
    if cls.__name__ in REGISTRY:
        raise ValueError(f"{cls.__name__} is registered twice")
    REGISTRY[cls.__name__] = LayerEntry(cls.__name__, cls, tuple(cls.MODES), node_level)
    return cls
