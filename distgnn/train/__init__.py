"""Single-process training: ``python -m distgnn.train`` and :func:`train` (any node-level task,
any model; full-graph or sampled)."""
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

__all__ = [
    "EpochStats",
    "TrainConfig",
    "TrainResult",
    "accuracy",
    "train",
    "train_full",
    "train_node_classifier",
    "train_sampled",
]
