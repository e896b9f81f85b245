"""Progress of long loops (epochs, loading, partitioning) that a batch-job log also shows.

On a terminal :class:`ProgressLine` draws a ``tqdm`` bar. When the stream is not a terminal (a
job's log file, a pipe) it writes one line every ``interval`` seconds instead, and a closing line
when the loop took a second or more::

    epoch 1: 40/193 steps (21%), 0.21 steps/s, ETA 12m10s, worker RSS max 7.30 GiB
    epoch 1: 193/193 steps in 15m21s (0.21 steps/s), worker RSS max 7.31 GiB

:func:`stage_progress` has the signature of a partitioner ``progress`` argument
(:mod:`distgnn.partition.progress`): ``stage_progress(stage, total=None, unit="edges")``.

Memory: :func:`rss_bytes` reads a process's resident set from ``/proc`` (Linux; ``None``
elsewhere), so a driver can report its workers' memory when they run on its machine.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Callable, TextIO

__all__ = ["ProgressLine", "stage_progress", "rss_bytes", "format_bytes", "format_seconds"]

DEFAULT_INTERVAL_S = 30.0
_FINAL_LINE_S = 1.0  # a loop shorter than this closes without a line


def rss_bytes(pid: int | None = None) -> int | None:
    """Resident set size of process ``pid`` (default: this one) in bytes; ``None`` when unknown
    (no ``/proc``, or no such process)."""
    try:
        with open(f"/proc/{pid or 'self'}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def format_bytes(n: float) -> str:
    """``1536 -> "1.50 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_seconds(s: float) -> str:
    """``730 -> "12m10s"``, ``4000 -> "1h06m"``, ``9.5 -> "9.5s"``."""
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def _count(n: float) -> str:
    """Counts and rates: ``61859140 -> "61.9M"``, ``0.214 -> "0.21"``."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.1f}{suffix}"
    return f"{n:.2f}" if n != int(n) else f"{int(n)}"


class ProgressLine:
    """Progress of a counted loop: a ``tqdm`` bar on a terminal, else a line every ``interval`` s.

    Args:
        desc: what runs (``"epoch 3"``, ``"worker 0: loading parts"``).
        total: the count at the end (``None``: unknown, no percentage or ETA).
        unit: what is counted, singular (``"step"``); lines say ``"steps"``.
        stream: where to write (default ``sys.stderr``).
        interval: seconds between lines when ``stream`` is not a terminal (default 30).
        memory: a callable giving bytes to report (default: this process's RSS); ``None`` from it
            leaves memory out of the line.
        memory_label: the words before the figure (default ``"RSS"``).
        disable: report nothing.
        clock: seconds, monotonic (tests pass a fake one).
        terminal: draw a bar (default: ``stream.isatty()``).

    ``update(n)`` adds ``n`` (the count so far is ``.n``); ``close()`` (or leaving a ``with``
    block) writes the closing line. Not thread-safe: one loop, one reporter.
    """

    def __init__(self, desc: str, total: int | None = None, unit: str = "step", *, stream: TextIO | None = None,
                 interval: float = DEFAULT_INTERVAL_S, memory: Callable[[], int | None] | None = None,
                 memory_label: str = "RSS", disable: bool = False, clock: Callable[[], float] = time.monotonic,
                 terminal: bool | None = None) -> None:
        if not interval > 0:
            raise ValueError(f"ProgressLine: interval must be > 0 seconds, got {interval!r}")
        self.desc, self.total, self.unit = desc, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.interval = float(interval)
        self.memory = memory if memory is not None else rss_bytes
        self.memory_label = memory_label
        self.clock = clock
        self.n = 0
        self.disabled = disable
        self.closed = False
        self.start = self.last = clock()
        self.lines = 0
        self._bar = None
        if disable:
            return
        if terminal is None:
            isatty = getattr(self.stream, "isatty", None)
            terminal = bool(isatty and isatty())
        if terminal:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, leave=False, file=self.stream, dynamic_ncols=True,
                             unit_scale=unit not in ("step", "part", "epoch"))

    def __enter__(self) -> "ProgressLine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Add ``n`` to the count; writes a line when ``interval`` has passed since the last."""
        if self.disabled or self.closed:
            return
        self.n += n
        now = self.clock()
        if self._bar is not None:
            self._bar.update(n)
            if now - self.last >= 1.0:
                mem = self._memory()
                if mem:
                    self._bar.set_postfix_str(mem, refresh=False)
                self.last = now
            return
        if now - self.last >= self.interval:
            self._write(self._line(now))
            self.last = now

    def close(self) -> None:
        """The closing line (when the loop took a second or more), or the bar closed."""
        if self.disabled or self.closed:
            return
        self.closed = True
        if self._bar is not None:
            self._bar.close()
            return
        now = self.clock()
        if now - self.start >= _FINAL_LINE_S or self.lines:
            elapsed = now - self.start
            done = f"{_count(self.n)}/{_count(self.total)}" if self.total is not None else _count(self.n)
            if self.n or self.total:
                text = f"{self.desc}: {done} {self.unit}s in {format_seconds(elapsed)}"
                text += f" ({_count(self.n / elapsed)} {self.unit}s/s)" if elapsed > 0 else ""
            else:  # nothing counted (a stage that only reports its time)
                text = f"{self.desc}: done in {format_seconds(elapsed)}"
            mem = self._memory()
            self._write(text + (f", {mem}" if mem else ""))

    def _memory(self) -> str:
        try:
            value = self.memory()
        except Exception:  # noqa: BLE001 - a report must never stop the loop
            value = None
        return f"{self.memory_label} {format_bytes(value)}" if value is not None else ""

    def _line(self, now: float) -> str:
        elapsed = now - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        if self.total is not None:
            pct = 100.0 * self.n / self.total if self.total else 100.0
            text = f"{self.desc}: {_count(self.n)}/{_count(self.total)} {self.unit}s ({pct:.0f}%)"
        else:
            text = f"{self.desc}: {_count(self.n)} {self.unit}s"
        text += f", {_count(rate)} {self.unit}s/s"
        if self.total is not None:
            left = self.total - self.n
            text += f", ETA {format_seconds(left / rate)}" if rate > 0 else ", ETA ?"
        mem = self._memory()
        return text + (f", {mem}" if mem else "")

    def _write(self, line: str) -> None:
        self.lines += 1
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: progress is not worth a crash
            self.disabled = True


def stage_progress(stage: str, total: int | None = None, unit: str = "edges") -> ProgressLine:
    """A partitioner ``progress`` (:mod:`distgnn.partition.progress`): a bar on a terminal, lines in a log.

    ``unit`` comes plural from the partitioner (``"edges"``); lines add their own ``s``.
    """
    return ProgressLine(stage, total=total, unit=unit[:-1] if unit.endswith("s") else unit)
