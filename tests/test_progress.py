"""distgnn.progress: lines at a steady interval when the stream is no terminal (fake clock and stream)."""
from __future__ import annotations

import io
import os

import pytest

from distgnn.progress import ProgressLine, format_bytes, format_seconds, rss_bytes, stage_progress


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_lines_every_interval_with_rate_eta_and_memory():
    clock, out = Clock(), io.StringIO()
    with ProgressLine("epoch 1", total=200, unit="step", stream=out, interval=30, clock=clock,
                      memory=lambda: 3 * 2**30, memory_label="worker RSS max") as bar:
        for _ in range(10):  # 10 steps in 20 s: no line yet
            clock.t += 2
            bar.update()
        assert out.getvalue() == ""
        for _ in range(10):  # 20 steps in 40 s: one line at 30 s
            clock.t += 2
            bar.update()
        assert _lines(out) == ["epoch 1: 15/200 steps (8%), 0.50 steps/s, ETA 6m10s, worker RSS max 3.00 GiB"]
        clock.t += 100
        bar.update(180)
    assert _lines(out)[1] == "epoch 1: 200/200 steps (100%), 1.43 steps/s, ETA 0.0s, worker RSS max 3.00 GiB"
    assert _lines(out)[2] == "epoch 1: 200/200 steps in 2m20s (1.43 steps/s), worker RSS max 3.00 GiB"
    assert bar.n == 200 and len(_lines(out)) == 3


def test_unknown_total_short_loops_and_missing_memory():
    clock, out = Clock(), io.StringIO()
    bar = ProgressLine("read", stream=out, clock=clock, interval=5, memory=lambda: None, unit="edge")
    clock.t += 6
    bar.update(2_500_000)
    bar.close()
    bar.close()  # once only
    assert _lines(out) == ["read: 2.5M edges, 416.7k edges/s", "read: 2.5M edges in 6.0s (416.7k edges/s)"]
    quick = io.StringIO()
    with ProgressLine("quick", total=3, stream=quick, clock=clock) as q:
        clock.t += 0.5
        q.update(3)
    assert quick.getvalue() == ""  # under a second: no closing line
    off = io.StringIO()
    with ProgressLine("off", total=3, stream=off, clock=clock, disable=True) as d:
        clock.t += 100
        d.update(3)
    assert off.getvalue() == "" and d.n == 0


def test_a_terminal_gets_a_tqdm_bar():
    out = io.StringIO()
    with ProgressLine("epoch 2", total=4, stream=out, terminal=True) as bar:
        bar.update(4)
    assert out.getvalue().startswith("\repoch 2:   0%|") and "0/4" in out.getvalue()  # tqdm draws (then clears)
    assert bar.n == 4 and bar.lines == 0


def test_a_broken_stream_stops_reporting_not_the_loop():
    class Broken(io.StringIO):
        def write(self, s):
            raise OSError("pipe closed")

    clock = Clock()
    bar = ProgressLine("x", total=10, stream=Broken(), clock=clock, interval=1)
    clock.t += 2
    bar.update()
    assert bar.disabled
    bar.update()
    bar.close()


def test_stage_progress_fits_the_partitioner_protocol(capsys):
    bar = stage_progress("edges", total=10, unit="edges")
    assert bar.unit == "edge" and bar.total == 10
    bar.update(10)
    bar.close()


def test_helpers():
    assert format_bytes(512) == "512 B" and format_bytes(1536) == "1.50 KiB" and format_bytes(7.3 * 2**30) == "7.30 GiB"
    assert format_seconds(9.54) == "9.5s" and format_seconds(730) == "12m10s" and format_seconds(4000) == "1h06m"
    rss = rss_bytes()
    if os.path.exists("/proc/self/statm"):
        assert rss is not None and 10 * 2**20 < rss < 64 * 2**30
        assert rss_bytes(os.getpid()) is not None
    assert rss_bytes(2**22 + 12345) is None  # no such process
    with pytest.raises(ValueError, match="interval must be > 0"):
        ProgressLine("x", interval=0)


def test_a_stage_that_counts_nothing_reports_its_time():
    clock, out = Clock(), io.StringIO()
    with ProgressLine("read", stream=out, clock=clock, memory=lambda: None):
        clock.t += 6
    assert _lines(out) == ["read: done in 6.0s"]
