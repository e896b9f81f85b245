"""The prediction output: ``OUT/part-KKKKK.parquet`` per worker and ``OUT/_manifest.json``.

::

    OUT/
      _manifest.json       written last (see below); the leading "_" makes Arrow and Spark
                           skip it: pyarrow.parquet.read_table(OUT) reads every part (DuckDB,
                           Polars: OUT/*.parquet)
      part-00000.parquet   the nodes worker 0 owns, in new-id order
      part-00001.parquet   ...

Columns (Parquet, zstd; ``C`` outputs, ``D`` embedding width):

==================  =============================  ==============================================
column              type                           when
==================  =============================  ==============================================
id                  int64                          always: the ORIGINAL node id (nodes-map.parquet)
class               int64                          node-classification: ``argmax`` of the logits
probabilities       fixed_size_list<float32>[C]    node-classification (softmax), multi-label
                                                   (sigmoid of each logit)
predicted           fixed_size_list<bool>[C]       multi-label: probability > 0.5 (logit > 0)
value               float32, or list<float32>[C]   node-regression: the model's output (one target:
                                                   a scalar column)
output              fixed_size_list<float32>[C]    any other task: the raw output (link-prediction:
                                                   the node embedding the decoder scores, ``C = D``)
embedding           fixed_size_list<float32>[D]    with ``--embeddings LAYER``: that step's activation
==================  =============================  ==============================================

``_manifest.json``: ``{"format": "distgnn-predictions", "version": 1, "model", "task",
"checkpoint": {"path", "sha256" (of the file), "epoch"}, "partition": {"path", "sha256" (of its
manifest)}, "num_nodes", "columns": [{"name", "type", "shape"}], "embeddings": step or null,
"layerwise": bool, "batch_nodes", "metrics": {"val_acc", ...} (where labels and masks exist),
"files": {"part-00000.parquet": {"sha256", "bytes", "rows"}}, "created_by"}``.

Written into ``.OUT.tmp-*`` beside ``OUT`` and renamed into place by :class:`PredictionOutput`
(:class:`~distgnn.partition.storage.AtomicOutput`), manifest last: a directory without
``_manifest.json`` is never a finished output; an existing ``OUT`` is replaced atomically only with
``overwrite`` and only when it is a prediction output.
"""
from __future__ import annotations

import json

import numpy as np
import torch
from torch import Tensor

from ..partition.errors import PartitionError
from ..partition.format import FileInfo
from ..partition.storage import AtomicOutput, join, open_fs

__all__ = ["FORMAT", "PredictionOutput", "columns_for", "prediction_columns", "write_part", "write_manifest",
           "part_name"]

FORMAT = "distgnn-predictions"
VERSION = 1
MANIFEST = "_manifest.json"  # "_": Arrow and Spark skip it when reading the directory OUT


def part_name(rank: int) -> str:
    return f"part-{rank:05d}.parquet"


def columns_for(task_name: str, out_channels: int, embedding_dim: int | None) -> list[dict]:
    """``[{"name", "type", "shape"}]``: the output columns for a task (module docstring)."""
    cols = [{"name": "id", "type": "int64", "shape": []}]
    c = [out_channels]
    if task_name == "node-classification":
        cols += [{"name": "class", "type": "int64", "shape": []},
                 {"name": "probabilities", "type": "float32", "shape": c}]
    elif task_name == "multi-label":
        cols += [{"name": "probabilities", "type": "float32", "shape": c},
                 {"name": "predicted", "type": "bool", "shape": c}]
    elif task_name == "node-regression":
        cols += [{"name": "value", "type": "float32", "shape": [] if out_channels == 1 else c}]
    else:
        cols += [{"name": "output", "type": "float32", "shape": c}]
    if embedding_dim is not None:
        cols.append({"name": "embedding", "type": "float32", "shape": [embedding_dim]})
    return cols


def prediction_columns(task_name: str, out: Tensor, ids: np.ndarray, embedding: Tensor | None) -> dict:
    """``{column: numpy array}`` in :func:`columns_for` order from the model's output ``[n, C]``."""
    out = out.detach().to("cpu", torch.float32)
    cols = {"id": ids.astype(np.int64, copy=False)}
    if task_name == "node-classification":
        cols["class"] = out.argmax(-1).numpy().astype(np.int64)
        cols["probabilities"] = torch.softmax(out, -1).numpy()
    elif task_name == "multi-label":
        cols["probabilities"] = torch.sigmoid(out).numpy()
        cols["predicted"] = (out > 0).numpy()
    elif task_name == "node-regression":
        v = out.reshape(out.shape[0], -1)
        cols["value"] = (v[:, 0] if v.shape[1] == 1 else v).numpy()
    else:
        cols["output"] = out.reshape(out.shape[0], -1).numpy()
    if embedding is not None:
        cols["embedding"] = embedding.detach().to("cpu", torch.float32).reshape(embedding.shape[0], -1).numpy()
    return cols


def _schema(columns: list[dict]):
    import pyarrow as pa

    types = {"int64": pa.int64(), "float32": pa.float32(), "bool": pa.bool_()}
    fields = []
    for c in columns:
        t = types[c["type"]]
        fields.append(pa.field(c["name"], pa.list_(t, c["shape"][0]) if c["shape"] else t, nullable=False))
    return pa.schema(fields)


def write_part(directory: str, rank: int, columns: list[dict], values: dict, row_group_size: int = 1 << 20) -> FileInfo:
    """Write ``values`` (see :func:`prediction_columns`) as ``directory/part-RANK.parquet``;
    returns its sha256, size and rows. ``directory``: local path or pyarrow URI."""
    from ..partition.storage import write_table

    fs, root = open_fs(directory)
    schema = _schema(columns)
    arrays = [values[c["name"]] for c in columns]
    return write_table(fs, join(root, part_name(rank)), schema, arrays, row_group_size)


def write_manifest(directory: str, manifest: dict) -> None:
    """Write ``_manifest.json`` (last: it marks the output complete)."""
    from ..partition.storage import write_bytes

    fs, root = open_fs(directory)
    write_bytes(fs, join(root, MANIFEST), (json.dumps(manifest, indent=2) + "\n").encode())


class PredictionOutput(AtomicOutput):
    """:class:`~distgnn.partition.storage.AtomicOutput` for a prediction directory: refuses an
    existing non-empty ``OUT`` unless ``overwrite``, and then one that is not a prediction output
    (no ``_manifest.json`` of format ``distgnn-predictions``) or holds an input; replaces it
    atomically (see the base class)."""

    def _is_partition(self, path: str) -> bool:  # "a finished output of this kind"
        try:
            with self.fs.open_input_stream(join(path, MANIFEST)) as f:
                return json.loads(f.read()).get("format") == FORMAT
        except (OSError, ValueError, AttributeError):
            return False

    def _check_target(self) -> None:
        import pyarrow.fs as pafs

        info = self.fs.get_file_info(self.target)
        if info.type == pafs.FileType.File:
            raise PartitionError(f"--out {self.target}: exists and is a file, not a directory")
        if info.type != pafs.FileType.Directory:
            return
        if not self.fs.get_file_info(pafs.FileSelector(self.target, recursive=False)):
            return
        if not self.overwrite:
            raise PartitionError(f"--out {self.target}: exists and is not empty (pass --overwrite, or overwrite=True, "
                                 "to replace it)")
        if not self._is_partition(self.target):
            raise PartitionError(f"--out {self.target}: refusing to overwrite a directory that is not a distgnn "
                                 f"prediction output (no {MANIFEST} of format {FORMAT}); remove it yourself or "
                                 "choose another --out")
        import os

        if self._local:
            here = os.path.realpath(self.target)
            for path in self.inputs:
                real = os.path.realpath(path)
                if real == here or real.startswith(here + os.sep):
                    raise PartitionError(f"--out {self.target}: contains the input {path}; write elsewhere")
