"""``python -m distgnn.launch``: distributed full-graph training on Ray.

With no arguments it generates the built-in synthetic graph (the stochastic block model of
``python -m distgnn.train``), partitions it with METIS into one part per worker, starts a local
Ray cluster with 2 workers and trains a 2-layer GCN, printing every epoch and the final test
accuracy. ``--parts DIR`` trains on a partition written by ``python -m distgnn.partition``;
``--address auto`` joins a running Ray cluster (``ray start --head`` on one machine, ``ray start
--address HEAD:6379`` on the others); without ``--address``, ``$RAY_ADDRESS`` is joined when set,
as ``ray.init`` does.
"""
from __future__ import annotations

import argparse
import sys

from ..models import MODELS
from .config import RunConfig


def parser() -> argparse.ArgumentParser:
    d = RunConfig()
    p = argparse.ArgumentParser(
        prog="python -m distgnn.launch",
        description="Train a node classifier on a partitioned graph with one Ray worker per device.",
    )
    p.add_argument("--parts", metavar="DIR", help="partition directory or URI (default: partition the built-in synthetic graph)")
    p.add_argument("--model", default=d.model, choices=sorted(MODELS), help=f"model stack (default: {d.model})")
    p.add_argument("--workers", type=int, default=d.workers, help=f"Ray worker actors, one per device (default: {d.workers})")
    p.add_argument("--gpus-per-worker", type=float, default=d.gpus_per_worker, help="GPUs per worker: 0 = CPU and gloo (default), 1 = one GPU each and NCCL")
    p.add_argument("--threads-per-worker", type=int, default=None, help="torch threads (and Ray CPUs) per worker (default: CPUs / workers)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs (default: {d.epochs})")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: 0.01; 0.005 for gat)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help=f"weight decay (default: {d.weight_decay})")
    p.add_argument("--hidden", type=int, default=None, help="hidden channels (default: 16 gcn, 64 sage, 8 per head gat)")
    p.add_argument("--layers", type=int, default=d.num_layers, help=f"layers (default: {d.num_layers})")
    p.add_argument("--dropout", type=float, default=None, help="dropout rate (default: the model's)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default: {d.seed})")
    p.add_argument("--eval-every", type=int, default=d.eval_every, help="evaluate every N epochs (default: 1)")
    p.add_argument("--mode", choices=["full", "sampled"], default=d.mode, help="full-graph (default) or sampled mini-batch training")
    p.add_argument("--fanout", default=",".join(map(str, d.fanouts)), help="sampled mode: neighbours per hop, -1 = all (default: 10,10)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"sampled mode: seeds per step over all workers (default: {d.batch_size})")
    p.add_argument("--replace", action="store_true", help="sampled mode: sample neighbours with replacement")
    p.add_argument("--cache-mb", type=float, default=d.cache_mb, help="sampled mode: MiB per worker for the hottest remote feature rows (default: 0)")
    p.add_argument("--cache-policy", choices=["degree", "prepass"], default=d.cache_policy, help="sampled mode: what makes a remote row hot: its in-degree (default) or a sampling pre-pass")
    p.add_argument("--no-pipeline", action="store_true", help="sampled mode: do not prepare the next batch while one trains")
    p.add_argument("--address", default=None, help="Ray cluster: auto, ray://host:port, or HOST:PORT (default: $RAY_ADDRESS "
                   "when set, as ray.init does; else start a local one, on 127.0.0.1 only)")
    p.add_argument("--checkpoint-dir", default=None, metavar="D", help="write checkpoints here (needed to recover a lost "
                   "worker); each carries a sha256 of itself")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help=f"epochs between checkpoints (default: {d.checkpoint_every})")
    p.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint in --checkpoint-dir "
                   "(a damaged newer one is skipped with a warning)")
    p.add_argument("--max-restarts", type=int, default=d.max_restarts, help=f"restarts after a lost worker (default: {d.max_restarts})")
    p.add_argument("--timeout", type=float, default=d.timeout_s, help=f"seconds any collective or step may take (default: {d.timeout_s:.0f})")
    p.add_argument("--quiet", action="store_true", help="print only the final result")
    return p


def _mb(b: float) -> str:
    return f"{b / 1e6:.2f} MB"


def _fanouts(text: str) -> tuple:
    try:
        return tuple(int(f) for f in text.split(","))
    except ValueError:
        raise ValueError(f"--fanout must be comma-separated integers such as 10,10 or 15,10,-1, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = RunConfig(
            mode=args.mode, fanouts=_fanouts(args.fanout), batch_size=args.batch_size, replace=args.replace,
            cache_mb=args.cache_mb, cache_policy=args.cache_policy, pipeline=not args.no_pipeline,
            parts=args.parts, model=args.model, hidden=args.hidden, num_layers=args.layers, dropout=args.dropout,
            epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay, seed=args.seed, workers=args.workers,
            gpus_per_worker=args.gpus_per_worker, threads_per_worker=args.threads_per_worker, address=args.address,
            checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every, resume=args.resume,
            max_restarts=args.max_restarts, timeout_s=args.timeout, eval_every=args.eval_every,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .driver import LaunchError, launch
    from .stats import EpochStats

    def echo(line: str) -> None:
        if not args.quiet:
            print(line, flush=True)

    def show(s: EpochStats) -> None:
        if args.quiet:
            return
        shown = [k for k in s.metrics if k.startswith(("train_", "val_"))]
        acc = "".join(f"  {k.replace('_', ' ')} {s.metrics[k]:.4f}" for k in shown)
        if s.sampled_edges:
            cache = f", cache hits {100 * s.hit_rate:.0f}% ({_mb(s.bytes_saved)} saved)" if config.cache_mb else ""
            detail = (f"{s.steps} steps, {s.sampled_edges / max(s.steps, 1):.0f} edges/step; sample "
                      f"{1000 * s.sample_s:.0f} ms, fetch {1000 * s.fetch_s:.0f} ms, train {1000 * s.compute_s:.0f} ms, "
                      f"grad sync {1000 * s.sync_s:.0f} ms; fetched {_mb(s.bytes_fetched)}{cache}")
        else:
            detail = (f"exchange {1000 * s.exchange_s:.1f} ms, grad sync {1000 * s.sync_s:.1f} ms; "
                      f"halo {_mb(s.halo_bytes)}")
        print(f"epoch {s.epoch:4d}  loss {s.loss:.4f}{acc}  {1000 * s.wall_s:7.1f} ms  ({detail})", flush=True)

    mode = (f"sampled (fan-out {','.join(map(str, config.fanouts))}, batch {config.batch_size})"
            if config.mode == "sampled" else "full-graph")
    echo(f"model: {config.model}, {config.workers} workers, {config.epochs} epochs, {mode}")
    try:
        result = launch(config, on_epoch=show, echo=echo, progress=not args.quiet)
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: workers stopped", file=sys.stderr)
        return 130
    restarts = f", {result.restarts} restart(s)" if result.restarts else ""
    print(f"final: test accuracy {result.test_acc:.4f} (epoch {result.epochs}, train {result.train_acc:.4f}, "
          f"val {result.val_acc:.4f}) in {result.seconds:.1f} s{restarts}; replicas identical")
    return 0
