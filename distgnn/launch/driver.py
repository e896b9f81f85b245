"""The driver: one Ray actor per device, epochs, checkpoints, and recovery from lost workers.

``launch(config)`` (or ``python -m distgnn.launch``):

1. checks the partition (manifest readable, at least as many parts as workers) and the
   checkpoint directory (removing temporary files a killed driver left; with ``resume``, finding
   the newest checkpoint that passes its checksum), before any worker starts;
2. connects to Ray (``address=None``: the cluster named by ``$RAY_ADDRESS`` when set, as with
   ``ray.init``, else a local cluster on 127.0.0.1, shut down at the end; ``"auto"`` /
   ``"ray://host:port"``: an existing cluster) and reserves one bundle per worker (CPUs = torch
   threads, plus GPUs) in a placement group;
3. starts the workers (:class:`~.worker.Worker`), which meet in a ``torch.distributed`` group at
   the address rank 0 reports, load consecutive blocks of parts and build identical models;
4. runs the epochs through the mode's epoch implementation (:mod:`.epochs`), hands every
   epoch's :class:`~.stats.EpochStats` to the callbacks and the run directory (:mod:`.rundir`),
   and writes a checkpoint every ``checkpoint_every`` epochs (atomically: a temporary file
   renamed; see :mod:`.checkpoint` for the format, which carries its own sha256);
5. if a worker dies, a step fails or times out, tears the whole group down, starts a new one and
   continues from the last good checkpoint (from the start when there is none), as long as the
   :class:`FailurePolicy` allows (``max_restarts``); errors in the input (bad partition, bad
   values or labels, bad arguments, a loss that is no longer finite) are not retried. The run's
   :class:`RunState` goes STARTING -> RUNNING (-> RECOVERING -> RUNNING)* -> DONE or FAILED;
6. on Ctrl-C (or any error) kills every worker and removes the placement group before
   re-raising, so no process outlives the driver.
"""
from __future__ import annotations

import contextlib
import enum
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from .checkpoint import (checkpoint_files, find_checkpoint, latest_checkpoint, load_checkpoint,
                         remove_temporary_checkpoints, save_checkpoint)
from .config import RunConfig
from .epochs import epochs_for, resolve_task
from .errors import LaunchError, WorkerLost
from .rundir import RunLog, resolve_run_dir
from .stats import EpochStats

log = logging.getLogger(__name__)

__all__ = ["launch", "start_local_ray", "Driver", "RunState", "FailurePolicy", "LaunchResult", "LaunchError",
           "WorkerLost", "save_checkpoint", "load_checkpoint", "latest_checkpoint", "find_checkpoint"]

class RunState(enum.Enum):
    """Where a run is: the driver moves STARTING -> RUNNING (-> RECOVERING -> RUNNING)* -> DONE,
    or to FAILED from any state."""

    STARTING = "starting"
    RUNNING = "running"
    RECOVERING = "recovering"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class FailurePolicy:
    """Decides what a failure leads to: a lost worker (:class:`WorkerLost`: a dead actor, a step
    that failed inside a collective or timed out) is restarted from the last good checkpoint at
    most ``max_restarts`` times; anything else (bad input, bad values, a diverged loss) fails."""

    max_restarts: int = 3

    def should_restart(self, error: BaseException, restarts: int) -> bool:
        return isinstance(error, WorkerLost) and restarts < self.max_restarts


@dataclass
class LaunchResult:
    """What a run produced: the per-epoch figures (:class:`~.stats.EpochStats`), the final
    metrics and how it went. ``train_acc`` etc. read ``metrics`` (NaN when the task has none)."""

    history: list[EpochStats] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    epochs: int = 0
    restarts: int = 0
    digests: list[str] = field(default_factory=list)
    workers: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    run_dir: str | None = None
    best_epoch: int = 0

    @property
    def train_acc(self) -> float:
        return self.metrics.get("train_acc", float("nan"))

    @property
    def val_acc(self) -> float:
        return self.metrics.get("val_acc", float("nan"))

    @property
    def test_acc(self) -> float:
        return self.metrics.get("test_acc", float("nan"))


_MODEL_KEYS = ("model", "hidden", "num_layers", "dropout", "lr", "weight_decay", "seed", "parts")
_NEWER_KEYS = ("layer_args", "task", "loss", "decoder", "embedding_dim")  # compared only when the checkpoint has them


def _model_settings(c: RunConfig) -> dict:
    """The settings a checkpoint must share with a run that resumes it (plain data: no objects)."""
    d = c.describe()
    return {k: d[k] for k in _MODEL_KEYS + _NEWER_KEYS}


def start_local_ray(num_cpus: int, **kwargs) -> None:
    """``ray.init`` of a cluster of this machine alone, all of its traffic on 127.0.0.1.

    Ray advertises the machine's outward address unless its "local only" switch is off; the
    switch is read from the environment when Ray is imported, so it is set for the processes
    Ray starts and in this (already importing) one.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    try:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
    except (ImportError, AttributeError):  # another Ray layout: the environment variable still applies
        pass
    kwargs.setdefault("address", "local")  # a new cluster even when $RAY_ADDRESS names another
    kwargs.setdefault("include_dashboard", False)
    kwargs.setdefault("log_to_driver", False)
    kwargs.setdefault("logging_level", logging.ERROR)
    kwargs.setdefault("configure_logging", False)
    with quiet_ray_logging():
        ray.init(num_cpus=num_cpus, **kwargs)


@contextlib.contextmanager
def quiet_ray_logging(level: int = logging.ERROR):
    """Hold Ray's own loggers at ``level`` while it starts: ``ray.init`` with
    ``configure_logging=False`` leaves them at WARNING, so notices such as "Token authentication
    is enabled for this Ray cluster" (the token is set up and used all the same) reach stderr
    through Python's last-resort handler. Restored afterwards; the user's logging is untouched."""
    ray_log = logging.getLogger("ray")
    before = ray_log.level
    ray_log.setLevel(max(level, before))
    try:
        yield
    finally:
        ray_log.setLevel(before)


# -- the driver -------------------------------------------------------------------------------------
class Driver:
    """Runs one distributed training job (see the module docstring); :meth:`run` does it all.

    ``on_epoch(stats)`` is called on the driver after every epoch with the global figures.
    While a group is up, :attr:`pids` lists the worker processes (rank order).
    """

    def __init__(self, config: RunConfig, on_epoch: Callable[[EpochStats], None] | None = None,
                 echo: Callable[[str], None] | None = None, progress: bool = False,
                 callbacks: Sequence[Callable[[EpochStats], None]] = ()):
        self.config = config
        self.callbacks = list(callbacks)
        self.task = resolve_task(config.task, config.loss)
        self.log = RunLog(resolve_run_dir(config.run_dir, config.checkpoint_dir))
        self.progress = progress
        self.on_epoch = on_epoch
        self.echo = echo or (lambda s: None)
        self.pids: list[int] = []
        self.attempt = 0
        self.state = RunState.STARTING
        self.policy = FailurePolicy(config.max_restarts)
        _, driver_epochs = epochs_for(config.mode, config.task)
        self._epochs = driver_epochs(config, progress=progress)
        self._actors: list = []
        self._pg = None
        self._started_ray = False
        self._tmpdir: str | None = None
        self._partition_digest: str | None = None
        self._manifest = None  # read once, in _check, and handed to the workers

    # -- preparation --------------------------------------------------------------------------------
    def _parts_dir(self) -> str:
        c = self.config
        if c.parts is not None:
            return c.parts if "://" in c.parts else os.path.abspath(c.parts)
        from ..data import sbm
        from ..partition import partition

        if self.log.path:  # kept beside the run's figures (and its final checkpoint): see _attempt
            out = os.path.join(self.log.path, "parts")
            if os.path.exists(os.path.join(out, "manifest.json")):  # a resumed run: the same partition
                return out
        else:
            self._tmpdir = tempfile.mkdtemp(prefix="distgnn-launch-")
            out = os.path.join(self._tmpdir, "parts")
        data = sbm(seed=c.seed)
        t0 = time.perf_counter()
        from .link import is_link_task

        split = {"edge_split": (0.85, 0.05, 0.10), "split_seed": c.seed} if is_link_task(c.task) else {}
        m = partition(data, num_parts=c.workers, out=out, method="metis", seed=c.seed, **split)
        self.echo(f"{data}\npartitioned into {m.num_parts} parts with METIS in {time.perf_counter() - t0:.1f} s "
                  f"(edge cut {m.quality.get('edge_cut_fraction', float('nan')):.3f})"
                  f"{', edges split 85/5/10 for link prediction' if split else ''} -> {out}")
        return out

    def _check(self, parts_dir: str):
        """Check the partition and the checkpoint directory; returns ``(manifest, blocks, starts,
        resume)`` with ``resume`` the ``(path, state)`` to start from (``None``: from epoch 1)."""
        from ..partition import PartitionError, load_manifest
        from ..partition.reader import manifest_digest
        from .shard import assign_parts, check_columns

        c = self.config
        try:
            manifest = load_manifest(parts_dir)
            self._partition_digest = manifest_digest(parts_dir)
        except PartitionError as err:
            raise LaunchError(str(err)) from None
        try:
            blocks = assign_parts(manifest.num_parts, c.workers, [p.num_edges + p.num_nodes for p in manifest.parts])
        except ValueError as err:
            raise LaunchError(f"{parts_dir}: {err}") from None
        try:
            check_columns(manifest, parts_dir, c.task)
        except ValueError as err:
            raise LaunchError(str(err)) from None
        self._manifest = manifest
        resume = None
        if c.checkpoint_dir:
            if os.path.exists(c.checkpoint_dir) and not os.path.isdir(c.checkpoint_dir):
                raise LaunchError(f"--checkpoint-dir {c.checkpoint_dir}: exists and is not a directory")
            for name in remove_temporary_checkpoints(c.checkpoint_dir):
                self._warn(f"removed {name} from {c.checkpoint_dir}: a checkpoint a killed driver left unfinished")
            if c.resume:  # a damaged or mismatched checkpoint fails before any worker starts
                if not checkpoint_files(c.checkpoint_dir):
                    raise LaunchError(f"--resume: no checkpoint in {c.checkpoint_dir}")
                resume = self._newest_good(c.checkpoint_dir)
                if resume is None:
                    _, _, skipped = find_checkpoint(c.checkpoint_dir)
                    why = "; ".join(f"{name}: {reason}" for name, reason in skipped)
                    raise LaunchError(f"--resume: no usable checkpoint in {c.checkpoint_dir} ({why})")
        starts = [manifest.parts[b[0]].node_start for b in blocks] + [manifest.num_nodes]
        return manifest, blocks, starts, resume

    def _warn(self, message: str) -> None:
        log.warning("%s", message)
        self.echo(f"warning: {message}")

    def _newest_good(self, directory: str) -> tuple[str, dict] | None:
        """``(path, state)`` of the newest checkpoint that passes its checksum, checked to suit this run;
        every newer damaged one is skipped with a warning. ``None`` when none is usable."""
        path, state, skipped = find_checkpoint(directory)
        for name, reason in skipped:
            then = f"; resuming from {os.path.basename(path)}" if path else ""
            self._warn(f"skipping {name}: {reason}{then}")
        if path is None:
            return None
        self._resumable(path, state)
        return path, state

    def _resumable(self, path: str, state: dict) -> None:
        """Refuse a checkpoint written with other model settings or for another partition."""
        c = self.config
        theirs_cfg, ours_cfg = state.get("config", {}), _model_settings(c)
        mismatch = [k for k in _MODEL_KEYS + _NEWER_KEYS if k != "parts" and (k in _MODEL_KEYS or k in theirs_cfg)
                    and theirs_cfg.get(k) != ours_cfg[k]]
        if mismatch:
            raise LaunchError(f"{path}: written with different settings ({', '.join(mismatch)}); "
                              "use the same model settings or another --checkpoint-dir")
        theirs, ours = state.get("partition"), self._partition_digest
        if theirs is not None and ours is not None and theirs != ours:
            raise LaunchError(f"{path}: written for another partition (manifest sha256 {theirs[:12]}..., this one "
                              f"{ours[:12]}...); resume on the partition it was trained on, or use another "
                              "--checkpoint-dir")

    # -- Ray ------------------------------------------------------------------------------------------
    def _connect(self) -> None:
        import ray

        c = self.config
        if ray.is_initialized():
            return
        address, origin = c.address, "--address"
        if address is None and os.environ.get("RAY_ADDRESS"):  # what ray.init would join, as Ray users expect
            address, origin = os.environ["RAY_ADDRESS"], "RAY_ADDRESS"
            self.echo(f"joining the Ray cluster at {address} (RAY_ADDRESS)")
        if address is None:
            start_local_ray(max(c.workers * c.threads(), os.cpu_count() or 1))
        else:
            try:
                with quiet_ray_logging():
                    ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR, configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise LaunchError(f"{origin} {address}: cannot join the Ray cluster ({str(err).strip().splitlines()[0]})") from None
        self._started_ray = True

    def _start_group(self, parts_dir: str, blocks: list[range], starts: list[int]) -> list[dict]:
        joined = self._start_workers()
        loaded = self._wait(
            [a.load.remote(parts_dir, list(b), starts, self._manifest) for a, b in zip(self._actors, blocks)],
            "loading the parts"
        )
        return [{**j, **w} for j, w in zip(joined, loaded)]

    def _start_workers(self) -> list[dict]:
        """Reserve the placement group, start the worker actors and join them in a process group;
        returns what every worker's ``join`` said (rank order). Parts are not loaded yet."""
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        from .worker import Worker

        c = self.config
        threads = c.threads()
        bundle = {"CPU": threads}
        if c.gpus_per_worker:
            bundle["GPU"] = c.gpus_per_worker
        self._pg = placement_group([dict(bundle) for _ in range(c.workers)], strategy="PACK")
        try:
            ray.get(self._pg.ready(), timeout=min(c.timeout_s, 120))
        except ray.exceptions.GetTimeoutError:
            have = ray.cluster_resources()
            raise LaunchError(
                f"the Ray cluster cannot host {c.workers} workers of {bundle} (it has "
                f"{have.get('CPU', 0):.0f} CPUs, {have.get('GPU', 0):.0f} GPUs); use fewer workers or threads"
            ) from None
        remote = ray.remote(Worker)
        config = c.to_dict()
        self._actors = [
            remote.options(
                num_cpus=threads, num_gpus=c.gpus_per_worker or 0, max_restarts=0, max_concurrency=1,
                scheduling_strategy=PlacementGroupSchedulingStrategy(self._pg, placement_group_bundle_index=r),
                name=None,
            ).remote(r, c.workers, config)
            for r in range(c.workers)
        ]
        host, port = self._wait([self._actors[0].rendezvous.remote()], "rendezvous")[0]
        joined = self._wait([a.join.remote(host, port) for a in self._actors], "joining the process group")
        self.pids = [j["pid"] for j in joined]
        return joined

    def _wait(self, futures: list, what: str, timeout: float | None = None) -> list:
        """All results of ``futures``; the first failure (or the timeout) raises at once."""
        import ray

        timeout = self.config.timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        pending = list(futures)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerLost(f"{what}: no answer from {len(pending)} worker(s) within {timeout:.0f} s")
            done, pending = ray.wait(pending, num_returns=1, timeout=left)
            for ref in done:
                try:
                    ray.get(ref)
                except ray.exceptions.RayActorError as err:
                    raise WorkerLost(f"{what}: a worker died ({_first_line(err)})") from None
                except ray.exceptions.RayTaskError as err:
                    cause = getattr(err, "cause", None)
                    if isinstance(cause, ValueError):  # bad input: retrying will not help
                        raise LaunchError(f"{what}: {_first_line(cause)}") from None
                    if isinstance(cause, _PROGRAMMING_ERRORS):  # a bug in the model or task code
                        raise LaunchError(f"{what}: {type(cause).__name__} in the model or task code: "
                                          f"{_first_line(cause)}") from None
                    why = f"{type(cause).__name__ if cause else 'error'}: {_first_line(cause if cause is not None else err)}"
                    # a collective that broke because a peer went away says so; anything else that
                    # repeats at the same point after a restart is deterministic (see run())
                    lost = any(w in why.lower() for w in _PEER_WORDS)
                    raise WorkerLost(f"{what}: {why}", signature=None if lost else f"{what}: {why}") from None
        return ray.get(list(futures))

    def _teardown(self) -> None:
        import ray

        for a in self._actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._actors, self.pids = [], []
        if self._pg is not None:
            from ray.util.placement_group import remove_placement_group

            try:
                remove_placement_group(self._pg)
            except Exception:  # noqa: BLE001
                pass
            self._pg = None

    # -- the run --------------------------------------------------------------------------------------
    def run(self) -> LaunchResult:
        t_start = time.perf_counter()
        c = self.config
        result = LaunchResult()
        self.state = RunState.STARTING
        try:
            parts_dir = self._parts_dir()
            _, blocks, starts, resume = self._check(parts_dir)
            self._connect()
            last_failure = None
            while True:
                try:
                    self._attempt(parts_dir, blocks, starts, resume, result)
                    break
                except WorkerLost as err:
                    self._teardown()
                    if err.signature is not None and err.signature == last_failure:
                        raise LaunchError(f"{err} (again after a restart from the same state: an error in the "
                                          "model, task or data, not a lost worker)") from None
                    last_failure = err.signature
                    if not self.policy.should_restart(err, result.restarts):
                        raise LaunchError(f"{err} (gave up after {result.restarts} restart(s))") from None
                    self.state = RunState.RECOVERING
                    result.restarts += 1
                    self.echo(f"worker lost: {err}")
                    resume = self._newest_good(c.checkpoint_dir) if c.checkpoint_dir else None
                    where = f"from {os.path.basename(resume[0])}" if resume else "from the start (no checkpoint yet)"
                    self.echo(f"restart {result.restarts}/{c.max_restarts}: new workers, resuming {where}")
        except BaseException:
            self.state = RunState.FAILED
            raise
        finally:
            self.close()
        self.state = RunState.DONE
        result.seconds = time.perf_counter() - t_start
        self.log.finish({"metrics": result.metrics, "best_epoch": result.best_epoch, "epochs": result.epochs,
                         "restarts": result.restarts, "seconds": result.seconds, "digest": result.digests[0]
                         if result.digests else None, "task": self.task.name, "model": self.config.model_name})
        return result

    def _call(self, method: str, per_rank_args: list[tuple]) -> list:
        """``method(*args)`` on every worker (rank ``r`` gets ``per_rank_args[r]``); all results."""
        return self._wait([getattr(a, method).remote(*args) for a, args in zip(self._actors, per_rank_args)],
                          f"epoch {self._epoch_no}")

    def _attempt(self, parts_dir, blocks, starts, resume: tuple[str, dict] | None, result: LaunchResult) -> None:
        c = self.config
        self.attempt += 1
        workers = self._start_group(parts_dir, blocks, starts)
        self._epochs.prepare(workers, starts)
        result.workers = workers
        if self.attempt == 1:
            for w in workers:
                self.echo(f"worker {w['rank']}: parts {w['parts'][0]}..{w['parts'][-1]}, {w['nodes']} nodes, "
                          f"{w['edges']} edges, {w['halo']} halo, {w['device']} ({w['backend']}, {w['threads']} threads), "
                          f"pid {w['pid']}, loaded in {w['load_s']:.2f} s")
        first = 1
        if resume is not None:
            path, state = resume
            self._wait([a.set_state.remote(state) for a in self._actors], "restoring the checkpoint")
            first = int(state["epoch"]) + 1
            self.echo(f"resumed from {path} (epoch {state['epoch']})")
        result.history = [h for h in result.history if h.epoch < first]  # epochs redone after a restart
        self.log.start(c.describe(), first)
        result.run_dir = self.log.path
        self.state = RunState.RUNNING
        for epoch in range(first, c.epochs + 1):
            evaluate = epoch % c.eval_every == 0 or epoch == c.epochs
            self._epoch_no = epoch
            stats = self._epochs.run(epoch, evaluate, self._call)
            result.history.append(stats)
            result.epochs = epoch
            self.log.epoch(stats)
            if c.checkpoint_dir and (epoch % c.checkpoint_every == 0 or epoch == c.epochs):
                state = self._wait([self._actors[0].state.remote()], "checkpoint")[0]
                save_checkpoint(c.checkpoint_dir, self._checkpoint_state(state, workers))
            elif c.parts is None and self.log.path and epoch == c.epochs:
                # the built-in demo: its partition is kept in the run directory, and so is the final
                # model, so that python -m distgnn.predict --checkpoint RUN_DIR can follow
                state = self._wait([self._actors[0].state.remote()], "checkpoint")[0]
                save_checkpoint(self.log.path, self._checkpoint_state(state, workers))
            if self.on_epoch is not None:
                self.on_epoch(stats)
            for callback in self.callbacks:
                callback(stats)
        self._select(result)
        result.digests = self._wait([a.digest.remote() for a in self._actors], "comparing replicas")
        if len(set(result.digests)) != 1:
            raise LaunchError(f"replicas diverged: parameter digests {sorted(set(result.digests))}")

    def _checkpoint_state(self, state: dict, workers: list[dict]) -> dict:
        """A worker's state with what a reader needs to rebuild the model: the model settings,
        the partition's manifest digest and the model's ``channels`` ``[F, C]``."""
        state["config"] = _model_settings(self.config)
        state["partition"] = self._partition_digest
        if workers and "features" in workers[0] and "classes" in workers[0]:
            state["channels"] = [int(workers[0]["features"]), int(workers[0]["classes"])]
        return state

    def _select(self, result: LaunchResult) -> None:
        """The reported metrics: the last evaluated epoch's, or (``select="best_val"``) those of
        the epoch with the best validation value of the task's primary metric."""
        evaluated = [h for h in result.history if h.metrics]
        if not evaluated:
            return
        best = evaluated[-1]
        key = f"val_{self.task.primary}"
        if self.config.select == "best_val" and all(key in h.metrics for h in evaluated):
            sign = 1.0 if self.task.higher_is_better else -1.0
            finite = [h for h in evaluated if h.metrics[key] == h.metrics[key]]
            if finite:
                best = max(finite, key=lambda h: (sign * h.metrics[key], -h.epoch))
        result.metrics, result.best_epoch = dict(best.metrics), best.epoch

    def close(self) -> None:
        """Kill the workers, drop the placement group, stop a Ray this driver started; idempotent."""
        try:
            self._teardown()
        finally:
            if self._started_ray:
                import ray

                ray.shutdown()
                self._started_ray = False
            if self._tmpdir:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                self._tmpdir = None


# exceptions a step raises only through a bug in the code it runs (never a peer going away)
_PROGRAMMING_ERRORS = (TypeError, IndexError, KeyError, AttributeError, NameError, NotImplementedError,
                       AssertionError, ZeroDivisionError)
_PEER_WORDS = ("gloo", "nccl", "connection", "timed out", "timeout", "peer", "socket", "broken pipe", "store")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else type(err).__name__


def launch(config: RunConfig | None = None, *, model=None, task=None,
           callbacks: Sequence[Callable[[EpochStats], None]] = (),
           on_epoch: Callable[[EpochStats], None] | None = None,
           echo: Callable[[str], None] | None = None, progress: bool = False, **kwargs) -> LaunchResult:
    """Train on a partition with Ray workers; ``launch(parts="cora-4", workers=2, epochs=200)``.

    Keyword arguments build a :class:`~.config.RunConfig` when ``config`` is not given.
    ``model``: a builder ``fn(in_channels, out_channels) -> nn.Module`` (or any spec
    :func:`distgnn.models.model_builder` takes) replacing ``config.model``; it is shipped to every
    worker, so it must be picklable (a module-level function, or a ``"pkg.mod:fn"`` string); the
    module's ``forward(x, graph, **inputs)`` gets ``e=`` (edge features ``[E_w, S]``) when the
    partition has them and ``forward`` takes ``e``. ``task``: a task name or object
    (:func:`distgnn.tasks.custom_task`) replacing ``config.task``. ``callbacks``: called on the
    driver with every epoch's :class:`~.stats.EpochStats` (``on_epoch`` is one more).

    Returns a :class:`LaunchResult`; raises :class:`LaunchError` with a one-line reason when the
    run cannot start or cannot be recovered.
    """
    import dataclasses

    if config is None:
        config = RunConfig(**kwargs)
    elif kwargs:
        raise TypeError("pass either a RunConfig or keyword arguments, not both")
    override = {k: v for k, v in (("model", model), ("task", task)) if v is not None}
    if override:
        config = dataclasses.replace(config, **override)
    return Driver(config, on_epoch=on_epoch, echo=echo, progress=progress, callbacks=callbacks).run()
