"""Neighbour sampling for sampled mini-batch training (contract 3, sampled mode).

Single process: :class:`Topology`, :func:`sample_neighbors`, :func:`sample_subgraph`,
:class:`NeighborSampler`, returning a :class:`SampledSubgraph` (seeds first; an ordinary graph
every layer runs on). Across processes (``torch.distributed``, one process per part, parts owning
contiguous id ranges): :class:`DistributedSampleFn` (sampling equal to the single-process result
sample for sample) and :class:`FeatureFetcher` (rows of sampled nodes, with a cache of remote rows);
:class:`EdgeFeatureFetcher` (rows of sampled edges, from the part storing them).

Importing this package loads neither Ray nor Arrow.
"""
from .distributed import (DistributedSampleFn, EdgeFeatureFetcher, FeatureFetcher, access_counts, in_degree_hotness,
                          owner_of)
from .neighbor import (
    IdMap,
    NeighborSampler,
    SampledSubgraph,
    SampleFn,
    Topology,
    check_fanouts,
    sample_neighbors,
    sample_subgraph,
)

__all__ = [
    "DistributedSampleFn",
    "FeatureFetcher",
    "EdgeFeatureFetcher",
    "access_counts",
    "in_degree_hotness",
    "owner_of",
    "IdMap",
    "NeighborSampler",
    "SampleFn",
    "SampledSubgraph",
    "Topology",
    "check_fanouts",
    "sample_neighbors",
    "sample_subgraph",
]
