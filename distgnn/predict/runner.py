"""The worker side of ``distgnn.predict``: what :class:`~distgnn.launch.worker.Worker`'s inference
methods do (``load_inference``, ``begin_inference``, ``inference_step``, ``finish_inference``).

A worker that has joined the process group:

1. ``load_inference``: reads its block of parts (checksums checked), builds the partitioned graph
   (:func:`~distgnn.launch.shard.build_graph`), rebuilds the model from the checkpoint's settings
   (``config``), with the checkpoint's ``channels`` ``(F, C)`` (or, for checkpoints without them,
   ``C`` from the labels, as training does) and loads its parameters -- a model that does not
   match is a one-line :class:`ValueError`. No optimiser, no sampler: nothing training needs;
2. ``begin_inference(batch_nodes, keep)``: a :class:`~.inference.LayerwiseRun`;
3. ``inference_step()`` once per step, on every rank together (collective);
4. ``finish_inference(directory, ...)``: writes ``part-RANK.parquet`` (original ids from
   ``nodes-map.parquet``) into ``directory`` and returns its :class:`FileInfo` and the task's metric
   sums on the train/val/test masks (exact: whole-graph outputs).
"""
from __future__ import annotations

import os
import resource
import time

import numpy as np
import torch

__all__ = ["load_inference", "begin_inference", "inference_step", "finish_inference", "peak_rss_mb", "rss_mb"]


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MiB (``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mb() -> float:
    """Resident memory of this process now, MiB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return float("nan")


def load_inference(worker, parts_dir: str, part_ids: list[int], starts: list[int], manifest, state: dict,
                   channels: tuple[int, int] | None) -> dict:
    """Load the parts and the model of ``state`` on ``worker`` (see the module docstring). Collective."""
    import torch.distributed as dist

    from ..launch.epochs import resolve_task
    from ..launch.replica import accepts_edge_features, size_lazy_layers
    from ..partition import load_part
    from ..launch.shard import build_graph, merge_parts

    t0 = time.perf_counter()
    c = worker.config
    dev = worker.device
    from ..launch.link import build_link_model, is_link_task, merge_link_edges

    parts = [load_part(parts_dir, k, manifest) for k in part_ids]
    link = is_link_task(c.task)
    worker.link_edges = merge_link_edges(parts) if link else None  # the evaluation candidates
    shard = merge_parts(parts, worker.rank, starts, consume=True)  # each part freed as it is copied
    del parts
    worker.graph = build_graph(shard, device=dev)
    worker.node_start = shard.node_start
    worker.parts_dir, worker.manifest = parts_dir, manifest
    n = shard.num_nodes
    worker.x = shard.x.to(dev)
    worker.y = None if shard.y is None else shard.y.to(dev)
    empty = torch.zeros(n, dtype=torch.bool)
    worker.masks = {s: (m if m is not None else empty).to(dev)
                    for s, m in (("train", shard.train_mask), ("val", shard.val_mask), ("test", shard.test_mask))}
    worker.task = resolve_task(c.task, c.loss)
    in_channels = int(worker.x.shape[1])
    if link:  # the output is the encoder's embedding
        from ..launch.link import DEFAULT_EMBEDDING

        if channels is not None and int(channels[0]) != in_channels:
            raise ValueError(f"{parts_dir}: the partition has {in_channels} features, the checkpoint's model takes "
                             f"{int(channels[0])}; predict on the partition it was trained on")
        out_channels = c.embedding_dim if c.embedding_dim is not None else DEFAULT_EMBEDDING
    elif channels is None:  # a checkpoint written before it recorded its channels: from the labels
        if worker.y is None:
            raise ValueError(f"{parts_dir}: the checkpoint does not record its output width and the partition has no "
                             "label column to infer it from; use a checkpoint written by this distgnn")
        top = torch.tensor([worker.task.out_channels(worker.y) if n else 0], dtype=torch.long, device=dev)
        dist.all_reduce(top, op=dist.ReduceOp.MAX)
        out_channels = int(top)
    else:
        if int(channels[0]) != in_channels:
            raise ValueError(f"{parts_dir}: the partition has {in_channels} features, the checkpoint's model takes "
                             f"{int(channels[0])}; predict on the partition it was trained on")
        out_channels = int(channels[1])
    e = shard.edge_attr
    if e is not None:
        e = (e.unsqueeze(-1) if e.dim() == 1 else e).to(dev)  # (E_w, S)
    torch.manual_seed(c.seed)
    edge_dim = 0 if e is None else int(e.shape[1])
    if link:
        model = build_link_model(c, in_channels, edge_dim).to(dev)
    else:
        model = worker._build_model(in_channels, out_channels, edge_dim).to(dev)
    takes_e = accepts_edge_features(model) and getattr(model, "takes_edges", True)  # a LinkModel's encoder's
    worker.inputs = {"e": e} if e is not None and takes_e else {}
    size_lazy_layers(model, worker.x, worker.graph, worker.inputs)
    try:
        model.load_state_dict({k: v.to(dev) for k, v in state["model"].items()})
    except (RuntimeError, KeyError) as err:
        first = str(err).strip().splitlines()
        raise ValueError(f"the checkpoint's parameters do not fit the model {c.model_name} rebuilt from its settings "
                         f"({first[1].strip() if len(first) > 1 else first[0]})") from None
    worker.model = model.eval()
    worker.out_channels = out_channels
    return {"rank": worker.rank, "parts": list(part_ids), "nodes": n, "edges": worker.graph.num_edges,
            "halo": worker.graph.num_halo, "features": in_channels, "classes": out_channels,
            "load_s": time.perf_counter() - t0, "rss_mb": rss_mb(), "peak_rss_mb": peak_rss_mb()}


def begin_inference(worker, batch_nodes: int | None, keep: tuple = ()) -> dict:
    """Start a layer-wise run; returns its step names and whether it is layer-wise."""
    from .inference import LayerwiseRun

    worker.run = LayerwiseRun(worker.model, worker.x, worker.graph, worker.inputs, batch_nodes, tuple(keep))
    worker.rss_before = rss_mb()
    return {"steps": worker.run.step_names(), "layerwise": worker.run.layerwise, "rss_mb": worker.rss_before}


def inference_step(worker) -> dict:
    """The next step on every rank (collective); its report and this process's memory."""
    r = worker.run.step()
    return {"step": r.step, "name": r.name, "rows": r.rows, "chunks": r.chunks, "seconds": r.seconds,
            "chunked": r.chunked, "rss_mb": rss_mb(), "peak_rss_mb": peak_rss_mb()}


def finish_inference(worker, directory: str | None, embed_step: int | None) -> dict:
    """Write ``directory/part-RANK.parquet`` (when ``directory`` is given) and return its file
    info, its columns and the task's metric sums ``[3 K]`` (train, val, test; ``None`` without
    labels)."""
    from ..partition.reader import load_nodes_map
    from .writer import columns_for, prediction_columns, write_part

    run = worker.run
    out = run.h  # (N_w, C)
    info = None
    width = None
    if embed_step:
        kept = run.kept[embed_step]
        width = int(np.prod(kept.shape[1:]))
    columns = columns_for(worker.task.name, worker.out_channels, width)
    if directory is not None:
        start = worker.node_start
        ids = load_nodes_map(worker.parts_dir, worker.manifest)[start:start + out.shape[0]]
        emb = run.kept.get(embed_step) if embed_step else None
        values = prediction_columns(worker.task.name, out, ids, emb)
        fi = write_part(directory, worker.rank, columns, values)
        info = {"sha256": fi.sha256, "bytes": fi.bytes, "rows": fi.rows}
    sums, link_metrics = None, None
    if worker.link_edges is not None:  # every worker's candidates scored from the embeddings (collective)
        from ..launch.link import candidate_metrics

        link_metrics = candidate_metrics(worker.task, worker.model, out, worker.graph, worker.link_edges,
                                         worker.device)
    elif worker.y is not None:
        sums = metric_sums(worker.task, out, worker.y, worker.masks).cpu().numpy()
    worker.run = None
    return {"rank": worker.rank, "file": info, "columns": columns, "sums": sums, "rows": int(out.shape[0]),
            "link_metrics": link_metrics, "peak_rss_mb": peak_rss_mb()}


def metric_sums(task, out: torch.Tensor, y: torch.Tensor, masks: dict) -> torch.Tensor:
    """The task's additive metric sums of the train, val and test rows: ``[3 K]`` float64."""
    from ..launch.epochs import SPLITS

    return torch.cat([task.metric_sums(out[masks[s]], y[masks[s]]).to(torch.float64) for s in SPLITS])


def summed(per_rank: list) -> np.ndarray | None:
    """The ranks' metric sums added in rank order (``None`` when a rank has no labels)."""
    if any(s is None for s in per_rank):
        return None
    total = np.zeros_like(per_rank[0])
    for s in per_rank:
        total = total + s
    return total
