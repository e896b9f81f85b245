"""Filesystem plumbing: pyarrow filesystems from URIs, checksummed Parquet shards, atomic output.

Every file of a partition is written through a :class:`HashingSink`, so its sha256 is known the
moment it is closed (no second read), and into a temporary directory that :class:`AtomicOutput`
renames into place only when everything, ``manifest.json`` last, is written (crash-safe also when
it replaces an existing partition; see :class:`AtomicOutput`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import uuid
from typing import Iterable

import numpy as np

from .errors import PartitionError
from .format import COMPRESSION, MANIFEST, FileInfo

log = logging.getLogger(__name__)


def open_fs(uri: str | os.PathLike):
    """``(filesystem, path)`` for a local path or any URI pyarrow knows (``s3://b/k``, ``file:///x``)."""
    import pyarrow.fs as pafs

    s = os.fspath(uri)
    target = s if "://" in s else os.path.abspath(s)  # from_uri wants local paths absolute
    try:
        fs, path = pafs.FileSystem.from_uri(target)
    except (ValueError, OSError) as err:
        raise PartitionError(f"{s}: cannot open this location ({_first_line(err)})") from None
    return fs, path.rstrip("/") or "/"


def join(*parts: str) -> str:
    return posixpath.join(*parts)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class HashingSink:
    """A write-only file object that forwards to a pyarrow stream and hashes what passes."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
        self.bytes = 0
        self.closed = False

    def write(self, data) -> int:
        view = memoryview(data)
        self._hash.update(view)
        self._stream.write(view)
        self.bytes += view.nbytes
        return view.nbytes

    def flush(self) -> None:
        self._stream.flush()

    def tell(self) -> int:
        return self.bytes

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
            self.closed = True

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def write_bytes(fs, path: str, data: bytes) -> FileInfo:
    sink = HashingSink(fs.open_output_stream(path))
    try:
        sink.write(data)
    finally:
        sink.close()
    return FileInfo(sink.sha256, sink.bytes, 0)


def sha256_of(fs, path: str, block: int = 8 << 20) -> tuple[str, int]:
    """(sha256 hex, size) of a file, read in blocks."""
    h = hashlib.sha256()
    size = 0
    with fs.open_input_stream(path) as f:
        while True:
            chunk = f.read(block)
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def fixed_list(values: np.ndarray):
    """A ``[R, F]`` numpy array as an Arrow ``fixed_size_list<F>`` array (no copy when contiguous)."""
    import pyarrow as pa

    rows = values.shape[0]
    width = int(np.prod(values.shape[1:])) if values.ndim > 1 else 1
    flat = np.ascontiguousarray(values).reshape(rows * width)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), width)


class ShardWriter:
    """Buffers column chunks and writes them to one Parquet file in row groups of ``row_group_size``.

    ``append`` takes numpy arrays in schema order (``[R]`` or ``[R, F]`` for list columns); the
    file is created on the first flush (or on ``close`` if nothing was appended, so an empty
    shard is still a valid Parquet file with the right schema).
    """

    def __init__(self, fs, path: str, schema, row_group_size: int) -> None:
        self.fs, self.path, self.schema = fs, path, schema
        self.row_group_size = max(1, int(row_group_size))
        self.rows = 0
        self._buffer: list = []
        self._buffered = 0
        self._writer = None
        self._sink: HashingSink | None = None

    def append(self, columns: Iterable[np.ndarray]) -> None:
        import pyarrow as pa

        arrays = []
        for col, fld in zip(columns, self.schema):
            if pa.types.is_fixed_size_list(fld.type):
                arrays.append(fixed_list(col))
            else:
                arrays.append(pa.array(col, type=fld.type))
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        if batch.num_rows == 0:
            return
        self._buffer.append(batch)
        self._buffered += batch.num_rows
        self.rows += batch.num_rows
        if self._buffered >= self.row_group_size:
            self._flush(final=False)

    def _open(self) -> None:
        import pyarrow.parquet as pq

        self._sink = HashingSink(self.fs.open_output_stream(self.path))
        self._writer = pq.ParquetWriter(
            self._sink, self.schema, compression=COMPRESSION, use_dictionary=False,
            write_statistics=True,
        )

    def _flush(self, final: bool) -> None:
        import pyarrow as pa

        if self._writer is None:
            self._open()
        if not self._buffer:
            return
        table = pa.Table.from_batches(self._buffer, schema=self.schema)
        full = table.num_rows if final else (table.num_rows // self.row_group_size) * self.row_group_size
        if full:
            self._writer.write_table(table.slice(0, full), row_group_size=self.row_group_size)
        rest = table.slice(full)
        self._buffer = rest.to_batches() if rest.num_rows else []
        self._buffered = rest.num_rows

    def close(self) -> FileInfo:
        self._flush(final=True)
        self._writer.close()
        self._sink.close()
        return FileInfo(self._sink.sha256, self._sink.bytes, self.rows)

    def abort(self) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
            if self._sink is not None:
                self._sink.close()
        except Exception:  # noqa: BLE001 - best effort while unwinding another error
            pass


def write_table(fs, path: str, schema, columns: list[np.ndarray], row_group_size: int) -> FileInfo:
    """Write one whole table (columns as numpy arrays) in row groups; return its FileInfo."""
    w = ShardWriter(fs, path, schema, row_group_size)
    try:
        n = len(columns[0]) if columns else 0
        for start in range(0, max(n, 1), w.row_group_size):
            w.append([c[start:start + w.row_group_size] for c in columns])
        return w.close()
    except BaseException:
        w.abort()
        raise


class AtomicOutput:
    """A temporary directory beside ``target`` that becomes ``target`` on :meth:`commit`.

    Refuses an existing non-empty ``target`` unless ``overwrite``, and even then one that is not a
    distgnn partition (no readable ``manifest.json``) or that contains one of ``inputs`` (local
    paths the run reads). On any error (or Ctrl-C) inside the ``with`` block the temporary
    directory is deleted, so nothing is left behind.

    **Crash safety.** On a local filesystem an existing ``target`` is replaced by one atomic
    exchange of the two directories (Linux ``renameat2(RENAME_EXCHANGE)``), so at every instant
    ``target`` holds the old or the new partition. Elsewhere (object stores, filesystems without
    the exchange) it takes two renames, ``target -> .NAME.old-PID-*`` then
    ``.NAME.tmp-PID-* -> target``. A run killed on the way leaves ``.NAME.tmp-*`` / ``.NAME.old-*``
    directories beside ``target``; the next :class:`AtomicOutput` for ``target`` puts a partition
    left in ``.NAME.old-*`` back when ``target`` is missing (or incomplete), and removes the
    leftovers of processes that no longer run, logging a warning for each (on a remote filesystem,
    where it cannot tell whether their writer still runs, it only reports them).
    """

    def __init__(self, fs, target: str, overwrite: bool = False, inputs: Iterable[str] = ()) -> None:
        import pyarrow.fs as pafs

        self.fs, self.target, self.overwrite = fs, target.rstrip("/") or "/", overwrite
        self.inputs = [os.fspath(p) for p in inputs]
        self._local = isinstance(fs, pafs.LocalFileSystem)
        parent, name = posixpath.split(self.target)
        if not name:
            raise PartitionError(f"{target}: the output must be a directory below a parent, not a root")
        self.parent, self.name = parent, name
        self.tmp = join(parent, f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}")
        self._committed = False
        self._recover()
        self._check_target()

    # -- what is at the target ------------------------------------------------------------------
    def _is_partition(self, path: str) -> bool:
        """Whether ``path`` holds a readable distgnn ``manifest.json`` (any schema version)."""
        from .format import FORMAT_NAME

        try:
            with self.fs.open_input_stream(join(path, MANIFEST)) as f:
                return json.loads(f.read()).get("format") == FORMAT_NAME
        except (OSError, ValueError, AttributeError):
            return False

    def _check_target(self) -> None:
        import pyarrow.fs as pafs

        info = self.fs.get_file_info(self.target)
        if info.type == pafs.FileType.File:
            raise PartitionError(f"{self.target}: output exists and is a file, not a directory")
        if info.type != pafs.FileType.Directory:
            return
        if not self.fs.get_file_info(pafs.FileSelector(self.target, recursive=False)):
            return  # an empty directory: nothing to lose
        if not self.overwrite:
            raise PartitionError(
                f"{self.target}: output directory exists and is not empty "
                "(pass --overwrite, or overwrite=True, to replace it)"
            )
        if not self._is_partition(self.target):
            raise PartitionError(
                f"{self.target}: refusing to overwrite a directory that is not a distgnn partition (no {MANIFEST}); "
                "remove it yourself or choose another output"
            )
        if self._local:
            here = os.path.realpath(self.target)
            for path in self.inputs:
                real = os.path.realpath(path)
                if real == here or real.startswith(here + os.sep):
                    raise PartitionError(f"refusing to overwrite {self.target}: it contains the input {path} "
                                         "(write the partition elsewhere)")

    # -- leftovers of killed runs ------------------------------------------------------------------
    def _leftovers(self) -> list[tuple[str, str, int | None, float]]:
        """``(path, kind, pid, mtime)`` of every ``.NAME.tmp-*`` / ``.NAME.old-*`` beside the target."""
        import pyarrow.fs as pafs

        try:
            entries = self.fs.get_file_info(pafs.FileSelector(self.parent, recursive=False, allow_not_found=True))
        except OSError:
            return []
        out = []
        for info in entries:
            base = posixpath.basename(info.path)
            for kind in ("tmp", "old"):
                prefix = f".{self.name}.{kind}-"
                if info.type == pafs.FileType.Directory and base.startswith(prefix):
                    head = base[len(prefix):].split("-")
                    pid = int(head[0]) if len(head) == 2 and head[0].isdigit() else None
                    out.append((info.path, kind, pid, info.mtime.timestamp() if info.mtime else 0.0))
        return out

    def _running(self, pid: int | None) -> bool:
        """Whether a leftover's writer may still run (on a remote filesystem: reported as stale, never
        removed, so assume not)."""
        if not self._local:
            return False
        if pid is None:  # written before directory names carried the pid: long gone
            return False
        if pid == os.getpid():
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _recover(self) -> None:
        import pyarrow.fs as pafs

        stale = [(p, kind, mtime) for p, kind, pid, mtime in self._leftovers() if not self._running(pid)]
        olds = sorted((mtime, p) for p, kind, mtime in stale if kind == "old" and self._is_partition(p))
        info = self.fs.get_file_info(self.target)
        missing = info.type == pafs.FileType.NotFound
        incomplete = info.type == pafs.FileType.Directory and not self._is_partition(self.target)
        if olds and (missing or incomplete):
            _, old = olds[-1]
            if incomplete:  # a copy into place (object stores) cut short: the manifest comes last
                self.fs.delete_dir(self.target)
            self._move(old, self.target)
            log.warning("%s: restored the partition a killed run had moved to %s", self.target, old)
            stale = [entry for entry in stale if entry[0] != old]
        for path, kind, _ in stale:
            if not self._local:
                log.warning("%s: %s is left from an interrupted run; remove it once no partitioner writes here",
                            self.target, path)
                continue
            try:
                self.fs.delete_dir(path)
            except OSError as err:
                log.warning("%s: could not remove %s, left by a killed run: %s", self.target, path, _first_line(err))
            else:
                log.warning("%s: removed %s, left by a killed run", self.target, path)

    # -- writing -----------------------------------------------------------------------------------
    def __enter__(self) -> str:
        try:
            self.fs.create_dir(self.parent, recursive=True)
            self.fs.create_dir(self.tmp, recursive=False)
        except OSError as err:
            raise PartitionError(f"{self.target}: cannot create the output directory ({_first_line(err)})") from None
        return self.tmp

    def commit(self) -> None:
        """Put the temporary directory at ``target`` (see the class docstring for how)."""
        import pyarrow.fs as pafs

        self._check_target()  # someone may have written there meanwhile
        if self.fs.get_file_info(self.target).type != pafs.FileType.Directory:
            self._move(self.tmp, self.target)
            self._committed = True
            return
        if self._local and _exchange(self.tmp, self.target):
            self._committed = True  # target holds the new partition, tmp the old one
            self.fs.delete_dir(self.tmp)
            return
        old = join(self.parent, f".{self.name}.old-{os.getpid()}-{uuid.uuid4().hex[:12]}")
        self._move(self.target, old)
        self._move(self.tmp, self.target)
        self._committed = True
        self.fs.delete_dir(old)

    def _move(self, src: str, dst: str) -> None:
        if self._local:
            os.replace(src, dst)
            return
        try:
            self.fs.move(src, dst)
        except (OSError, NotImplementedError):
            _copy_tree(self.fs, src, dst)  # object stores: copy, manifest last, then delete
            self.fs.delete_dir(src)

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._committed:
            try:
                self.fs.delete_dir(self.tmp)
            except OSError as err:  # pragma: no cover - nothing more we can do
                log.warning("could not remove the temporary directory %s: %s", self.tmp, err)


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _exchange(a: str, b: str) -> bool:
    """Swap two local directories atomically (Linux ``renameat2`` with ``RENAME_EXCHANGE``).

    Returns ``False`` where the system or filesystem cannot (then nothing happened).
    """
    import ctypes
    import errno

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), a)


def _copy_tree(fs, src: str, dst: str) -> None:
    import pyarrow.fs as pafs

    files = [i for i in fs.get_file_info(pafs.FileSelector(src, recursive=True)) if i.type == pafs.FileType.File]
    files.sort(key=lambda i: posixpath.basename(i.path) == MANIFEST)
    for info in files:
        rel = posixpath.relpath(info.path, src)
        fs.create_dir(posixpath.dirname(join(dst, rel)), recursive=True)
        fs.copy_file(info.path, join(dst, rel))
