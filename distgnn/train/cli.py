"""``python -m distgnn.train``: train a model for a node-level task or link prediction on one process.

With no arguments it trains a 2-layer GCN to classify the nodes of the built-in synthetic graph (a
stochastic block model with class-correlated features) and prints the loss and metrics of every
epoch and the final test score. The model, task and sampling options are the ones
``python -m distgnn.launch`` takes (:mod:`distgnn.train.options`). ``--task link-prediction``
splits the dataset's edges (``--edge-split``, or a partition's stored split) and trains
:func:`~distgnn.train.link.train_link`.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

from ..data import DataError
from ..data.transforms import TRANSFORMS, default_transform, load_dataset
from ..tasks import TASKS
from .loop import EpochStats, TrainConfig, train
from .options import (
    LINK_DEFAULTS,
    add_edge_split_options,
    add_link_options,
    add_model_options,
    add_sampling_options,
    add_task_options,
    fanouts_from_text,
    link_from_args,
    link_model_from_args,
    model_from_args,
    task_from_args,
)

log = logging.getLogger(__name__)

__all__ = ["load_dataset", "main", "parser"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m distgnn.train",
        description=f"Train a model for a task ({', '.join(TASKS)}) on one process and report its test "
                    "score.",
    )
    p.add_argument("--dataset", default="synthetic",
                   help="synthetic[:NUM_NODES] (default), cora, citeseer, pubmed, planetoid:NAME, sbm:..., rmat:..., "
                        "a .npz/.parquet/.csv file or a partition directory")
    p.add_argument("--transform", choices=TRANSFORMS, default=None,
                   help="node feature transform (default: row-normalize for Planetoid, as python -m distgnn.partition "
                        "does; none otherwise)")
    add_model_options(p)
    add_task_options(p)
    add_sampling_options(p)
    add_link_options(p)
    add_edge_split_options(p)
    t = p.add_argument_group("optimisation")
    t.add_argument("--epochs", type=int, default=None, help="epochs (default: 200 on Planetoid, 100 otherwise)")
    t.add_argument("--lr", type=float, default=None, help="learning rate (default: 0.01; 0.005 for gat)")
    t.add_argument("--weight-decay", type=float, default=5e-4, help="weight decay (default: 5e-4)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--quiet", action="store_true", help="print only the final result")
    return p


def _fmt(metrics: dict) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.task == "link-prediction":
        return _link_main(args)
    try:
        task = task_from_args(args)
        fanouts = fanouts_from_text(args.fanout)
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be positive, got {args.batch_size}")
        planetoid = default_transform(args.dataset) == "row-normalize"
        config = TrainConfig(
            epochs=args.epochs if args.epochs is not None else (200 if planetoid else 100),
            lr=args.lr if args.lr is not None else (0.005 if args.model == "gat" else 0.01),
            weight_decay=args.weight_decay,
            seed=args.seed,
            select=args.select,
        )
        data = load_dataset(args.dataset, transform=args.transform, seed=args.seed)
        edge_dim = 0 if data.edge_attr is None else int(data.edge_attr.shape[1])
        build = model_from_args(args, edge_dim=edge_dim)
        import torch

        torch.manual_seed(args.seed)
        if data.y is not None:
            task.validate(data.y, {f"{s}_mask": getattr(data, f"{s}_mask") for s in ("train", "val", "test")}, data.name)
        model = build(data.num_features, task.out_channels(data.y) if data.y is not None else 1)
    except (DataError, ValueError) as exc:  # ModelError, TaskError and DataError are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 2
    transforms = ", ".join(data.transforms) or "none"
    mode = f"sampled (fan-out {args.fanout}, batch {args.batch_size})" if args.mode == "sampled" else "full-graph"
    print(f"{data} (transforms: {transforms})\nmodel: {args.model}, {sum(p.numel() for p in model.parameters())} "
          f"parameters; task: {task.name}; {config.epochs} epochs, {mode}")

    def show(s: EpochStats) -> None:
        if not args.quiet:
            train_m = _fmt({f"train {k}": v for k, v in s.train.items()})
            val_m = _fmt({f"val {k}": v for k, v in s.val.items()})
            print(f"epoch {s.epoch:4d}  loss {s.loss:.4f}  {train_m}  {val_m}  {1000 * s.seconds:7.1f} ms")

    t0 = time.perf_counter()
    try:
        result = train(model, data, config, task=task, mode=args.mode, fanouts=fanouts, batch_size=args.batch_size,
                       replace=args.replace, on_epoch=show)
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    label = "accuracy" if result.metric == "acc" else result.metric
    others = "".join(f", {k} {v:.4f}" for k, v in result.test.items() if k != result.metric)
    print(
        f"final: test {label} {result.test_acc:.4f}{others} (epoch {result.epoch}, train {result.train_acc:.4f}, "
        f"val {result.val_acc:.4f}) in {time.perf_counter() - t0:.1f} s"
    )
    return 0


DEFAULT_EDGE_SPLIT = "0.85,0.05,0.10"


def _stored_split(dataset: str) -> bool:
    """Whether ``dataset`` is a partition directory made with an edge split."""
    import os

    if not os.path.isfile(os.path.join(dataset, "manifest.json")):
        return False
    from ..partition import load_manifest

    return load_manifest(dataset).link_split is not None


def _link_main(args) -> int:
    """``--task link-prediction``: split the edges, train :func:`~distgnn.train.link.train_link`, report."""
    from ..data.links import parse_edge_split, split_links
    from .link import train_link

    try:
        fanouts = fanouts_from_text(args.fanout)
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be positive, got {args.batch_size}")
        if args.loss not in (None, "bce"):
            raise ValueError(f"link-prediction: unknown loss {args.loss!r}; choose one of bce")
        stored = _stored_split(args.dataset)
        if stored and (args.edge_split is not None or args.eval_negatives is not None or args.split_seed is not None):
            raise ValueError(f"{args.dataset}: the partition holds its edge split; --edge-split, --eval-negatives and "
                             "--split-seed apply to a dataset split here")
        fractions = parse_edge_split(args.edge_split or DEFAULT_EDGE_SPLIT)
        args.eval_negatives = 1 if args.eval_negatives is None else args.eval_negatives
        args.split_seed = 0 if args.split_seed is None else args.split_seed
        if args.eval_negatives < 0:
            raise ValueError(f"--eval-negatives must be >= 0, got {args.eval_negatives}")
        config = TrainConfig(
            epochs=args.epochs if args.epochs is not None else LINK_DEFAULTS["epochs"],
            lr=args.lr if args.lr is not None else LINK_DEFAULTS["lr"],
            weight_decay=args.weight_decay, seed=args.seed, select=args.select,
        )
        link = link_from_args(args)
        if stored:
            from .link import partition_link_split

            if args.transform not in (None, "none"):
                raise ValueError(f"{args.dataset}: a partition's features are used as stored; --transform "
                                 f"{args.transform} applies to a dataset split here")
            train_data, split = partition_link_split(args.dataset)
            data = train_data
            args.edge_split = f"{','.join(f'{v:g}' for v in split.fractions)} (stored in the partition)"
            args.eval_negatives, args.split_seed = split.eval_negatives, split.seed
        else:
            data = load_dataset(args.dataset, transform=args.transform or LINK_DEFAULTS["transform"], seed=args.seed)
            train_data, split = None, None
        if data.x is None:
            raise DataError(f"{data.name}: link prediction needs node features x")
        edge_dim = 0 if data.edge_attr is None else int(data.edge_attr.shape[1])
        build = link_model_from_args(args, edge_dim=edge_dim)
        if split is None:
            train_data, split = split_links(data, fractions, seed=args.split_seed, eval_negatives=args.eval_negatives)
            args.edge_split = args.edge_split or DEFAULT_EDGE_SPLIT
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    c = split.counts()
    mode = f"sampled (fan-out {args.fanout}, batch {args.batch_size})" if args.mode == "sampled" else "full-graph"
    print(f"{data} (transforms: {', '.join(data.transforms) or 'none'})\nedge split {args.edge_split} (seed "
          f"{args.split_seed}): {c['train']} train, {c['val']} val, {c['test']} test edges, {args.eval_negatives} "
          f"negatives per evaluation edge\nmodel: {args.model} encoder, {args.decoder} decoder; task: link-prediction "
          f"({link['negatives']} {link['neg_mode']} negatives per edge); {config.epochs} epochs, {mode}")

    def show(s: EpochStats) -> None:
        if not args.quiet:
            val_m = _fmt({f"val {k}": v for k, v in s.val.items()})
            print(f"epoch {s.epoch:4d}  loss {s.loss:.4f}  {val_m}  {1000 * s.seconds:7.1f} ms")

    t0 = time.perf_counter()
    try:
        result = train_link(build, train_data, split, config, mode=args.mode, fanouts=fanouts,
                            batch_size=args.batch_size, replace=args.replace, on_epoch=show, **link)
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    others = "".join(f", {k} {v:.4f}" for k, v in result.test.items() if k != result.metric)
    print(f"final: test {result.metric} {result.test_acc:.4f}{others} (epoch {result.epoch}, val "
          f"{result.metric} {result.val_acc:.4f}) in {time.perf_counter() - t0:.1f} s")
    return 0
