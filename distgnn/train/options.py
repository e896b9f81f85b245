"""The command-line options ``python -m distgnn.train`` and ``python -m distgnn.launch`` share.

Each ``add_*_options(parser)`` adds one group with the same names and defaults in both CLIs;
the ``*_from_args(args)`` helpers turn the parsed values into objects (raising ``ValueError``
subclasses with a one-line message naming the option).

======================  ====================  ==================================================
option                  default               meaning
======================  ====================  ==================================================
``--model``             ``gcn``               ``gcn``/``sage``/``gat``, a registered layer name
                                              (a :class:`~distgnn.models.LayerStack`), or
                                              ``package.module:function``
``--hidden``            model's               hidden channels (16 gcn, 64 sage and layer stacks,
                                              8 per head gat)
``--layers``            2                     number of layers
``--dropout``           model's               dropout rate (0.5; 0.6 gat)
``--layer-args``        none                  JSON object of layer/stack keyword arguments
``--task``              node-classification   :data:`distgnn.tasks.TASKS`
``--loss``              task's                ``mse``/``l1`` for node-regression
``--select``            last                  report the ``last`` epoch or the ``best_val`` one
                                              (by the task's primary validation metric)
``--mode``              full                  full-graph or ``sampled`` mini-batch training
``--fanout``            10,10                 sampled: in-neighbours per hop, -1 = all
``--batch-size``        1024                  sampled: seeds per step (all of them when fewer)
``--replace``           off                   sampled: sample with replacement
``--decoder``           dot                   link-prediction: ``dot`` or ``mlp`` (on h_u * h_v)
``--embedding-dim``     64                    link-prediction: encoder output width
``--negatives``         1                     link-prediction: negatives per training positive
``--neg-sampling``      corrupt-dst           link-prediction: ``corrupt-dst`` or ``uniform``
``--exclude-positives`` off                   link-prediction: redraw negatives that are edges
``--hits-k``            50                    link-prediction: the K of Hits@K
======================  ====================  ==================================================

Link prediction changes some defaults (:data:`LINK_DEFAULTS`, applied by
:func:`link_model_from_args` and the CLIs when an option is not given): a ``gcn`` encoder of
128 hidden channels, no dropout, 100 epochs, raw node features (no row normalisation).
"""
from __future__ import annotations

import argparse
import json

__all__ = [
    "add_model_options",
    "add_sampling_options",
    "add_task_options",
    "add_link_options",
    "add_edge_split_options",
    "LINK_DEFAULTS",
    "link_from_args",
    "link_model_from_args",
    "fanouts_from_text",
    "layer_args_from_text",
    "model_from_args",
    "task_from_args",
]

DEFAULT_FANOUTS = (10, 10)
DEFAULT_BATCH_SIZE = 1024
# link prediction's defaults where they differ from the node tasks' (tuned on Cora: GCN encoder, dot decoder)
LINK_DEFAULTS = {"hidden": 128, "embedding_dim": 64, "dropout": 0.0, "epochs": 100, "lr": 0.01, "transform": "none"}


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--hidden``, ``--layers``, ``--dropout``, ``--layer-args``."""
    from ..models import MODELS, layer_names

    g = parser.add_argument_group("model")
    g.add_argument("--model", default="gcn", metavar="MODEL",
                   help=f"{', '.join(sorted(MODELS))} (ready-made stacks), a layer stack of one of "
                        f"{', '.join(layer_names())} (case-insensitive), or package.module:function "
                        "returning an nn.Module for (in_channels, out_channels) (default: gcn)")
    g.add_argument("--hidden", type=int, default=None,
                   help="hidden channels (default: 16 gcn, 64 sage and layer stacks, 8 per head gat)")
    g.add_argument("--layers", type=int, default=2, help="layers (default: 2)")
    g.add_argument("--dropout", type=float, default=None, help="dropout rate (default: the model's, 0.5; 0.6 for gat)")
    g.add_argument("--layer-args", default=None, metavar="JSON",
                   help="keyword arguments for every layer as a JSON object, e.g. '{\"K\": 3}' (default: none)")


def add_task_options(parser: argparse.ArgumentParser) -> None:
    """``--task``, ``--loss``, ``--select``."""
    from ..tasks import TASKS

    g = parser.add_argument_group("task")
    g.add_argument("--task", default="node-classification", choices=TASKS,
                   help="node-classification ([N] class ids, cross-entropy, accuracy), multi-label ([N, C] 0/1, "
                        "BCE, micro-F1), node-regression (float targets, MSE or L1, R2/MAE/RMSE), link-prediction "
                        "(edges, BCE, AUC/AP/Hits@K/MRR) (default: node-classification)")
    g.add_argument("--loss", default=None, help="loss of the task: mse (default) or l1 for node-regression")
    g.add_argument("--select", choices=["last", "best_val"], default="last",
                   help="report the last epoch or the one with the best validation score of the task's "
                        "primary metric (default: last)")


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    """``--mode``, ``--fanout``, ``--batch-size``, ``--replace``."""
    g = parser.add_argument_group("sampling")
    g.add_argument("--mode", choices=["full", "sampled"], default="full",
                   help="full-graph (default) or sampled mini-batch training")
    g.add_argument("--fanout", default=",".join(map(str, DEFAULT_FANOUTS)),
                   help="sampled mode: neighbours per hop, -1 = all (default: 10,10)")
    g.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                   help=f"sampled mode: training seeds per step; fewer training nodes make one step (default: "
                        f"{DEFAULT_BATCH_SIZE})")
    g.add_argument("--replace", action="store_true", help="sampled mode: sample neighbours with replacement")


def fanouts_from_text(text: str) -> tuple[int, ...]:
    """``"10,10"`` -> ``(10, 10)``; every entry an int >= 1 or -1."""
    try:
        fanouts = tuple(int(f) for f in text.split(","))
    except ValueError:
        raise ValueError(f"--fanout must be comma-separated integers such as 10,10 or 15,10,-1, got {text!r}") from None
    if any(f < 1 and f != -1 for f in fanouts):
        raise ValueError(f"--fanout entries must be >= 1 or -1 (all neighbours), got {text!r}")
    return fanouts


def layer_args_from_text(text: str | None) -> dict:
    """The ``--layer-args`` JSON object as a dict (``None`` -> ``{}``)."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ValueError(f"--layer-args must be a JSON object such as '{{\"K\": 3}}', got {text!r}")
    return value


def model_from_args(args: argparse.Namespace, edge_dim: int = 0):
    """``build(in_channels, out_channels)`` for the parsed model options
    (:func:`distgnn.models.model_builder`)."""
    from ..models import model_builder

    if args.hidden is not None and args.hidden < 1:
        raise ValueError(f"--hidden must be positive, got {args.hidden}")
    if args.layers < 1:
        raise ValueError(f"--layers must be positive, got {args.layers}")
    if args.dropout is not None and not 0 <= args.dropout < 1:
        raise ValueError(f"--dropout must be in [0, 1), got {args.dropout}")
    return model_builder(args.model, hidden=args.hidden, num_layers=args.layers, dropout=args.dropout,
                         layer_args=layer_args_from_text(args.layer_args), edge_dim=edge_dim)


def task_from_args(args: argparse.Namespace):
    """The :class:`~distgnn.tasks.Task` of ``--task``/``--loss``."""
    from ..tasks import get_task

    return get_task(args.task, loss=args.loss)


def add_link_options(parser: argparse.ArgumentParser) -> None:
    """``--decoder``, ``--embedding-dim``, ``--negatives``, ``--neg-sampling``, ``--exclude-positives``,
    ``--hits-k`` (used with ``--task link-prediction``)."""
    from ..models import DECODERS
    from ..sampling.negative import NEG_MODES

    g = parser.add_argument_group("link prediction (--task link-prediction)")
    g.add_argument("--decoder", choices=DECODERS, default="dot",
                   help="edge scorer: dot product or an MLP on h_u * h_v (default: dot)")
    g.add_argument("--embedding-dim", type=int, default=None,
                   help=f"encoder output width (default: {LINK_DEFAULTS['embedding_dim']})")
    g.add_argument("--negatives", type=int, default=1, help="negative edges per training positive (default: 1)")
    g.add_argument("--neg-sampling", choices=NEG_MODES, default="corrupt-dst",
                   help="negatives: corrupt the destination of each positive, or uniform pairs (default: corrupt-dst)")
    g.add_argument("--exclude-positives", action="store_true",
                   help="redraw negatives that are training edges (default: off)")
    g.add_argument("--hits-k", type=int, default=50, help="the K of the Hits@K metric (default: 50)")


def add_edge_split_options(parser: argparse.ArgumentParser) -> None:
    """``--edge-split``, ``--eval-negatives``, ``--split-seed``: the split ``python -m distgnn.train``
    makes itself (``python -m distgnn.partition`` takes the same options)."""
    g = parser.add_argument_group("edge split (--task link-prediction)")
    g.add_argument("--edge-split", default=None, metavar="TRAIN,VAL,TEST",
                   help="fractions of edges for training, validation and test; both directions of a pair share "
                        "one split (default: 0.85,0.05,0.10; a partition made with --edge-split keeps its own)")
    g.add_argument("--eval-negatives", type=int, default=None,
                   help="fixed negative edges per validation/test positive (default: 1)")
    g.add_argument("--split-seed", type=int, default=None, help="seed of the edge split and its negatives (default: 0)")


def link_from_args(args: argparse.Namespace) -> dict:
    """The keyword arguments of :func:`distgnn.train.link.train_link` for the parsed link options."""
    for name in ("negatives", "hits_k"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.embedding_dim is not None and args.embedding_dim < 1:
        raise ValueError(f"--embedding-dim must be positive, got {args.embedding_dim}")
    return {"negatives": args.negatives, "neg_mode": args.neg_sampling, "exclude_positives": args.exclude_positives,
            "decoder": args.decoder, "hits_k": args.hits_k,
            "embedding_dim": args.embedding_dim or LINK_DEFAULTS["embedding_dim"]}


def link_model_from_args(args: argparse.Namespace, edge_dim: int = 0):
    """``build(in_channels, out_channels) -> LinkModel``: the ``--model`` encoder (link defaults:
    :data:`LINK_DEFAULTS` hidden width and dropout) with ``--decoder`` and ``--embedding-dim``."""
    from ..models import link_model_builder

    encoder_args = argparse.Namespace(**vars(args))
    if encoder_args.hidden is None and args.model == "gcn":
        encoder_args.hidden = LINK_DEFAULTS["hidden"]
    if encoder_args.dropout is None:
        encoder_args.dropout = LINK_DEFAULTS["dropout"]
    kwargs = link_from_args(args)
    return link_model_builder(model_from_args(encoder_args, edge_dim=edge_dim), args.decoder, kwargs["embedding_dim"])
