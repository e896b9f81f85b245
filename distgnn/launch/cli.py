"""``python -m distgnn.launch``: distributed full-graph training on Ray.

With no arguments it generates the built-in synthetic graph (the stochastic block model of
``python -m distgnn.train``), partitions it with METIS into one part per worker, starts a local
Ray cluster with 2 workers and trains a 2-layer GCN, printing every epoch and the final test
accuracy. ``--parts DIR`` trains on a partition written by ``python -m distgnn.partition``;
``--address auto`` joins a running Ray cluster (``ray start --head`` on one machine, ``ray start
--address HEAD:6379`` on the others); without ``--address``, ``$RAY_ADDRESS`` is joined when set,
as ``ray.init`` does. ``--task link-prediction`` trains on the edges of a partition written with
``--edge-split`` (the encoder is ``--model``; ``--decoder``, ``--negatives``, ... as in
``python -m distgnn.train``, whose link defaults apply: a 128-wide gcn encoder without dropout).
"""
from __future__ import annotations

import argparse
import sys

from .config import RunConfig


def parser() -> argparse.ArgumentParser:
    from ..train.options import add_link_options, add_model_options, add_sampling_options, add_task_options

    d = RunConfig()
    p = argparse.ArgumentParser(
        prog="python -m distgnn.launch",
        description="Train a GNN on a partitioned graph with one Ray worker per device (node classification, "
                    "multi-label, node regression or link prediction; any model of python -m distgnn.train).",
    )
    p.add_argument("--parts", metavar="DIR", help="partition directory or URI (default: partition the built-in synthetic graph)")
    add_model_options(p)
    add_task_options(p)
    add_link_options(p)
    add_sampling_options(p)
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs (default: {d.epochs})")
    g.add_argument("--lr", type=float, default=None, help="learning rate (default: 0.01; 0.005 for gat)")
    g.add_argument("--weight-decay", type=float, default=d.weight_decay, help=f"weight decay (default: {d.weight_decay})")
    g.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default: {d.seed})")
    g.add_argument("--eval-every", type=int, default=d.eval_every, help="evaluate every N epochs (default: 1)")
    g = p.add_argument_group("sampled mode (distributed)")
    g.add_argument("--cache-mb", type=float, default=d.cache_mb, help="MiB per worker for the hottest remote feature rows (default: 0)")
    g.add_argument("--cache-policy", choices=["degree", "prepass"], default=d.cache_policy, help="what makes a remote row hot: its in-degree (default) or a sampling pre-pass")
    g.add_argument("--no-pipeline", action="store_true", help="do not prepare the next batch while one trains")
    g = p.add_argument_group("placement")
    g.add_argument("--workers", type=int, default=d.workers, help=f"Ray worker actors, one per device (default: {d.workers})")
    g.add_argument("--gpus-per-worker", type=float, default=d.gpus_per_worker, help="GPUs per worker: 0 = CPU and gloo (default), 1 = one GPU each and NCCL")
    g.add_argument("--threads-per-worker", type=int, default=None, help="torch threads (and Ray CPUs) per worker (default: CPUs / workers)")
    g.add_argument("--address", default=None, help="Ray cluster: auto, ray://host:port, or HOST:PORT (default: $RAY_ADDRESS "
                   "when set, as ray.init does; else start a local one, on 127.0.0.1 only)")
    g = p.add_argument_group("robustness and output")
    g.add_argument("--checkpoint-dir", default=None, metavar="D", help="write checkpoints here (needed to recover a lost "
                   "worker); each carries a sha256 of itself")
    g.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help=f"epochs between checkpoints (default: {d.checkpoint_every})")
    g.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint in --checkpoint-dir "
                   "(a damaged newer one is skipped with a warning)")
    g.add_argument("--max-restarts", type=int, default=d.max_restarts, help=f"restarts after a lost worker (default: {d.max_restarts})")
    g.add_argument("--timeout", type=float, default=d.timeout_s, help=f"seconds any collective or step may take (default: {d.timeout_s:.0f})")
    g.add_argument("--run-dir", default=None, metavar="D", help="write epochs.jsonl, result.json and config.json here "
                   "(default: the --checkpoint-dir, else $DISTGNN_RUNS/<timestamp>, ./distgnn-runs/... when unset; "
                   "'' for none)")
    g.add_argument("--quiet", action="store_true", help="print only the final result")
    return p


def _mb(b: float) -> str:
    return f"{b / 1e6:.2f} MB"


def _name(metric: str) -> str:
    return {"acc": "accuracy"}.get(metric, metric)


def main(argv: list[str] | None = None) -> int:
    from ..train.options import LINK_DEFAULTS, fanouts_from_text, layer_args_from_text

    args = parser().parse_args(argv)
    task = args.task
    if task == "link-prediction":  # the link defaults of python -m distgnn.train, where not given
        from ..tasks import LinkPrediction

        if args.hidden is None and args.model == "gcn":
            args.hidden = LINK_DEFAULTS["hidden"]
        if args.dropout is None:
            args.dropout = LINK_DEFAULTS["dropout"]
        if args.hits_k != 50:
            try:
                task = LinkPrediction(hits_k=args.hits_k)
            except ValueError as exc:
                print(f"error: --hits-k: {exc}", file=sys.stderr)
                return 2
    try:
        config = RunConfig(
            decoder=args.decoder, embedding_dim=args.embedding_dim, negatives=args.negatives,
            neg_sampling=args.neg_sampling, exclude_positives=args.exclude_positives,
            task=task, loss=args.loss, select=args.select, layer_args=layer_args_from_text(args.layer_args),
            run_dir=args.run_dir,
            mode=args.mode, fanouts=fanouts_from_text(args.fanout), batch_size=args.batch_size, replace=args.replace,
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
    from .epochs import resolve_task as launch_task_of
    from .stats import EpochStats

    def launch_task(c):
        return launch_task_of(c.task, c.loss)

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

    from .epochs import epochs_for

    mode = epochs_for(config.mode, config.task)[1](config).describe()
    echo(f"model: {config.model_name}, task {config.describe()['task']}, {config.workers} workers, {config.epochs} epochs, {mode}")
    try:
        result = launch(config, on_epoch=show, echo=echo, progress=not args.quiet)
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: workers stopped", file=sys.stderr)
        return 130
    restarts = f", {result.restarts} restart(s)" if result.restarts else ""
    task = launch_task(config)
    m, key = result.metrics, task.primary
    at = f"epoch {result.best_epoch} of {result.epochs}" if config.select == "best_val" else f"epoch {result.epochs}"
    train, others = f"train {m.get('train_' + key, float('nan')):.4f}, ", ""
    if "train_" + key not in m and m:  # link prediction: no training metric; its other test figures instead
        train = ""
        others = "".join(f", {k[5:]} {v:.4f}" for k, v in m.items() if k.startswith("test_") and k != "test_" + key)
    print(f"final: test {_name(key)} {m.get('test_' + key, float('nan')):.4f}{others} ({at}, {train}"
          f"val {m.get('val_' + key, float('nan')):.4f}) in "
          f"{result.seconds:.1f} s{restarts}; replicas identical")
    if result.run_dir:
        echo(f"per-epoch figures: {result.run_dir}/epochs.jsonl")
    return 0
