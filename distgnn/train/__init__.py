"""Single-process training: ``python -m distgnn.train``, :func:`train` (any node-level task,
any model; full-graph or sampled) and :func:`train_link` (link prediction)."""
from .loop import (
    EpochStats,
    TrainConfig,
    TrainResult,
    accuracy,
    train,
    train_full,
    train_node_classifier,
    train_sampled,
)
from .link import evaluate_link, train_link

__all__ = [
    "EpochStats",
    "TrainConfig",
    "TrainResult",
    "accuracy",
    "train",
    "train_full",
    "train_node_classifier",
    "train_sampled",
    "evaluate_link",
    "train_link",
]
