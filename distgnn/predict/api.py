"""``predict()``: exact distributed inference from a checkpoint, written as Parquet by original id.

The run reuses the launch runtime (:class:`~distgnn.launch.driver.Driver`: Ray, placement group,
rendezvous, process group, the same part blocks and partitioned graphs, teardown on any error or
Ctrl-C):

1. before any worker starts: the checkpoint is read (a directory: its newest checkpoint that
   passes its sha256; damaged newer ones are skipped with a warning), its model settings
   (``config``) must rebuild a model here and its ``partition`` digest must equal the sha256 of
   ``--parts``' manifest; the partition must have node features; ``--out`` must be free (or
   ``overwrite`` given and ``--out`` a prediction output);
2. every worker loads its parts and the model (``Worker.load_inference``), then runs the model
   layer by layer (:mod:`.inference`; one call per layer, so the driver shows progress), exchanging
   halo rows once per layer, in chunks of ``batch_nodes`` destination rows;
3. every worker writes ``part-RANK.parquet`` into ``.OUT.tmp-*``; the driver adds the manifest
   (:mod:`.writer`) and renames the directory into place.

Metrics (the task's, on the partition's train/val/test masks when it has labels) come from the
same exact outputs: sampled training is thus evaluated exactly.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from ..launch.driver import Driver
from ..launch.errors import LaunchError

log = logging.getLogger(__name__)

__all__ = ["PredictError", "PredictResult", "predict", "resolve_checkpoint", "DEFAULT_BATCH_NODES"]

DEFAULT_BATCH_NODES = 65536
_CONFIG_KEYS = ("model", "hidden", "num_layers", "dropout", "lr", "weight_decay", "seed", "layer_args", "task", "loss",
                "decoder", "embedding_dim")


class PredictError(ValueError):
    """Inference cannot start or failed on its input; the message is one line naming the option."""


@dataclass
class PredictResult:
    """What :func:`predict` did: where the output is, its columns and rows, the metrics on the
    partition's masks (``{"val_acc": ..}``; empty without labels), per-worker figures (``workers``:
    rank, nodes, ``peak_rss_mb``, ...), per-layer reports and the checkpoint's digest."""

    out: str | None
    num_nodes: int = 0
    columns: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    workers: list = field(default_factory=list)
    layers: list = field(default_factory=list)
    layerwise: bool = True
    checkpoint: str = ""
    checkpoint_sha256: str = ""
    seconds: float = 0.0


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(8 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_checkpoint(path: str, warn: Callable[[str], None] = log.warning) -> tuple[str, dict]:
    """``(file, state)`` of ``path``: a checkpoint file, or a directory's newest checkpoint that
    passes its checksum (newer damaged ones are skipped, each with a warning)."""
    from ..launch.checkpoint import find_checkpoint, load_checkpoint

    if not os.path.exists(path):
        raise PredictError(f"--checkpoint {path}: no such file or directory")
    if os.path.isdir(path):
        found, state, skipped = find_checkpoint(path)
        for name, why in skipped:
            warn(f"skipping {name}: {why}")
        if found is None:
            why = "; ".join(f"{n}: {r}" for n, r in skipped) or "no checkpoint-*.pt file"
            raise PredictError(f"--checkpoint {path}: no usable checkpoint ({why})")
        return found, state
    try:
        return path, load_checkpoint(path)
    except LaunchError as err:
        raise PredictError(f"--checkpoint {err}") from None


def _run_config(ckpt: str, state: dict, overrides: dict, model, task):
    """The :class:`RunConfig` that rebuilds the checkpoint's model (mode full, no run directory)."""
    from ..launch.config import RunConfig

    settings = state.get("config")
    if not isinstance(settings, dict) or "model" not in settings:
        raise PredictError(f"--checkpoint {ckpt}: holds no model settings (config); it was not written by "
                           "distgnn.launch")
    kw = {k: settings[k] for k in _CONFIG_KEYS if k in settings}
    if model is not None:
        kw["model"] = model
    if task is not None:
        kw["task"] = task
    try:
        return RunConfig(**kw, **overrides, mode="full", run_dir="", checkpoint_dir=None)
    except (ValueError, TypeError) as err:
        name = kw.get("model")
        raise PredictError(f"--checkpoint {ckpt}: its model {name!r} (task {kw.get('task')!r}) cannot be rebuilt "
                           f"here ({str(err).strip().splitlines()[0]}); pass model=/task= (the builder and task it "
                           "was trained with)") from None


class _PredictDriver(Driver):
    """The launch driver, running inference instead of epochs (see the module docstring)."""

    def infer(self, parts_dir: str, manifest, digest: str, state: dict, blocks, starts, *, batch_nodes,
              embeddings: int | None, directory: str | None, result: PredictResult) -> list[dict]:
        from tqdm import tqdm

        self._manifest, self._partition_digest = manifest, digest
        self._connect()
        joined = self._start_workers()
        channels = state.get("channels")
        model_state = {"model": state["model"]}
        loaded = self._wait([a.load_inference.remote(parts_dir, list(b), starts, manifest, model_state, channels)
                             for a, b in zip(self._actors, blocks)], "loading the parts and the model")
        result.workers = [{**j, **w} for j, w in zip(joined, loaded)]
        for w in result.workers:
            self.echo(f"worker {w['rank']}: parts {w['parts'][0]}..{w['parts'][-1]}, {w['nodes']} nodes, "
                      f"{w['edges']} edges, {w['halo']} halo, pid {w['pid']}, loaded in {w['load_s']:.2f} s")
        keep = (embeddings,) if embeddings else ()
        begun = self._wait([a.begin_inference.remote(batch_nodes, keep) for a in self._actors], "starting inference")
        steps = begun[0]["steps"]
        result.layerwise = begun[0]["layerwise"]
        if embeddings and (not result.layerwise or not 1 <= embeddings <= len(steps)):
            if not result.layerwise:
                raise PredictError(f"--embeddings {embeddings}: the model {self.config.model_name} does not expose its "
                                   "layers (the layer-wise protocol, distgnn.models.builder.layer_steps); only its "
                                   "output can be exported")
            raise PredictError(f"--embeddings {embeddings}: the model has {len(steps)} layer steps "
                               f"({', '.join(f'{i + 1}={s}' for i, s in enumerate(steps))}); choose 1..{len(steps)}")
        if not result.layerwise:
            self.echo(f"the model {self.config.model_name} does not expose its layers: one whole forward per worker")
        tty = self.progress and sys.stderr.isatty()
        with tqdm(total=len(steps), desc="predict", unit="layer", disable=not tty) as bar:
            for i in range(len(steps)):
                per_rank = self._wait([a.inference_step.remote() for a in self._actors], f"layer {i + 1}")
                r = per_rank[0]
                peak = max(p["peak_rss_mb"] for p in per_rank)
                rows = sum(p["rows"] for p in per_rank)
                chunks = sum(p["chunks"] for p in per_rank)
                secs = max(p["seconds"] for p in per_rank)
                result.layers.append({"step": r["step"], "name": r["name"], "rows": rows, "chunks": chunks,
                                      "seconds": secs, "chunked": r["chunked"], "peak_rss_mb": peak})
                bar.update(1)
                if not tty:
                    how = f"in {chunks} chunks" if r["chunked"] else "whole parts"
                    self.echo(f"layer {i + 1}/{len(steps)} {r['name']}: {rows} rows {how}, {secs:.2f} s, "
                              f"peak RSS {peak:.0f} MiB per worker")
        return self._wait([a.finish_inference.remote(directory, embeddings) for a in self._actors], "writing")


def predict(parts: str | None = None, checkpoint: str | None = None, out: str | None = None, *,
            embeddings: int | None = None, workers: int = 2, address: str | None = None,
            batch_nodes: int | None = DEFAULT_BATCH_NODES, overwrite: bool = False,
            threads_per_worker: int | None = None, gpus_per_worker: float = 0, timeout_s: float = 300.0,
            model=None, task=None, echo: Callable[[str], None] | None = None, progress: bool = False) -> PredictResult:
    """Exact inference of a checkpoint's model on every node of a partition, with Ray workers.

    Args:
        parts: partition directory (default: ``parts/`` beside the checkpoint, which the built-in
            demo of ``python -m distgnn.launch`` keeps in its run directory).
        checkpoint: a checkpoint file or a directory of them (its newest good one), from
            ``distgnn.launch`` in full-graph or sampled mode.
        out: output directory (``OUT/part-*.parquet`` + ``_manifest.json``; see :mod:`.writer`);
            ``None``: compute the metrics only.
        embeddings: also export the activation of this layer step (1-based; ``--embeddings``).
        workers, address, threads_per_worker, gpus_per_worker, timeout_s: as for ``launch``.
        batch_nodes: destination rows per chunk of a layer (``None``/0: a whole part at once).
        overwrite: replace an existing ``out`` (a prediction output only), atomically.
        model, task: the builder / task the checkpoint was trained with, for checkpoints whose
            model is not a name this process can rebuild (a Python callable).
        echo: receives progress lines; progress: a tqdm bar on a terminal.

    Returns a :class:`PredictResult`. Raises :class:`PredictError` (one line) on bad input, and
    :class:`~distgnn.launch.errors.LaunchError` when the workers fail.
    """
    from ..partition import PartitionError, load_manifest
    from ..partition.reader import manifest_digest
    from ..launch.shard import assign_parts
    from .writer import FORMAT, VERSION, PredictionOutput, write_manifest

    t0 = time.perf_counter()
    say = echo or (lambda s: None)
    if checkpoint is None:
        raise PredictError("--checkpoint is required (a checkpoint file or a directory of them)")
    if embeddings is not None and (isinstance(embeddings, bool) or not isinstance(embeddings, int) or embeddings < 1):
        raise PredictError(f"--embeddings must be a layer step >= 1, got {embeddings!r}")
    bad_batch = isinstance(batch_nodes, bool) or not isinstance(batch_nodes, int) or batch_nodes < 0
    if batch_nodes is not None and bad_batch:
        raise PredictError(f"--batch-nodes must be an integer >= 0 (0: whole parts), got {batch_nodes!r}")
    ckpt, state = resolve_checkpoint(checkpoint, lambda m: (log.warning("%s", m), say(f"warning: {m}")))
    if parts is None:
        beside = os.path.join(os.path.dirname(os.path.abspath(ckpt)), "parts")
        if not os.path.exists(os.path.join(beside, "manifest.json")):
            raise PredictError(f"--parts is required: no partition beside {ckpt} (give the partition the model was "
                               "trained on)")
        parts = beside
    parts_dir = parts if "://" in parts else os.path.abspath(parts)
    try:
        manifest = load_manifest(parts_dir)
        digest = manifest_digest(parts_dir)
    except PartitionError as err:
        raise PredictError(f"--parts {err}") from None
    theirs = state.get("partition")
    if theirs is not None and theirs != digest:
        raise PredictError(f"--checkpoint {ckpt}: written for another partition (manifest sha256 {theirs[:12]}..., "
                           f"--parts {parts} has {digest[:12]}...); predict on the partition it was trained on")
    if manifest.node_field("features") is None:
        raise PredictError(f"--parts {parts}: the partition has no features column; inference needs node features")
    if "model" not in state:
        raise PredictError(f"--checkpoint {ckpt}: holds no model parameters")
    overrides = dict(workers=workers, address=address, threads_per_worker=threads_per_worker,
                     gpus_per_worker=gpus_per_worker, timeout_s=timeout_s, parts=parts_dir)
    config = _run_config(ckpt, state, overrides, model, task)
    from ..launch.link import is_link_task

    if is_link_task(config.task) and manifest.link_split is None:
        raise PredictError(f"--checkpoint {ckpt}: a link-prediction model, and --parts {parts} has no edge split "
                           "(its evaluation edges); predict on the partition it was trained on")
    try:
        blocks = assign_parts(manifest.num_parts, workers, [p.num_edges + p.num_nodes for p in manifest.parts])
    except ValueError as err:
        raise PredictError(f"--workers: {err}") from None
    starts = [manifest.parts[b[0]].node_start for b in blocks] + [manifest.num_nodes]
    result = PredictResult(out=None, num_nodes=manifest.num_nodes, checkpoint=ckpt,
                           checkpoint_sha256=_sha256_file(ckpt))
    target = None
    if out is not None:
        from ..partition.storage import open_fs

        try:
            fs, root = open_fs(out)
            target = PredictionOutput(fs, root, overwrite=overwrite, inputs=[parts_dir, ckpt])
        except PartitionError as err:
            raise PredictError(str(err)) from None
    say(f"predict: {config.model_name} from {ckpt} (epoch {state.get('epoch', '?')}) on {parts} "
        f"({manifest.num_nodes} nodes, {manifest.num_parts} parts), {workers} workers, "
        f"{'batches of ' + str(batch_nodes) + ' nodes' if batch_nodes else 'whole parts'} per layer")
    driver = _PredictDriver(config, echo=say, progress=progress)
    try:
        if target is None:
            finished = driver.infer(parts_dir, manifest, digest, state, blocks, starts, batch_nodes=batch_nodes,
                                    embeddings=embeddings, directory=None, result=result)
        else:
            with target as tmp:
                directory = tmp if "://" not in out else f"{out.split('://')[0]}://{tmp}"
                finished = driver.infer(parts_dir, manifest, digest, state, blocks, starts, batch_nodes=batch_nodes,
                                        embeddings=embeddings, directory=directory, result=result)
                files = {f"part-{f['rank']:05d}.parquet": f["file"] for f in finished}
                result.columns = finished[0]["columns"]
                manifest_out = {
                    "format": FORMAT, "version": VERSION, "model": config.model_name,
                    "task": driver.task.name,
                    "checkpoint": {"path": ckpt, "sha256": result.checkpoint_sha256, "epoch": state.get("epoch")},
                    "partition": {"path": parts_dir, "sha256": digest},
                    "num_nodes": manifest.num_nodes, "columns": result.columns, "embeddings": embeddings,
                    "layerwise": result.layerwise, "batch_nodes": batch_nodes,
                    "metrics": {}, "files": files, "created_by": "distgnn.predict",
                }
                result.metrics = _metrics(driver.task, finished)
                manifest_out["metrics"] = result.metrics
                write_manifest(directory, manifest_out)
                target.commit()
                result.out = target.target
    finally:
        driver.close()
    if out is None:
        result.columns = finished[0]["columns"]
        result.metrics = _metrics(driver.task, finished)
    peaks = {f["rank"]: f["peak_rss_mb"] for f in finished}
    for w in result.workers:
        w["peak_rss_mb"] = peaks.get(w["rank"], w.get("peak_rss_mb"))
    result.seconds = time.perf_counter() - t0
    return result


def _metrics(task, finished: list[dict]) -> dict:
    import torch

    from ..launch.epochs import finish_metrics
    from .runner import summed

    if finished and finished[0].get("link_metrics") is not None:  # exact already: over all workers' candidates
        return dict(finished[0]["link_metrics"])

    total = summed([f["sums"] for f in finished])
    if total is None:
        return {}
    return finish_metrics(task, torch.from_numpy(total))
