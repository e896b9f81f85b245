"""Typed per-epoch figures: what a worker reports and what the driver hands to callbacks."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

__all__ = ["EpochStats"]


@dataclass
class EpochStats:
    """One epoch's figures (global on the driver: merged over the ranks).

    ``loss``: the mean training loss over the epoch's training rows (all ranks); ``metrics``: the
    task's figures per split, ``{"train_acc": .., "val_acc": .., "test_acc": ..}`` for node
    classification (empty when the epoch was not evaluated). Times are seconds (the slowest
    rank's), traffic is bytes (all ranks). ``steps``, ``seeds`` and the sampling fields are
    filled in sampled mode (a full-graph epoch is one step).

    Read fields as attributes (``stats.loss``); ``stats["val_acc"]`` also finds a metric, and
    :meth:`to_dict` gives one flat dictionary (what the run directory's ``epochs.jsonl`` holds).
    """

    epoch: int
    loss: float = float("nan")
    metrics: dict = field(default_factory=dict)
    wall_s: float = 0.0       # the driver's wall time of the epoch
    epoch_s: float = 0.0      # the worker's time, training and evaluation
    step_s: float = 0.0       # training (full-graph: the one step)
    sync_s: float = 0.0       # gradient all-reduce
    exchange_s: float = 0.0   # halo exchange (sampled: feature fetch)
    eval_s: float = 0.0
    halo_bytes: int = 0
    steps: int = 1
    seeds: int = 0
    sample_s: float = 0.0
    fetch_s: float = 0.0
    wait_s: float = 0.0
    compute_s: float = 0.0
    sampled_edges: int = 0
    sampled_nodes: int = 0
    hits: int = 0
    misses: int = 0
    bytes_fetched: int = 0
    bytes_saved: int = 0

    @property
    def hit_rate(self) -> float:
        looked = self.hits + self.misses
        return self.hits / looked if looked else 0.0

    @property
    def evaluated(self) -> bool:
        return bool(self.metrics)

    def __getitem__(self, key: str):
        if key in self.metrics:
            return self.metrics[key]
        if key == "hit_rate" or key in _FIELDS:
            return getattr(self, key)
        raise KeyError(key)

    def __contains__(self, key: str) -> bool:
        return key in self.metrics or key == "hit_rate" or key in _FIELDS

    def to_dict(self) -> dict:
        """A flat, JSON-ready dictionary: the fields, ``hit_rate`` and the metrics (NaN as None)."""
        d = asdict(self)
        metrics = d.pop("metrics")
        d["hit_rate"] = self.hit_rate
        d.update(metrics)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


_FIELDS = frozenset(f.name for f in fields(EpochStats)) - {"metrics"}
