"""``python -m distgnn.train``: train a node classifier on one process.

With no arguments it trains a 2-layer GCN on the built-in synthetic graph (a stochastic block
model with class-correlated features) and prints the loss and accuracies of every epoch and the
final test accuracy.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

from ..data import DataError, GraphData, load_numpy, load_planetoid, sbm
from ..models import MODELS, build_model
from .loop import EpochStats, TrainConfig, train_node_classifier

log = logging.getLogger(__name__)


def load_dataset(spec: str, seed: int = 0) -> GraphData:
    """``synthetic`` | ``synthetic:NUM_NODES`` | ``cora`` / ``planetoid:NAME`` | ``FILE.npz``."""
    if spec == "synthetic" or spec.startswith("synthetic:"):
        n = int(spec.split(":", 1)[1]) if ":" in spec else 10_000
        return sbm(num_nodes=n, seed=seed)
    if spec in ("cora", "citeseer", "pubmed") or spec.startswith("planetoid:"):
        return load_planetoid(spec.split(":", 1)[-1], normalize_features=True)
    if spec.endswith(".npz"):
        return load_numpy(spec)
    raise DataError(f"unknown dataset {spec!r}: use synthetic[:NUM_NODES], cora, planetoid:NAME or a .npz file")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m distgnn.train",
        description="Train a node classifier on one process and report its test accuracy.",
    )
    p.add_argument("--dataset", default="synthetic", help="synthetic[:NUM_NODES] (default), cora, planetoid:NAME, or a .npz file")
    p.add_argument("--model", default="gcn", choices=sorted(MODELS), help="model stack (default: gcn)")
    p.add_argument("--hidden", type=int, default=None, help="hidden channels (default: 16 gcn, 64 sage, 8 per head gat)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: 200 on Planetoid, 100 otherwise)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: 0.01; 0.005 for gat)")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="weight decay (default: 5e-4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--select", choices=["last", "best_val"], default="last", help="report the last epoch or the best validation epoch")
    p.add_argument("--quiet", action="store_true", help="print only the final result")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        data = load_dataset(args.dataset, args.seed)
        planetoid = args.dataset in ("cora", "citeseer", "pubmed") or args.dataset.startswith("planetoid:")
        config = TrainConfig(
            epochs=args.epochs if args.epochs is not None else (200 if planetoid else 100),
            lr=args.lr if args.lr is not None else (0.005 if args.model == "gat" else 0.01),
            weight_decay=args.weight_decay,
            seed=args.seed,
            select=args.select,
        )
        if args.hidden is not None and args.hidden < 1:
            raise ValueError(f"--hidden must be positive, got {args.hidden}")
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import torch

    torch.manual_seed(args.seed)
    model = build_model(args.model, data.num_features, data.num_classes, args.hidden)
    print(f"{data}\nmodel: {args.model}, {sum(p.numel() for p in model.parameters())} parameters, {config.epochs} epochs")

    def show(s: EpochStats) -> None:
        if not args.quiet:
            print(f"epoch {s.epoch:4d}  loss {s.loss:.4f}  train acc {s.train_acc:.4f}  val acc {s.val_acc:.4f}  {1000 * s.seconds:7.1f} ms")

    t0 = time.perf_counter()
    result = train_node_classifier(model, data, config, on_epoch=show)
    print(
        f"final: test accuracy {result.test_acc:.4f} (epoch {result.epoch}, train {result.train_acc:.4f}, "
        f"val {result.val_acc:.4f}) in {time.perf_counter() - t0:.1f} s"
    )
    return 0
