"""Full-batch, single-process node-classification training."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.dataset import DataError, GraphData
from ..graph import Graph

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`train_node_classifier` (validated on creation)."""

    epochs: int = 200
    lr: float = 0.01
    weight_decay: float = 5e-4
    seed: int = 0
    select: str = "last"  # "last" epoch, or "best_val": the epoch with the best validation accuracy

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
    epoch: int
    loss: float
    train_acc: float
    val_acc: float
    seconds: float


@dataclass
class TrainResult:
    history: list[EpochStats] = field(default_factory=list)
    epoch: int = 0  # the selected epoch
    train_acc: float = 0.0
    val_acc: float = 0.0
    test_acc: float = 0.0


def accuracy(logits: Tensor, y: Tensor, mask: Tensor | None) -> float:
    if mask is None or int(mask.sum()) == 0:
        return float("nan")
    return float((logits[mask].argmax(-1) == y[mask]).float().mean())


def _check(data: GraphData) -> None:
    missing = [n for n in ("x", "y", "train_mask") if getattr(data, n) is None]
    if missing:
        raise DataError(f"{data.name}: node classification needs {', '.join(missing)}")
    if int(data.train_mask.sum()) == 0:
        raise DataError(f"{data.name}: the training mask selects no node")


def train_node_classifier(
    model: nn.Module,
    data: GraphData,
    config: TrainConfig = TrainConfig(),
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Train ``model(x, graph)`` with cross-entropy on ``data.train_mask``; evaluate every epoch.

    Returns the history and the accuracies at the selected epoch (``config.select``). Models that
    define ``param_groups(weight_decay)`` choose where weight decay applies. With
    ``select="last"`` and no ``on_epoch`` callback only the last epoch is evaluated (the other
    history entries carry NaN accuracies).
    """
    _check(data)
    torch.manual_seed(config.seed)
    graph = Graph(data.edge_index, data.num_nodes)
    groups = model.param_groups(config.weight_decay) if hasattr(model, "param_groups") else model.parameters()
    opt = torch.optim.Adam(groups, lr=config.lr, weight_decay=0.0 if hasattr(model, "param_groups") else config.weight_decay)
    result, best = TrainResult(), None
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        opt.zero_grad()
        logits = model(data.x, graph)
        loss = F.cross_entropy(logits[data.train_mask], data.y[data.train_mask])
        loss.backward()
        opt.step()
        # evaluation costs a forward pass: skip it on epochs nothing looks at
        if on_epoch is None and config.select == "last" and epoch < config.epochs:
            result.history.append(EpochStats(epoch, loss.item(), float("nan"), float("nan"), time.perf_counter() - t0))
            continue
        model.eval()
        with torch.no_grad():
            logits = model(data.x, graph)
            val_loss = (
                float(F.cross_entropy(logits[data.val_mask], data.y[data.val_mask]))
                if data.val_mask is not None and int(data.val_mask.sum())
                else 0.0
            )
        stats = EpochStats(
            epoch,
            loss.item(),
            accuracy(logits, data.y, data.train_mask),
            accuracy(logits, data.y, data.val_mask),
            time.perf_counter() - t0,
        )
        result.history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        key = (stats.val_acc if stats.val_acc == stats.val_acc else 0.0, -val_loss)
        if config.select == "last" or best is None or key > best:
            best = key
            result.epoch, result.train_acc, result.val_acc = epoch, stats.train_acc, stats.val_acc
            result.test_acc = accuracy(logits, data.y, data.test_mask)
    return result


def train_sampled(
    model: nn.Module,
    data: GraphData,
    config: TrainConfig = TrainConfig(),
    fanouts: tuple[int, ...] = (10, 10),
    batch_size: int = 1024,
    replace: bool = False,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Mini-batch training on sampled neighbourhoods in one process (like PyG's NeighborLoader).

    Every epoch the training nodes are shuffled (seeded by ``config.seed`` and the epoch) and cut
    into batches of ``batch_size`` seeds; each batch trains on its ``fanouts`` neighbourhood
    (:class:`~distgnn.sampling.NeighborSampler`, seeds first, loss on the seed rows). Evaluation
    runs the model on the whole graph after every epoch. The single-process twin of
    ``python -m distgnn.launch --mode sampled``.
    """
    from ..sampling import NeighborSampler

    _check(data)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    torch.manual_seed(config.seed)
    graph = Graph(data.edge_index, data.num_nodes)
    sampler = NeighborSampler(data.edge_index, data.num_nodes, fanouts, replace=replace, seed=config.seed)
    groups = model.param_groups(config.weight_decay) if hasattr(model, "param_groups") else model.parameters()
    opt = torch.optim.Adam(groups, lr=config.lr, weight_decay=0.0 if hasattr(model, "param_groups") else config.weight_decay)
    train_ids = torch.nonzero(data.train_mask).view(-1)
    result, best = TrainResult(), None
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        g = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        order = train_ids[torch.randperm(train_ids.numel(), generator=g)]
        total, count = 0.0, 0
        for step, seeds in enumerate(torch.split(order, batch_size)):
            sub = sampler.sample(seeds, seed=config.seed * 1_000_003 + epoch * 65_537 + step)
            opt.zero_grad()
            logits = model(data.x[sub.node_ids], Graph(sub.edge_index, int(sub.node_ids.numel())))
            loss = F.cross_entropy(logits[: sub.num_seeds], data.y[seeds])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * seeds.numel()
            count += seeds.numel()
        model.eval()
        with torch.no_grad():
            logits = model(data.x, graph)
        stats = EpochStats(epoch, total / count, accuracy(logits, data.y, data.train_mask),
                           accuracy(logits, data.y, data.val_mask), time.perf_counter() - t0)
        result.history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        key = stats.val_acc if stats.val_acc == stats.val_acc else 0.0
        if config.select == "last" or best is None or key > best:
            best = key
            result.epoch, result.train_acc, result.val_acc = epoch, stats.train_acc, stats.val_acc
            result.test_acc = accuracy(logits, data.y, data.test_mask)
    return result
