"""``python -m distgnn.predict --parts DIR --checkpoint CKPT_OR_DIR --out OUT``: every node's
prediction (and optionally one layer's embedding) by original id, exactly, as Parquet.

Exit status: 0 done, 1 the run failed (bad checkpoint, partition, workers), 2 bad arguments,
130 interrupted (the workers are stopped and nothing is left at ``--out``).
"""
from __future__ import annotations

import argparse
import sys

from .api import DEFAULT_BATCH_NODES


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m distgnn.predict",
        description="Exact layer-wise inference of a distgnn.launch checkpoint on every node of a partition, with one "
                    "Ray worker per device; writes OUT/part-*.parquet (original node ids) and OUT/_manifest.json.",
    )
    p.add_argument("--parts", metavar="DIR", default=None,
                   help="the partition the model was trained on (default: parts/ beside the checkpoint, as the "
                        "built-in demo of python -m distgnn.launch keeps it)")
    p.add_argument("--checkpoint", metavar="CKPT_OR_DIR", required=True,
                   help="a checkpoint file, or a directory: its newest checkpoint that passes its checksum")
    p.add_argument("--out", metavar="OUT", required=True, help="output directory (local path or URI)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (a prediction output only), "
                   "atomically")
    p.add_argument("--embeddings", type=int, default=None, metavar="LAYER",
                   help="also export the activation of this layer step (1-based) as an 'embedding' list column")
    p.add_argument("--batch-nodes", type=int, default=DEFAULT_BATCH_NODES, metavar="N",
                   help=f"destination nodes per chunk of a layer; bounds memory (default: {DEFAULT_BATCH_NODES}; 0: "
                        "whole parts)")
    p.add_argument("--workers", type=int, default=2, help="Ray worker actors (default: 2)")
    p.add_argument("--threads-per-worker", type=int, default=None, help="torch threads per worker "
                   "(default: CPUs / workers)")
    p.add_argument("--gpus-per-worker", type=float, default=0, help="GPUs per worker (default: 0, CPU and gloo)")
    p.add_argument("--address", default=None, help="Ray cluster: auto, ray://host:port (default: $RAY_ADDRESS when "
                   "set, else a local one on 127.0.0.1)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds any collective or step may take (default: 300)")
    p.add_argument("--quiet", action="store_true", help="print only the final line")
    return p


def main(argv: list[str] | None = None) -> int:
    from ..launch.errors import LaunchError
    from .api import PredictError, predict

    args = parser().parse_args(argv)

    def echo(line: str) -> None:
        if not args.quiet:
            print(line, flush=True)

    try:
        r = predict(args.parts, args.checkpoint, args.out, embeddings=args.embeddings, workers=args.workers,
                    address=args.address, batch_nodes=args.batch_nodes, overwrite=args.overwrite,
                    threads_per_worker=args.threads_per_worker, gpus_per_worker=args.gpus_per_worker,
                    timeout_s=args.timeout, echo=echo, progress=not args.quiet)
    except PredictError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if str(exc).startswith(("--embeddings must", "--batch-nodes must")) else 1
    except (LaunchError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: workers stopped, nothing written", file=sys.stderr)
        return 130
    shown = "  ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in r.metrics.items() if k.startswith(("val_", "test_")))
    peak = max((w.get("peak_rss_mb") or 0.0) for w in r.workers) if r.workers else float("nan")
    print(f"wrote {r.num_nodes} predictions ({', '.join(c['name'] for c in r.columns)}) to {r.out} in "
          f"{r.seconds:.1f} s; peak RSS {peak:.0f} MiB per worker" + (f"; {shown}" if shown else ""), flush=True)
    return 0
