"""Single-process training: ``python -m distgnn.train`` and :func:`train_node_classifier`."""
from .loop import EpochStats, TrainConfig, TrainResult, accuracy, train_node_classifier

__all__ = ["EpochStats", "TrainConfig", "TrainResult", "accuracy", "train_node_classifier"]
