"""Checkpoint files: the version-2 format with a sha256 header, atomic writes, fallback to the
newest good file, and clean-up of what a killed driver left.

Format (version 2): one ASCII header line
``distgnn-checkpoint 2 sha256=<hex of the payload> bytes=<payload size>``, then the payload,
``torch.save`` of ``{"format", "version", **state}``. Version-1 files (a bare ``torch.save``
zip, no checksum) are still read. Importing this module does not import torch.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile

from .errors import LaunchError

log = logging.getLogger(__name__)

__all__ = ["save_checkpoint", "load_checkpoint", "find_checkpoint", "latest_checkpoint",
           "checkpoint_files", "remove_temporary_checkpoints", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION"]

CHECKPOINT_FORMAT = "distgnn-checkpoint"
CHECKPOINT_VERSION = 2
_KEEP = 2  # checkpoints kept on disk
_MAGIC = b"distgnn-checkpoint "
_TMP_PREFIX = ".tmp-checkpoint-"


def _ckpt_name(epoch: int) -> str:
    return f"checkpoint-{epoch:06d}.pt"


def checkpoint_files(directory: str) -> list[str]:
    """The checkpoint files in ``directory``, newest (highest epoch) first."""
    if not os.path.isdir(directory):
        return []
    names = sorted((n for n in os.listdir(directory) if n.startswith("checkpoint-") and n.endswith(".pt")), reverse=True)
    return [os.path.join(directory, n) for n in names]


class _Damaged(Exception):
    """A checkpoint file that cannot be used; the message says why, in a few words."""


def _read_checkpoint(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise _Damaged(f"unreadable ({err.strerror or err})") from None
    if not data:
        raise _Damaged("empty (0 bytes)")
    if data.startswith(_MAGIC):
        end = data.find(b"\n", 0, 256)
        try:
            if end < 0:
                raise ValueError("no end of header")
            _, version, digest, size = data[:end].decode("ascii").split(" ")
            version, digest, size = int(version), digest.removeprefix("sha256="), int(size.removeprefix("bytes="))
        except (ValueError, UnicodeDecodeError):
            raise _Damaged("a damaged checkpoint header") from None
        if version != CHECKPOINT_VERSION:
            raise _Damaged(f"checkpoint version {version}, this distgnn reads {CHECKPOINT_VERSION} (and 1)")
        payload = memoryview(data)[end + 1:]
        if len(payload) != size:
            raise _Damaged(f"{len(payload)} bytes after the header, it says {size} (truncated or appended to)")
        if hashlib.sha256(payload).hexdigest() != digest:
            raise _Damaged("sha256 mismatch (changed or damaged after it was written)")
        state = _torch_load(payload)
    elif data.startswith(b"PK"):  # version 1: a bare torch.save zip file, without a checksum
        state, version = _torch_load(memoryview(data)), 1
    else:
        raise _Damaged("not a readable checkpoint (neither a distgnn checkpoint nor a torch file)")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or state.get("version") != version:
        raise _Damaged("not a distgnn checkpoint")
    return state


def _torch_load(payload) -> dict:
    import pickle

    import torch

    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, KeyError, pickle.UnpicklingError) as err:
        raise _Damaged(f"not a readable checkpoint ({_first_line(err)})") from None


def load_checkpoint(path: str) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain data only).

    The sha256 in its header is checked before anything is unpickled (``torch.load`` with
    ``weights_only=True``). Version-1 checkpoints (a bare ``torch.save`` file, no checksum) are
    still read. Raises :class:`LaunchError` ``"PATH: why"`` for an empty, truncated, altered or
    foreign file.
    """
    try:
        state = _read_checkpoint(path)
    except _Damaged as err:
        raise LaunchError(f"{path}: {err}") from None
    if state.get("version") == 1:
        log.warning("%s: a version-1 checkpoint, without a checksum", path)
    return state


def find_checkpoint(directory: str) -> tuple[str | None, dict | None, list[tuple[str, str]]]:
    """The newest checkpoint of ``directory`` that loads and passes its checksum.

    Returns ``(path, state, skipped)``: ``skipped`` lists ``(file name, why)`` for every newer file
    that could not be used; ``path`` and ``state`` are ``None`` when no file can.
    """
    skipped = []
    for path in checkpoint_files(directory):
        try:
            return path, _read_checkpoint(path), skipped
        except _Damaged as err:
            skipped.append((os.path.basename(path), str(err)))
    return None, None, skipped


def latest_checkpoint(directory: str) -> str | None:
    """The newest usable checkpoint in ``directory`` (``None`` if there is none; see :func:`find_checkpoint`)."""
    return find_checkpoint(directory)[0]


def save_checkpoint(directory: str, state: dict) -> str:
    """Write ``state`` as ``checkpoint-EPOCH.pt`` atomically; keep the newest few. Returns the path.

    Format (version 2): one ASCII header line
    ``distgnn-checkpoint 2 sha256=<hex of the payload> bytes=<payload size>``, then the payload,
    ``torch.save`` of ``{"format", "version", **state}``. It is written to ``.tmp-checkpoint-*``,
    flushed to disk and renamed into place (a killed driver leaves at most that temporary file,
    which the next run removes).
    """
    import torch

    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, _ckpt_name(int(state["epoch"])))
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}, buf)
    payload = buf.getbuffer()
    header = f"{_MAGIC.decode()}{CHECKPOINT_VERSION} sha256={hashlib.sha256(payload).hexdigest()} bytes={len(payload)}\n"
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header.encode("ascii"))
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
    for old in checkpoint_files(directory)[_KEEP:]:
        os.unlink(old)
    return path


def _fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable (where the platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_temporary_checkpoints(directory: str) -> list[str]:
    """Delete the ``.tmp-checkpoint-*`` files a killed driver left in ``directory``; their names."""
    if not os.path.isdir(directory):
        return []
    gone = []
    for name in sorted(os.listdir(directory)):
        if name.startswith(_TMP_PREFIX):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                continue
            gone.append(name)
    return gone


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else type(err).__name__
