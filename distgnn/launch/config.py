"""The settings of a distributed run, shared by the driver, the CLI and the workers."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, Callable

__all__ = ["RunConfig", "ModelOptions", "Placement", "Sampling", "Robustness", "model_name"]


def model_name(model: str | Callable) -> str:
    """A model spec as text: the name itself, or ``module:qualname`` of a builder function."""
    if isinstance(model, str):
        return model
    return f"{getattr(model, '__module__', '?')}:{getattr(model, '__qualname__', type(model).__name__)}"


@dataclass(frozen=True)
class ModelOptions:
    """Model, task and optimisation (see :class:`RunConfig`)."""

    model: Any
    hidden: int | None
    num_layers: int
    dropout: float | None
    layer_args: dict | None
    task: Any
    loss: str | None
    select: str
    epochs: int
    lr: float | None
    weight_decay: float
    seed: int
    eval_every: int


@dataclass(frozen=True)
class Placement:
    """Where the workers run (see :class:`RunConfig`)."""

    workers: int
    gpus_per_worker: float
    threads_per_worker: int | None
    address: str | None


@dataclass(frozen=True)
class Sampling:
    """Full-graph or sampled mini-batch epochs (see :class:`RunConfig`)."""

    mode: str
    fanouts: tuple
    batch_size: int
    replace: bool
    cache_mb: float
    cache_policy: str
    pipeline: bool


@dataclass(frozen=True)
class Robustness:
    """Checkpoints, restarts, timeouts and the run directory (see :class:`RunConfig`)."""

    checkpoint_dir: str | None
    checkpoint_every: int
    resume: bool
    max_restarts: int
    timeout_s: float
    run_dir: str | None


@dataclass(frozen=True)
class RunConfig:
    """Everything a distributed training run needs (validated on creation).

    Built flat (``RunConfig(parts=..., workers=2, epochs=50)``); its nested frozen parts are
    :attr:`model_options`, :attr:`placement`, :attr:`sampling` and :attr:`robustness`.

    Model, task and optimisation:
        model: ``"gcn"`` / ``"sage"`` / ``"gat"``, a registered convolution layer's name (a stack
            of ``num_layers`` of it, :class:`distgnn.models.LayerStack`), ``"package.module:function"``
            or a function ``fn(in_channels, out_channels) -> nn.Module`` (see
            :func:`distgnn.models.model_builder`). It is sent to every worker, so a function must be
            picklable: a module-level function (or a spec string) is safest.
        hidden: hidden channels (``None``: the model's usual size); num_layers; dropout
            (``None``: the model's default); layer_args: keyword arguments of the stack or its layers.
        task: ``"node-classification"``, ``"multi-label"``, ``"node-regression"``
            (:func:`distgnn.tasks.get_task`) or a task object (:func:`distgnn.tasks.custom_task`);
            loss: the regression loss (``"mse"``, ``"l1"``); select: ``"last"`` reports the last
            evaluated epoch, ``"best_val"`` the epoch with the best validation primary metric.
        epochs, lr (``None``: 0.005 for gat, else 0.01), weight_decay, seed.
    Link prediction (``task="link-prediction"``, on a partition with an edge split; see
    :mod:`distgnn.launch.link`): ``model`` is the encoder; embedding_dim: its output width
    (default 64); decoder: ``"dot"`` or ``"mlp"`` (on ``h_u * h_v``); negatives: ``k`` per
    training edge; neg_sampling: ``"corrupt-dst"`` (keep the source) or ``"uniform"``;
    exclude_positives: redraw negatives that are training edges. ``batch_size`` counts
    positive edges in sampled mode.
    Placement:
        workers: Ray actors, one per device; each holds a consecutive block of parts.
        gpus_per_worker: ``0`` trains on CPU (gloo); ``1`` gives each worker a GPU (NCCL).
        threads_per_worker: torch threads (and Ray CPUs) per worker; ``None``: the local CPUs
            divided by the workers, at least 1.
        address: ``None`` joins the cluster ``$RAY_ADDRESS`` names when it is set (as ``ray.init``
            does), else starts a local Ray on 127.0.0.1; ``"auto"`` or ``"ray://host:port"`` joins
            a cluster.
    Sampled mini-batch mode (``mode="sampled"``):
        fanouts: in-neighbours sampled per hop (``-1``: all), one entry per hop; batch_size:
            training seeds per step over all workers; replace: sample with replacement;
        cache_mb: per-worker cache of the hottest remote feature rows, MiB; cache_policy: how hot
            is measured: ``"degree"`` (in-degree) or ``"prepass"`` (how often a sampling pass over
            the worker's own training seeds needs the row);
        pipeline: sample and fetch batch k+1 in a background thread while batch k trains.
        Evaluation is full-graph (every layer on the whole partition, halo exchange per hop).
    Robustness:
        checkpoint_dir: where checkpoints go (the driver's filesystem); ``None``: no checkpoints,
            so a lost worker cannot be recovered.
        checkpoint_every: epochs between checkpoints; resume: start from the newest checkpoint
            that passes its checksum (newer damaged ones are skipped with a warning).
        max_restarts: how many times a failed run is restarted from its last checkpoint.
        timeout_s: the limit of every collective and of every step the driver waits for.
        run_dir: where ``epochs.jsonl`` (one JSON object per epoch), ``result.json`` and
            ``config.json`` go; ``None``: the checkpoint directory when there is one, else
            ``$DISTGNN_RUNS/<timestamp>`` (default ``./distgnn-runs/<timestamp>``); ``""``: none.
    """

    parts: str | None = None
    model: str = "gcn"
    hidden: int | None = None
    num_layers: int = 2
    dropout: float | None = None
    epochs: int = 100
    lr: float | None = None
    weight_decay: float = 5e-4
    seed: int = 0
    workers: int = 2
    gpus_per_worker: float = 0
    threads_per_worker: int | None = None
    address: str | None = None
    checkpoint_dir: str | None = None
    checkpoint_every: int = 10
    resume: bool = False
    max_restarts: int = 3
    timeout_s: float = 300.0
    eval_every: int = 1
    mode: str = "full"
    fanouts: tuple = (10, 10)
    batch_size: int = 1024
    replace: bool = False
    cache_mb: float = 0.0
    cache_policy: str = "degree"
    pipeline: bool = True
    task: Any = "node-classification"
    loss: str | None = None
    layer_args: dict | None = None
    select: str = "last"
    run_dir: str | None = None
    decoder: str = "dot"
    embedding_dim: int | None = None
    negatives: int = 1
    neg_sampling: str = "corrupt-dst"
    exclude_positives: bool = False

    def __post_init__(self) -> None:
        def positive_int(name: str, minimum: int = 1) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")

        from ..models import model_builder
        from ..tasks import get_task

        model_builder(self.model, layer_args=self.layer_args)  # unknown names and imports fail here (ModelError)
        get_task(self.task, loss=self.loss)  # unknown task or loss (TaskError)
        if self.select not in ("last", "best_val"):
            raise ValueError(f"select must be 'last' or 'best_val', got {self.select!r}")
        for name in ("epochs", "workers", "num_layers", "checkpoint_every", "eval_every"):
            positive_int(name)
        positive_int("max_restarts", 0)
        if self.hidden is not None:
            positive_int("hidden")
        if self.threads_per_worker is not None:
            positive_int("threads_per_worker")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not self.gpus_per_worker >= 0:
            raise ValueError(f"gpus_per_worker must be >= 0, got {self.gpus_per_worker!r}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s!r}")
        if self.mode not in ("full", "sampled"):
            raise ValueError(f"mode must be 'full' or 'sampled', got {self.mode!r}")
        positive_int("batch_size")
        fanouts = tuple(self.fanouts) if isinstance(self.fanouts, (list, tuple)) else None
        if not fanouts or any(not isinstance(f, int) or isinstance(f, bool) or (f < 1 and f != -1) for f in fanouts):
            raise ValueError(f"fanouts must be a non-empty list of ints >= 1 or -1 (all neighbours), got {self.fanouts!r}")
        object.__setattr__(self, "fanouts", fanouts)
        if self.cache_policy not in ("degree", "prepass"):
            raise ValueError(f"cache_policy must be 'degree' or 'prepass', got {self.cache_policy!r}")
        if not self.cache_mb >= 0:
            raise ValueError(f"cache_mb must be >= 0, got {self.cache_mb!r}")
        positive_int("negatives")
        if self.embedding_dim is not None:
            positive_int("embedding_dim")
        from ..models.link import DECODERS
        from ..sampling.negative import NEG_MODES

        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {self.decoder!r}")
        if self.neg_sampling not in NEG_MODES:
            raise ValueError(f"neg_sampling must be one of {', '.join(NEG_MODES)}, got {self.neg_sampling!r}")
        from .link import is_link_task

        if is_link_task(self.task) and self.mode == "sampled" and self.cache_mb > 0 and self.cache_policy == "prepass":
            raise ValueError("cache_policy 'prepass' measures node seeds; link prediction caches by in-degree "
                             "(use cache_policy 'degree')")
        if self.resume and not self.checkpoint_dir:
            raise ValueError("resume needs a checkpoint directory (--checkpoint-dir)")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (0.005 if self.model == "gat" else 0.01)

    @property
    def model_name(self) -> str:
        return model_name(self.model)

    def _part(self, cls):
        return cls(**{f.name: getattr(self, f.name) for f in fields(cls)})

    @property
    def model_options(self) -> ModelOptions:
        return self._part(ModelOptions)

    @property
    def placement(self) -> Placement:
        return self._part(Placement)

    @property
    def sampling(self) -> Sampling:
        return self._part(Sampling)

    @property
    def robustness(self) -> Robustness:
        return self._part(Robustness)

    @classmethod
    def from_flat(cls, **kwargs) -> "RunConfig":
        return cls(**kwargs)

    def threads(self) -> int:
        if self.threads_per_worker is not None:
            return self.threads_per_worker
        return max(1, (os.cpu_count() or 1) // self.workers)

    def to_dict(self) -> dict:
        """The fields as a dictionary (values as given: ``model`` and ``task`` may be objects)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def describe(self) -> dict:
        """A JSON-ready view: ``model`` and ``task`` as text."""
        d = self.to_dict()
        d["model"] = self.model_name
        d["task"] = self.task if isinstance(self.task, str) else getattr(self.task, "name", repr(self.task))
        d["fanouts"] = list(self.fanouts)
        return d
