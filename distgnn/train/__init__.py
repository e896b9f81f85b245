"""Single-process training: ``python -m distgnn.train`` and :func:`train_node_classifier`."""
from .loop import EpochStats, TrainConfig, TrainResult, accuracy, train_node_classifier, train_sampled

__all__ = ["EpochStats", "TrainConfig", "TrainResult", "accuracy", "train_node_classifier", "train_sampled"]
