"""Planetoid citation graphs (Cora, CiteSeer, PubMed) from the original ``ind.*`` files.

The files (Yang et al. 2016, https://github.com/kimiyoung/planetoid) are Python-2 pickles::

    ind.{name}.x           CSR  [len(y), F]   features of the labelled training nodes
    ind.{name}.y           dense [len(y), C]  their one-hot labels
    ind.{name}.allx        CSR  [M, F]        features of every non-test node (training first)
    ind.{name}.ally        dense [M, C]       their one-hot labels
    ind.{name}.tx          CSR  [T, F]        features of the test nodes, in ``test.index`` order
    ind.{name}.ty          dense [T, C]       their one-hot labels
    ind.{name}.graph       dict {node: [neighbours]}
    ind.{name}.test.index  text, one node id per line (T lines)

They are read with a restricted unpickler (:class:`_PlanetoidUnpickler`) that admits only numpy
arrays, SciPy CSR matrices (turned into a local stub, so SciPy is not needed) and builtin
containers: a tampered file cannot run code. Nor can it make the loader allocate absurd amounts of
memory: a CSR matrix must be consistent (``indptr``, ``indices`` and ``data`` agree with its shape)
and at most ``2**31`` cells, and test ids must lie within the graph, all checked before the dense
arrays are built.
"""
from __future__ import annotations

import collections
import importlib
import logging
import os
import pickle
import warnings
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .dataset import DataError, GraphData, simple_edge_index

log = logging.getLogger(__name__)

_PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")
_NUM_VAL = 500
_MAX_DENSE_CELLS = 1 << 31  # 8 GiB of float32; PubMed, the largest Planetoid matrix, has 1e7 cells


def default_data_dir() -> Path:
    """Where datasets live: ``$DISTGNN_DATA`` when set, else ``shared/datasets`` beside the repository."""
    env = os.environ.get("DISTGNN_DATA")
    if env:
        return Path(env)
    # .../<repo>/distgnn/data/planetoid.py -> parents[3] is the folder holding the repository.
    return Path(__file__).resolve().parents[3] / "shared" / "datasets"


class _CSRStub:
    """Receives the pickled state of a ``scipy.sparse`` CSR matrix (no SciPy needed)."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    _shape: tuple[int, int]

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def check(self, source: str) -> None:
        """Raise :class:`DataError` unless this is a consistent CSR matrix of at most ``2**31`` cells."""
        state = self.__dict__
        shape = state.get("_shape")
        if (not isinstance(shape, tuple) or len(shape) != 2
                or not all(isinstance(v, (int, np.integer)) and v >= 0 for v in shape)):
            raise DataError(f"{source}: a CSR matrix without a valid 2-D shape ({shape!r})")
        rows, cols = int(shape[0]), int(shape[1])
        if rows * cols > _MAX_DENSE_CELLS:
            raise DataError(f"{source}: declares a {rows} x {cols} matrix ({rows * cols:.3g} cells, more than the "
                            f"{_MAX_DENSE_CELLS:.3g} any Planetoid dataset needs); the file is corrupt")
        arrays = [state.get(k) for k in ("data", "indices", "indptr")]
        if not all(isinstance(a, np.ndarray) and a.ndim == 1 for a in arrays):
            raise DataError(f"{source}: a CSR matrix needs 1-D data, indices and indptr arrays")
        data, indices, indptr = arrays
        if (len(indptr) != rows + 1 or not np.issubdtype(indptr.dtype, np.integer)
                or not np.issubdtype(indices.dtype, np.integer) or len(data) != len(indices)
                or (rows and (indptr[0] != 0 or indptr[-1] != len(indices) or (np.diff(indptr) < 0).any()))):
            raise DataError(f"{source}: inconsistent CSR matrix (indptr of {len(indptr)} entries for {rows} rows, "
                            f"{len(indices)} indices, {len(data)} values)")
        if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= cols):
            raise DataError(f"{source}: a column index outside [0, {cols}) in a {rows} x {cols} CSR matrix")

    def to_dense(self) -> np.ndarray:
        """The ``[rows, cols]`` float32 dense matrix (duplicate entries summed, as SciPy does)."""
        rows, cols = self._shape
        out = np.zeros((rows, cols), dtype=np.float32)
        row_of = np.repeat(np.arange(rows), np.diff(self.indptr))
        np.add.at(out, (row_of, self.indices), self.data.astype(np.float32))
        return out


def _numpy_reconstruct() -> Any:
    name = "numpy._core.multiarray" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core.multiarray"
    return importlib.import_module(name)._reconstruct


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("collections", "defaultdict"): lambda: collections.defaultdict,
    ("__builtin__", "list"): lambda: list,
    ("builtins", "list"): lambda: list,
    ("scipy.sparse.csr", "csr_matrix"): lambda: _CSRStub,
    ("scipy.sparse._csr", "csr_matrix"): lambda: _CSRStub,
}


class _PlanetoidUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals the Planetoid files need."""

    def __init__(self, file, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        factory = _ALLOWED.get((module, name))
        if factory is None:
            raise DataError(
                f"{self.source}: refusing to unpickle '{module}.{name}' "
                "(only numpy/scipy-sparse/builtin containers are allowed)"
            )
        return factory()


def _read_part(path: Path) -> Any:
    if not path.is_file():
        raise DataError(
            f"Planetoid file {path} is missing: put the ind.* files in {path.parent} or set "
            "DISTGNN_DATA to a folder holding planetoid/ind.<name>.*"
        )
    if path.name.endswith(".test.index"):
        try:
            with warnings.catch_warnings():  # an empty file is reported by the caller, as a DataError
                warnings.filterwarnings("ignore", message="loadtxt: input contained no data")
                return np.loadtxt(path, dtype=np.int64, ndmin=1)
        except ValueError as err:
            raise DataError(f"{path.name}: expected one integer node id per line ({err})") from None
    with open(path, "rb") as f:
        try:
            return _PlanetoidUnpickler(f, path.name).load()
        except DataError:
            raise
        except Exception as err:  # truncated or corrupted pickle: many exception types
            raise DataError(f"{path.name}: not a readable Planetoid pickle ({type(err).__name__}: {err})") from None


def _dense(obj: Any, source: str) -> np.ndarray:
    if isinstance(obj, _CSRStub):
        obj.check(source)
        return obj.to_dense()
    if isinstance(obj, np.ndarray) and obj.ndim == 2:
        return obj.astype(np.float32)
    raise DataError(f"{source}: expected a 2-D matrix, got {type(obj).__name__}")


def _adjacency(graph: Any, source: str) -> tuple[np.ndarray, np.ndarray]:
    """``{node: [neighbours]}`` -> ``(src, dst)`` int64 arrays, one entry per listed neighbour."""
    if not isinstance(graph, dict):
        raise DataError(f"{source}: expected a dict of adjacency lists, got {type(graph).__name__}")
    try:
        lengths = np.fromiter((len(v) for v in graph.values()), dtype=np.int64, count=len(graph))
        src = np.repeat(np.fromiter(graph.keys(), dtype=np.int64, count=len(graph)), lengths)
        dst = np.fromiter(chain.from_iterable(graph.values()), dtype=np.int64, count=int(lengths.sum()))
    except (TypeError, ValueError, OverflowError) as err:
        raise DataError(f"{source}: adjacency lists must map integer ids to lists of integer ids ({err})") from None
    return src, dst


def _edge_index(src: np.ndarray, dst: np.ndarray, num_nodes: int, source: str) -> Tensor:
    """Undirected ``[2, E]`` int64 (both directions, no loops/duplicates) from :func:`_adjacency`."""
    ids = np.concatenate([src, dst])
    if ids.size and (ids.min() < 0 or ids.max() >= num_nodes):
        raise DataError(f"{source}: node id {int(ids.max())} out of range for {num_nodes} nodes")
    return simple_edge_index(torch.from_numpy(src), torch.from_numpy(dst), num_nodes, undirected=True)


def _one_hot_to_labels(onehot: np.ndarray) -> np.ndarray:
    """``[N, C]`` one-hot -> ``[N]`` int64 class ids, ``-1`` for all-zero rows."""
    labels = onehot.argmax(axis=1).astype(np.int64)
    labels[~onehot.any(axis=1)] = -1
    return labels


def load_planetoid(
    name: str = "cora", root: str | os.PathLike | None = None, normalize_features: bool = False
) -> GraphData:
    """Load a Planetoid dataset with the standard split, exactly as PyG's ``Planetoid`` does.

    Args:
        name: ``"cora"``, ``"citeseer"`` or ``"pubmed"`` (the ``{name}`` in ``ind.{name}.*``).
        root: folder holding the ``ind.*`` files; default ``default_data_dir() / "planetoid"``.
        normalize_features: row-normalise the features to sum 1 (Kipf & Welling's
            preprocessing); by default they stay raw (0/1 for Cora and CiteSeer, TF-IDF for PubMed).

    Returns:
        :class:`GraphData` with ``x`` ``[N, F]`` float32, ``y`` ``[N]`` int64 (``-1`` for the
        CiteSeer nodes without a label), an undirected ``edge_index`` ``[2, E]`` (both directions,
        no self-loops or duplicates) and the masks: train = the first ``len(y)`` nodes, val = the
        next 500, test = the nodes of ``test.index``. Cora: N=2708, E=10556, F=1433, C=7, 140/500/1000.
    """
    folder = Path(root) if root is not None else default_data_dir() / "planetoid"
    parts = {p: _read_part(folder / f"ind.{name}.{p}") for p in _PARTS}
    allx, tx = _dense(parts["allx"], f"ind.{name}.allx"), _dense(parts["tx"], f"ind.{name}.tx")
    ally, ty = _dense(parts["ally"], f"ind.{name}.ally"), _dense(parts["ty"], f"ind.{name}.ty")
    num_train = len(parts["y"])
    test_index = parts["test.index"]
    src, dst = _adjacency(parts["graph"], f"ind.{name}.graph")
    if len(test_index) == 0:
        raise DataError(f"ind.{name}.test.index: no test node ids")
    sorted_test = np.sort(test_index)
    lo, hi = int(sorted_test[0]), int(sorted_test[-1])
    last = max(int(src.max()) if src.size else -1, int(dst.max()) if dst.size else -1, lo + len(tx) - 1)
    if hi > last:  # before the [hi - lo + 1, F] test matrix is allocated
        raise DataError(f"ind.{name}.test.index: test node id {hi} is beyond the graph's last node {last}; "
                        "the file is corrupt")
    if lo != allx.shape[0] or len(test_index) != len(tx) or len(np.unique(test_index)) != len(test_index):
        raise DataError(
            f"ind.{name}.test.index: expected {len(tx)} distinct ids from {allx.shape[0]} on "
            f"(one per row of tx), got {len(test_index)} ids in [{lo}, {hi}]; unsupported layout"
        )
    # Test ids not in test.index (CiteSeer's isolated nodes) get zero features and no label.
    tx_ext = np.zeros((hi - lo + 1, tx.shape[1]), dtype=np.float32)
    ty_ext = np.zeros((hi - lo + 1, ty.shape[1]), dtype=np.float32)
    tx_ext[sorted_test - lo], ty_ext[sorted_test - lo] = tx, ty
    x = np.concatenate([allx, tx_ext])
    labels = _one_hot_to_labels(np.concatenate([ally, ty_ext]))
    x[test_index], labels[test_index] = x[sorted_test], labels[sorted_test]
    n = x.shape[0]
    if num_train + _NUM_VAL > lo:
        raise DataError(f"ind.{name}.y: {num_train} training + {_NUM_VAL} val nodes overlap the test ids")

    x_t = torch.from_numpy(x)
    if normalize_features:
        x_t = x_t / x_t.sum(dim=1, keepdim=True).clamp_min(torch.finfo(x_t.dtype).tiny)
    masks = {key: torch.zeros(n, dtype=torch.bool) for key in ("train_mask", "val_mask", "test_mask")}
    masks["train_mask"][:num_train] = True
    masks["val_mask"][num_train : num_train + _NUM_VAL] = True
    masks["test_mask"][torch.from_numpy(test_index)] = True
    data = GraphData(
        edge_index=_edge_index(src, dst, n, f"ind.{name}.graph"),
        num_nodes=n,
        x=x_t,
        y=torch.from_numpy(labels),
        name=name,
        meta={"source": str(folder)},
        **masks,
    )
    log.info("loaded %r from %s", data, folder)
    return data
