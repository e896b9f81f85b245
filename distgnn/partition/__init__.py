"""Halo-aware graph partitioning into versioned Parquet shards.

``python -m distgnn.partition INPUT --parts K --out DIR`` or, from Python::

    from distgnn.partition import partition, load_part, verify
    manifest = partition(data, num_parts=4, out="cora-4", method="metis")
    part = load_part("cora-4", 0)          # tensors for worker 0
    verify("cora-4")                        # raises VerifyError if anything is off

The on-disk format is documented in :mod:`distgnn.partition.format`; the methods in
:mod:`distgnn.partition.methods`.
"""
from .errors import PartitionError, VerifyError
from .format import SCHEMA_VERSION, FieldSpec, FileInfo, Manifest, PartInfo
from .methods import (
    Assignment, MetisPartitioner, Partitioner, RandomPartitioner, RangePartitioner, StreamPartitioner, get_method,
)
from .pipeline import partition
from .reader import Part, load_manifest, load_nodes_map, load_part, reassemble
from .sources import EdgeChunk, EdgeSource, GraphInput, ParquetEdges, graph_input, parquet_input
from .verify import VerifyReport, verify

__all__ = [
    "partition", "load_part", "load_manifest", "load_nodes_map", "reassemble", "verify",
    "Part", "Manifest", "PartInfo", "FieldSpec", "FileInfo", "SCHEMA_VERSION", "VerifyReport",
    "PartitionError", "VerifyError",
    "Partitioner", "Assignment", "MetisPartitioner", "RandomPartitioner", "RangePartitioner",
    "StreamPartitioner", "get_method",
    "GraphInput", "EdgeSource", "EdgeChunk", "ParquetEdges", "graph_input", "parquet_input",
]
