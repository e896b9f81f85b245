"""Single-process training of any node-level task: full-graph (:func:`train_full`) or on sampled
neighbourhoods (:func:`train_sampled`); :func:`train` picks one by ``mode``.

The model is an ``nn.Module`` or a builder ``build(in_channels, out_channels)`` (see
:func:`distgnn.models.model_builder`); the task is a :class:`~distgnn.tasks.Task` or its name. The
loss of a step is ``task.loss(out[rows], y[rows]) / len(rows)`` (the task's sum over rows divided
by the row count, as the distributed runtime does); metrics are the task's, finalised from its
additive sums. Edge features (``data.edge_attr``) are passed as ``e=`` to models whose forward
takes ``e``.
"""
from __future__ import annotations

import inspect
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn

from ..data.dataset import DataError, GraphData
from ..graph import Graph

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the trainers (validated on creation).

    epochs (default 200), lr (0.01), weight_decay (5e-4), seed (0), select: ``"last"`` epoch or
    ``"best_val"``: the epoch with the best validation score of the task's primary metric (ties:
    the lower validation loss in full-graph mode).
    """

    epochs: int = 200
    lr: float = 0.01
    weight_decay: float = 5e-4
    seed: int = 0
    select: str = "last"

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive int, got {self.epochs!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.select not in ("last", "best_val"):
            raise ValueError(f"select must be 'last' or 'best_val', got {self.select!r}")


@dataclass
class EpochStats:
    """One epoch. ``train_acc``/``val_acc`` hold the task's primary metric (accuracy for node
    classification); ``train``/``val`` all its metrics."""

    epoch: int
    loss: float
    train_acc: float
    val_acc: float
    seconds: float
    train: dict = field(default_factory=dict)
    val: dict = field(default_factory=dict)


@dataclass
class TrainResult:
    """The history and the selected epoch's metrics (``*_acc``: the task's primary metric;
    ``train``/``val``/``test``: all of them; ``metric``: the primary metric's name)."""

    history: list[EpochStats] = field(default_factory=list)
    epoch: int = 0
    train_acc: float = 0.0
    val_acc: float = 0.0
    test_acc: float = 0.0
    metric: str = "acc"
    train: dict = field(default_factory=dict)
    val: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)


def accuracy(logits: Tensor, y: Tensor, mask: Tensor | None) -> float:
    if mask is None or int(mask.sum()) == 0:
        return float("nan")
    return float((logits[mask].argmax(-1) == y[mask]).float().mean())


def _masks(data: GraphData) -> dict:
    return {f"{s}_mask": getattr(data, f"{s}_mask") for s in SPLITS}


def _check(data: GraphData, task) -> None:
    missing = [n for n in ("x", "y", "train_mask") if getattr(data, n) is None]
    if missing:
        raise DataError(f"{data.name}: {task.name.replace('-', ' ')} needs {', '.join(missing)}")
    if int(data.train_mask.sum()) == 0:
        raise DataError(f"{data.name}: the training mask selects no node")
    task.validate(data.y, _masks(data), data.name)


def _setup(model, data: GraphData, task, config: TrainConfig):
    from ..tasks import get_task

    task = get_task(task)
    _check(data, task)
    torch.manual_seed(config.seed)
    if not isinstance(model, nn.Module):
        if not callable(model):
            raise TypeError(f"model must be an nn.Module or a builder fn(in_channels, out_channels), got {type(model).__name__}")
        model = model(data.num_features, task.out_channels(data.y))
    takes_e = data.edge_attr is not None and "e" in inspect.signature(model.forward).parameters
    own = hasattr(model, "param_groups")
    groups = model.param_groups(config.weight_decay) if own else model.parameters()
    opt = torch.optim.Adam(groups, lr=config.lr, weight_decay=0.0 if own else config.weight_decay)
    return model, task, opt, takes_e


def _split_metrics(task, out: Tensor, y: Tensor, data: GraphData) -> dict[str, dict]:
    res = {}
    for s in SPLITS:
        m = getattr(data, f"{s}_mask")
        res[s] = task.metrics(task.metric_sums(out[m], y[m])) if m is not None and bool(m.any()) else {}
    return res


def _score(task, metrics: dict) -> float:
    v = metrics.get(task.primary, float("nan"))
    if v != v:
        return -math.inf
    return v if task.higher_is_better else -v


def _pick(result: TrainResult, task, epoch: int, metrics: dict) -> None:
    result.epoch = epoch
    result.train, result.val, result.test = metrics["train"], metrics["val"], metrics["test"]
    result.train_acc, result.val_acc, result.test_acc = (metrics[s].get(task.primary, float("nan")) for s in SPLITS)


def train_full(
    model: nn.Module | Callable[[int, int], nn.Module],
    data: GraphData,
    config: TrainConfig = TrainConfig(),
    *,
    task="node-classification",
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Full-graph training: every epoch one step on the training rows, then evaluation.

    Args:
        model: an ``nn.Module`` ``forward(x, graph[, e=])`` or a builder ``fn(in, out)`` (called
            after seeding with ``config.seed``, with ``out = task.out_channels(data.y)``).
        data: the graph; ``x``, ``y`` and ``train_mask`` are required; ``task.validate`` checks
            the labels of masked nodes.
        config: :class:`TrainConfig`; task: a :class:`~distgnn.tasks.Task` or its name.
        on_epoch: called with every epoch's :class:`EpochStats`.

    Returns the history and the metrics at the selected epoch (``config.select``). Models that
    define ``param_groups(weight_decay)`` choose where weight decay applies. With
    ``select="last"`` and no ``on_epoch`` only the last epoch is evaluated (the other history
    entries carry NaN metrics).
    """
    model, task, opt, takes_e = _setup(model, data, task, config)
    graph = Graph(data.edge_index, data.num_nodes)
    inputs = {"e": data.edge_attr} if takes_e else {}
    train_mask, y = data.train_mask, data.y
    n_train = int(train_mask.sum())
    result, best = TrainResult(metric=task.primary), None
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        opt.zero_grad()
        out = model(data.x, graph, **inputs)
        loss = task.loss(out[train_mask], y[train_mask]) / n_train
        loss.backward()
        opt.step()
        # evaluation costs a forward pass: skip it on epochs nothing looks at
        if on_epoch is None and config.select == "last" and epoch < config.epochs:
            result.history.append(EpochStats(epoch, loss.item(), math.nan, math.nan, time.perf_counter() - t0))
            continue
        model.eval()
        with torch.no_grad():
            out = model(data.x, graph, **inputs)
            vm = data.val_mask
            val_loss = float(task.loss(out[vm], y[vm])) / int(vm.sum()) if vm is not None and bool(vm.any()) else 0.0
        metrics = _split_metrics(task, out, y, data)
        stats = EpochStats(epoch, loss.item(), metrics["train"].get(task.primary, math.nan),
                           metrics["val"].get(task.primary, math.nan), time.perf_counter() - t0,
                           metrics["train"], metrics["val"])
        result.history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        key = (_score(task, metrics["val"]), -val_loss)
        if config.select == "last" or best is None or key > best:
            best = key
            _pick(result, task, epoch, metrics)
    return result


def train_sampled(
    model: nn.Module | Callable[[int, int], nn.Module],
    data: GraphData,
    config: TrainConfig = TrainConfig(),
    fanouts: tuple[int, ...] = (10, 10),
    batch_size: int = 1024,
    replace: bool = False,
    on_epoch: Callable[[EpochStats], None] | None = None,
    *,
    task="node-classification",
) -> TrainResult:
    """Mini-batch training on sampled neighbourhoods in one process (like PyG's NeighborLoader).

    Every epoch the training nodes are shuffled (seeded by ``config.seed`` and the epoch) and cut
    into batches of ``batch_size`` seeds (one batch when there are fewer training nodes); each
    batch trains on its ``fanouts`` neighbourhood (:class:`~distgnn.sampling.NeighborSampler`,
    seeds first, loss on the seed rows; edge features of the sampled edges as ``e=``). Evaluation
    runs the model on the whole graph after every epoch. The single-process twin of
    ``python -m distgnn.launch --mode sampled``. Arguments as :func:`train_full`.
    """
    from ..sampling import NeighborSampler

    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    model, task, opt, takes_e = _setup(model, data, task, config)
    graph = Graph(data.edge_index, data.num_nodes)
    sampler = NeighborSampler(data.edge_index, data.num_nodes, fanouts, replace=replace, seed=config.seed)
    train_ids = torch.nonzero(data.train_mask).view(-1)
    y = data.y
    result, best = TrainResult(metric=task.primary), None
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        g = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        order = train_ids[torch.randperm(train_ids.numel(), generator=g)]
        total, count = 0.0, 0
        for step, seeds in enumerate(torch.split(order, batch_size)):
            sub = sampler.sample(seeds, seed=config.seed * 1_000_003 + epoch * 65_537 + step)
            opt.zero_grad()
            inputs = {"e": data.edge_attr[sub.eid]} if takes_e else {}
            out = model(data.x[sub.node_ids], Graph(sub.edge_index, int(sub.node_ids.numel())), **inputs)
            loss_sum = task.loss(out[: sub.num_seeds], y[seeds])
            (loss_sum / seeds.numel()).backward()
            opt.step()
            total += float(loss_sum.detach())
            count += seeds.numel()
        model.eval()
        with torch.no_grad():
            out = model(data.x, graph, **({"e": data.edge_attr} if takes_e else {}))
        metrics = _split_metrics(task, out, y, data)
        stats = EpochStats(epoch, total / count, metrics["train"].get(task.primary, math.nan),
                           metrics["val"].get(task.primary, math.nan), time.perf_counter() - t0,
                           metrics["train"], metrics["val"])
        result.history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        key = _score(task, metrics["val"])
        if config.select == "last" or best is None or key > best:
            best = key
            _pick(result, task, epoch, metrics)
    return result


def train(
    model: nn.Module | Callable[[int, int], nn.Module],
    data: GraphData,
    config: TrainConfig = TrainConfig(),
    *,
    task="node-classification",
    mode: str = "full",
    fanouts: tuple[int, ...] = (10, 10),
    batch_size: int = 1024,
    replace: bool = False,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """:func:`train_full` (``mode="full"``) or :func:`train_sampled` (``mode="sampled"``)."""
    if mode == "full":
        return train_full(model, data, config, task=task, on_epoch=on_epoch)
    if mode == "sampled":
        return train_sampled(model, data, config, fanouts, batch_size, replace, on_epoch, task=task)
    raise ValueError(f"mode must be 'full' or 'sampled', got {mode!r}")


def train_node_classifier(
    model: nn.Module,
    data: GraphData,
    config: TrainConfig = TrainConfig(),
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Node classification (cross-entropy, accuracy) on the full graph: :func:`train_full`."""
    return train_full(model, data, config, task="node-classification", on_epoch=on_epoch)
