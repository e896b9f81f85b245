"""``python -m distgnn.predict``: exact distributed inference from a checkpoint, exported to Parquet.

Every node's prediction (class and probabilities, multi-label probabilities, or regression values)
and optionally one layer's embedding, keyed by the ORIGINAL node id, computed layer by layer over
the partition with one halo exchange per layer (equal to whole-graph inference), in chunks of
destination nodes so a worker's memory is bounded by its part plus one layer's activations.

* :func:`predict` (:mod:`.api`): the Python API, on Ray workers (the launch runtime);
* :func:`layerwise_forward` / :class:`LayerwiseRun` (:mod:`.inference`): the layer-wise evaluator
  on any graph, whole or partitioned (also used by the launch driver for its metrics);
* :mod:`.writer`: the output format (``OUT/part-*.parquet`` and ``OUT/_manifest.json``).
"""
from __future__ import annotations

from .api import DEFAULT_BATCH_NODES, PredictError, PredictResult, predict, resolve_checkpoint
from .inference import ChunkGraph, LayerwiseRun, layerwise_forward

__all__ = ["DEFAULT_BATCH_NODES", "ChunkGraph", "LayerwiseRun", "PredictError", "PredictResult", "layerwise_forward",
           "predict", "resolve_checkpoint"]
