"""The distributed runtime (contract 3): halo exchange, worker actors, the driver.

``python -m distgnn.launch`` or :func:`launch`. Importing this package loads neither Ray nor
Arrow; the driver imports Ray when a run starts.

Modules: :mod:`.config` (``RunConfig`` and its nested parts), :mod:`.driver` (run state, failure
policy, Ray), :mod:`.worker` (one actor per device), :mod:`.replica` (model, optimiser, gradient
all-reduce), :mod:`.epochs` (the epoch protocol) with :mod:`.full` and :mod:`.sampled`,
:mod:`.stats` (``EpochStats``), :mod:`.checkpoint` (checkpoint files), :mod:`.rundir` (the run
directory), :mod:`.shard` (a worker's parts as a partitioned graph; its halo is derived from the
edges it stores, the partition's ``halo.parquet`` is not read), :mod:`.exchange` (halo exchange).
"""
from .checkpoint import latest_checkpoint, load_checkpoint
from .config import RunConfig
from .driver import Driver, FailurePolicy, LaunchResult, RunState, launch
from .errors import LaunchError, WorkerLost
from .stats import EpochStats
from .exchange import CollectiveExchange, ExchangePlan, collective_part
from .shard import Shard, assign_parts, build_graph, merge_parts

__all__ = [
    "launch", "Driver", "RunConfig", "RunState", "FailurePolicy", "LaunchResult", "EpochStats", "LaunchError",
    "WorkerLost", "latest_checkpoint",
    "load_checkpoint", "CollectiveExchange", "ExchangePlan", "collective_part", "Shard", "assign_parts",
    "build_graph", "merge_parts",
]
