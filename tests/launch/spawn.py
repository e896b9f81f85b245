"""Run a function on several real processes joined in a gloo process group (test helper).

``run_ranks(fn, world_size, tmp_path, *args)`` spawns ``world_size`` processes (spawn context),
each joins ``gloo`` through a ``file://`` rendezvous inside ``tmp_path`` (no ports), sets one
thread, and calls ``fn(rank, world_size, *args)``. It returns the per-rank results (anything
picklable; send tensors as NumPy arrays). On the first failure, or when ``timeout`` passes, every
rank is killed and the assertion shows each failing rank's traceback.
"""
from __future__ import annotations

import multiprocessing as mp
import queue
import time
import traceback
from datetime import timedelta
from pathlib import Path


def _main(fn, rank, world_size, rdv, args, results) -> None:
    try:
        import torch
        import torch.distributed as dist

        torch.set_num_threads(1)
        dist.init_process_group(
            "gloo", init_method=f"file://{rdv}", rank=rank, world_size=world_size, timeout=timedelta(seconds=60)
        )
        out = fn(rank, world_size, *args)  # the group is not destroyed: that waits for dead peers
        results.put((rank, True, out))
    except BaseException:  # noqa: BLE001 - reported to the parent
        results.put((rank, False, traceback.format_exc()))


def run_ranks(fn, world_size: int, tmp_path: Path, *args, timeout: float = 120.0) -> list:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    rdv = Path(tmp_path) / f"rdv-{world_size}-{time.monotonic_ns()}"
    procs = [
        ctx.Process(target=_main, args=(fn, r, world_size, str(rdv), args, results), daemon=True, name=f"rank-{r}")
        for r in range(world_size)
    ]
    for p in procs:
        p.start()
    outputs: dict[int, object] = {}
    failures: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(outputs) < world_size and not failures:
            left = deadline - time.monotonic()
            if left <= 0:
                missing = sorted(set(range(world_size)) - set(outputs))
                raise AssertionError(f"ranks {missing} did not finish within {timeout:.0f} s")
            try:
                rank, ok, payload = results.get(timeout=min(left, 1.0))
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:  # died without reporting (segfault, os._exit): give the queue one last look
                    try:
                        rank, ok, payload = results.get(timeout=1.0)
                    except queue.Empty:
                        raise AssertionError(
                            "; ".join(f"{p.name} exited with code {p.exitcode} without a report" for p in dead)
                        ) from None
                else:
                    continue
            if ok:
                outputs[rank] = payload
            else:
                failures[rank] = payload
        if failures:
            # collect the other ranks' errors for a moment (they often fail in turn), then report
            end = time.monotonic() + 2.0
            while time.monotonic() < end and len(failures) + len(outputs) < world_size:
                try:
                    rank, ok, payload = results.get(timeout=0.2)
                except queue.Empty:
                    continue
                if not ok:
                    failures[rank] = payload
            report = "\n".join(f"--- rank {r} failed:\n{tb}" for r, tb in sorted(failures.items()))
            raise AssertionError(f"{len(failures)} of {world_size} ranks failed\n{report}")
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        for p in procs:
            p.join(5)
        results.close()
    return [outputs[r] for r in range(world_size)]
