"""METIS k-way: the symmetric CSR input built with numpy, and the call itself.

pymetis (2025.2) always passes ``ncon = 1`` to METIS: a vertex-weight array holding several
constraints is silently read as one constraint over its first ``N`` entries. Multi-constraint
balance (nodes + training nodes, nodes + edges) therefore calls ``METIS_PartGraphKway`` directly
through ctypes, from the METIS library that pymetis's own extension module exports. With one
constraint the ordinary ``pymetis.part_graph(..., recursive=False)`` call is used; both give the
same partition for the same graph, options and seed.
"""
from __future__ import annotations

import ctypes
import functools
import logging
from typing import Iterable

import numpy as np

from .errors import PartitionError

log = logging.getLogger(__name__)

_METIS_NOPTIONS = 40
_METIS_OK = 1


def symmetric_csr(chunks: Iterable[tuple[np.ndarray, np.ndarray]], num_nodes: int, num_edges: int):
    """``(xadj [N+1], adjncy [M])`` int64 of the undirected simple graph of the edge list.

    Every edge ``u -> v`` with ``u != v`` becomes the pair ``{u, v}``; duplicate pairs and
    self-loops are dropped; each vertex's neighbours are sorted ascending. This is the graph METIS
    partitions (and what ``metis_objective`` counts).
    """
    n = int(num_nodes)
    if n and n > (np.iinfo(np.int64).max // n):
        raise PartitionError(f"metis: {n} nodes is too many for the int64 pair keys (use --method stream)")
    keys = np.empty(2 * int(num_edges), dtype=np.int64)  # (u * N + v) for both directions
    pos = 0
    for src, dst in chunks:
        keep = src != dst
        s, d = src[keep], dst[keep]
        m = len(s)
        np.multiply(s, n, out=keys[pos:pos + m])
        keys[pos:pos + m] += d
        np.multiply(d, n, out=keys[pos + m:pos + 2 * m])
        keys[pos + m:pos + 2 * m] += s
        pos += 2 * m
    keys = keys[:pos]
    keys.sort()
    if pos:
        first = np.empty(pos, dtype=bool)
        first[0] = True
        np.not_equal(keys[1:], keys[:-1], out=first[1:])
        keys = keys[first]
        del first
    xadj = np.searchsorted(keys, np.arange(n + 1, dtype=np.int64) * n).astype(np.int64, copy=False)
    np.remainder(keys, n if n else 1, out=keys)  # keys become the neighbour ids
    return xadj, keys


@functools.lru_cache(maxsize=1)
def _metis_lib():
    """The ctypes handle on METIS inside pymetis's extension module (None if it is not exported)."""
    import pymetis
    import pymetis._internal as internal

    try:
        lib = ctypes.CDLL(internal.__file__)
        fn = lib.METIS_PartGraphKway
    except (OSError, AttributeError):
        return None
    if pymetis.zero_copy_dtype() != np.dtype(np.int64):  # idx_t must be int64 for the arrays below
        return None
    p = ctypes.POINTER(ctypes.c_int64)
    fn.argtypes = [p, p, p, p, p, p, p, p, ctypes.c_void_p, ctypes.c_void_p, p, p, p]
    fn.restype = ctypes.c_int
    lib.METIS_SetDefaultOptions.argtypes = [p]
    return lib


def part_kway(
    xadj: np.ndarray,
    adjncy: np.ndarray,
    num_parts: int,
    vweights: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[int, np.ndarray]:
    """METIS k-way on a CSR graph: ``(edge cut, part [N] int32)``.

    ``vweights`` is ``None`` (balance node counts) or ``[N, C]`` int64 non-negative constraints,
    balanced together (multi-constraint) when ``C > 1``.
    """
    import pymetis

    n = len(xadj) - 1
    if num_parts == 1 or n == 0:
        return 0, np.zeros(n, dtype=np.int32)
    ncon = 1 if vweights is None else int(vweights.shape[1])
    if ncon == 1:
        opts = pymetis.Options()
        opts.seed = int(seed)
        w = None if vweights is None else np.ascontiguousarray(vweights[:, 0], dtype=np.int64)
        res = pymetis.part_graph(
            int(num_parts), pymetis.CSRAdjacency(xadj, adjncy), vweights=w, recursive=False, options=opts
        )
        return int(res.edge_cuts), np.asarray(res.vertex_part, dtype=np.int32)
    lib = _metis_lib()
    if lib is None:
        raise PartitionError(
            "metis: multi-constraint balance needs the METIS library inside pymetis, which this "
            "pymetis does not export; use --balance none"
        )
    p = ctypes.POINTER(ctypes.c_int64)
    options = np.full(_METIS_NOPTIONS, -1, dtype=np.int64)
    lib.METIS_SetDefaultOptions(options.ctypes.data_as(p))
    options[int(pymetis.OptionKey.SEED)] = int(seed)
    options[int(pymetis.OptionKey.NUMBERING)] = 0
    xadj = np.ascontiguousarray(xadj, dtype=np.int64)
    adjncy = np.ascontiguousarray(adjncy, dtype=np.int64)
    vw = np.ascontiguousarray(vweights, dtype=np.int64)  # [N, C] row-major = METIS's layout
    part = np.zeros(n, dtype=np.int64)
    nvtxs, nc, nparts, objval = (ctypes.c_int64(v) for v in (n, ncon, num_parts, 0))
    status = lib.METIS_PartGraphKway(
        ctypes.byref(nvtxs), ctypes.byref(nc), xadj.ctypes.data_as(p), adjncy.ctypes.data_as(p),
        vw.ctypes.data_as(p), None, None, ctypes.byref(nparts), None, None,
        options.ctypes.data_as(p), ctypes.byref(objval), part.ctypes.data_as(p),
    )
    if status != _METIS_OK:
        raise PartitionError(f"metis: METIS_PartGraphKway failed with status {status}")
    return int(objval.value), part.astype(np.int32)
