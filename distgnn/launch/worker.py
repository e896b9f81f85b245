"""The worker: one per device, holding a block of parts, training its replica of the model.

:class:`Worker` is a plain class; the driver runs it as a Ray actor (``ray.remote(Worker)``),
and tests may run it in any process that can join a ``torch.distributed`` group. Its life:

1. ``rendezvous()`` (rank 0 only): the address the group meets at (this node's address in the
   Ray cluster: 127.0.0.1 on a single machine) and a port, on which it keeps a listening socket
   bound to that address alone;
2. ``join(host, port)``: a ``TCPStore`` (rank 0 serves it on that socket, so the store never
   listens on other interfaces) and ``init_process_group`` (gloo on CPU, NCCL on GPU) with
   ``timeout_s`` on every collective; on a single machine gloo and NCCL use the loopback too;
3. ``load(parts_dir, part_ids)``: read and merge its parts, build the partitioned graph
   (:func:`~.shard.build_graph`), the task, the :class:`~.replica.Replica` (same initial
   parameters on every rank: same seed) and the epoch implementation of the mode
   (:func:`~.epochs.epochs_for`);
4. ``begin`` / ``run_steps`` / ``end`` (or ``run_epoch``: all three in one call) on every rank
   together, as the driver asks (see :mod:`.epochs`); a loss that is no longer finite is a
   :class:`ValueError` (the driver stops instead of retrying or reporting a ``nan`` run as a
   success);
5. ``state()`` / ``set_state()`` for checkpoints. The driver ends a worker by killing its actor.

For exact inference (:mod:`distgnn.predict`) a worker instead runs ``load_inference`` (parts and
the checkpoint's model, no optimiser), ``begin_inference``, ``inference_step`` per layer and
``finish_inference`` (see :mod:`distgnn.predict.runner`).

Gradient synchronisation: see :mod:`.replica` (one flat all-reduce per step; ``digest()``
hashes the parameters so the driver can check that replicas stay bit-identical).

Randomness (dropout) is reseeded at every epoch from ``(seed, epoch, rank)``: a run resumed from
a checkpoint continues exactly as the uninterrupted run would have.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from datetime import timedelta

import torch
import torch.distributed as dist

from .config import RunConfig
from .seeds import mix_seed

log = logging.getLogger(__name__)

__all__ = ["Worker", "mix_seed"]


def _listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (``port=0``: a free one), on that address only."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _loopback_interface() -> str | None:
    for _, name in socket.if_nameindex():
        if name.startswith("lo"):
            return name
    return None


class Worker:
    """One replica: ``rank`` of ``world_size``, configured by ``config`` (a :class:`RunConfig` dict)."""

    def __init__(self, rank: int, world_size: int, config: dict):
        self.rank, self.world_size = rank, world_size
        self.config = RunConfig(**config)
        torch.set_num_threads(self.config.threads())
        self.device = torch.device("cpu")
        if self.config.gpus_per_worker > 0:
            if not torch.cuda.is_available():
                raise RuntimeError(f"worker {rank}: a GPU was requested but CUDA is not available here")
            self.device = torch.device("cuda", 0)  # Ray sets CUDA_VISIBLE_DEVICES to this worker's GPU
            torch.cuda.set_device(self.device)
        self.graph = None
        self.replica = None
        self.epochs = None
        self._listener: socket.socket | None = None

    # -- process group --------------------------------------------------------------------------
    def rendezvous(self) -> tuple[str, int]:
        """``(host, port)`` where the group meets: this node's address and a port this worker now
        listens on, bound to that address only (kept open for :meth:`join`)."""
        import ray

        host = ray.util.get_node_ip_address()
        self._listener = _listen(host, 0)
        return host, self._listener.getsockname()[1]

    def join(self, host: str, port: int) -> dict:
        """Join the process group at ``host:port``; returns where this worker runs."""
        if host.startswith("127.") or host == "::1":  # a single machine: keep gloo/NCCL on the loopback too
            lo = _loopback_interface()
            if lo:
                os.environ["GLOO_SOCKET_IFNAME"] = lo
                os.environ["NCCL_SOCKET_IFNAME"] = lo
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        timeout = timedelta(seconds=self.config.timeout_s)
        if self.rank == 0:
            # the store's server takes over a socket bound to `host` alone: torch would bind every interface
            listener = self._listener if self._listener is not None else _listen(host, port)
            self._listener = None
            store = dist.TCPStore(host, port, self.world_size, True, timeout, wait_for_workers=False,
                                  master_listen_fd=listener.detach())
        else:
            store = dist.TCPStore(host, port, self.world_size, False, timeout)
        dist.init_process_group(backend, store=store, rank=self.rank, world_size=self.world_size, timeout=timeout)
        return {"rank": self.rank, "pid": os.getpid(), "host": socket.gethostname(), "device": str(self.device),
                "backend": backend, "threads": torch.get_num_threads()}

    # -- data and model -------------------------------------------------------------------------
    def load(self, parts_dir: str, part_ids: list[int], starts: list[int], manifest=None) -> dict:
        """Load and merge ``part_ids``, build the graph, the model and the optimiser. Collective.

        ``manifest``: the partition's manifest as the driver read it (``None``: read it here)."""
        from ..partition import load_manifest, load_part
        from ..progress import ProgressLine
        from .epochs import epochs_for, resolve_task
        from .replica import Replica, accepts_edge_features, size_lazy_layers
        from .shard import build_graph, check_columns, merge_parts

        t0 = time.perf_counter()
        c = self.config
        from .link import is_link_task, load_link, merge_link_edges

        if manifest is None:
            manifest = load_manifest(parts_dir)
            check_columns(manifest, parts_dir, c.task)
        parts = []
        with ProgressLine(f"worker {self.rank}: loading parts", total=len(part_ids), unit="part") as bar:
            for k in part_ids:  # a line every 30 s in the job's log (a terminal gets no bar from an actor)
                parts.append(load_part(parts_dir, k, manifest))
                bar.update()
        shard = merge_parts(parts, self.rank, starts, consume=True)  # each part freed as it is copied
        link_edges = merge_link_edges(parts) if is_link_task(c.task) else None
        del parts
        read_s = time.perf_counter() - t0
        if link_edges is not None:  # training on edges: its own loading (graph, candidates, model, epochs)
            self.task = resolve_task(c.task, c.loss)
            return {**load_link(self, shard, link_edges, read_s, t0), "parts": list(part_ids)}
        self.graph = build_graph(shard, device=self.device)
        self.node_start = shard.node_start
        dev = self.device
        self.x = shard.x.to(dev)
        self.y = shard.y.to(dev)
        n = shard.num_nodes
        empty = torch.zeros(n, dtype=torch.bool)
        self.masks = {
            "train": shard.train_mask.to(dev),
            "val": (shard.val_mask if shard.val_mask is not None else empty).to(dev),
            "test": (shard.test_mask if shard.test_mask is not None else empty).to(dev),
        }
        self.task = resolve_task(c.task, c.loss)
        local = torch.tensor([int(self.masks["train"].sum()), self.task.out_channels(self.y) if n else 0],
                             dtype=torch.long, device=dev)
        counts = local.clone()
        dist.all_reduce(counts[:1])
        dist.all_reduce(counts[1:], op=dist.ReduceOp.MAX)
        self.num_train, out_channels = int(counts[0]), int(counts[1])
        if self.num_train == 0:
            raise ValueError(f"{parts_dir}: the training mask selects no node")
        # labels checked before epoch 1 (a DataError is a ValueError: the driver stops, never retries)
        self.task.validate(self.y, self.masks, where=f"{parts_dir} (parts {part_ids[0]}..{part_ids[-1]})",
                           num_classes=out_channels)
        e = shard.edge_attr
        if e is not None:
            e = (e.unsqueeze(-1) if e.dim() == 1 else e).to(dev)  # (E_w, S)
        torch.manual_seed(c.seed)  # the same initial parameters on every rank
        model = self._build_model(int(self.x.shape[1]), out_channels, 0 if e is None else int(e.shape[1])).to(dev)
        self.inputs = {"e": e} if e is not None and accepts_edge_features(model) else {}
        size_lazy_layers(model, self.x, self.graph, self.inputs)  # the same on every rank
        self.replica = Replica(model, c.learning_rate, c.weight_decay, dev)
        self.epoch = 0
        worker_epochs, _ = epochs_for(c.mode)
        self.epochs = worker_epochs(self, shard)
        return {**self.epochs.load_info(),
            "rank": self.rank, "parts": list(part_ids), "nodes": n, "edges": self.graph.num_edges,
            "halo": self.graph.num_halo, "train": int(self.masks["train"].sum()), "classes": out_channels,
            "features": int(self.x.shape[1]), "parameters": self.replica.num_parameters,
            "read_s": read_s, "load_s": time.perf_counter() - t0,
        }

    def _build_model(self, in_channels: int, out_channels: int, edge_dim: int):
        from ..models import model_builder

        c = self.config
        build = model_builder(c.model, hidden=c.hidden, num_layers=c.num_layers, dropout=c.dropout,
                              layer_args=c.layer_args, edge_dim=edge_dim)
        return build(in_channels, out_channels)

    # -- epochs (see .epochs) -------------------------------------------------------------------
    def begin(self, epoch: int, plan=None) -> None:
        """Start epoch ``epoch`` with the driver's ``plan`` (see :mod:`.epochs`). Collective-free."""
        self.epochs.begin(epoch, plan)

    def run_steps(self, count: int) -> int:
        """Run up to ``count`` steps; returns the steps left in the epoch. Collective."""
        return self.epochs.run_steps(count)

    def end(self, epoch: int, evaluate: bool = True):
        """Finish the epoch: this rank's :class:`~.stats.EpochStats` (global loss and metrics). Collective."""
        return self.epochs.end(epoch, evaluate)

    def run_epoch(self, epoch: int, plan=None, evaluate: bool = True):
        """``begin``, every step and ``end`` in one call (one round trip from the driver)."""
        self.epochs.begin(epoch, plan)
        while self.epochs.run_steps(1 << 30):
            pass
        return self.epochs.end(epoch, evaluate)

    # -- state ----------------------------------------------------------------------------------
    def digest(self) -> str:
        """SHA-256 of every parameter's bytes: equal on all ranks iff the replicas are identical."""
        return self.replica.digest()

    def state(self) -> dict:
        """Model and optimiser state (CPU tensors) and the last finished epoch."""
        return {"epoch": self.epoch, **self.replica.state()}

    def set_state(self, state: dict) -> None:
        self.replica.set_state(state)
        self.epoch = int(state["epoch"])

    # -- exact inference (see distgnn.predict.runner) -----------------------------------------
    def load_inference(self, parts_dir: str, part_ids: list[int], starts: list[int], manifest, state: dict,
                       channels=None) -> dict:
        """Load parts and the checkpoint's model for inference only (no optimiser). Collective."""
        from ..predict.runner import load_inference

        return load_inference(self, parts_dir, part_ids, starts, manifest, state, channels)

    def begin_inference(self, batch_nodes: int | None, keep: tuple = ()) -> dict:
        from ..predict.runner import begin_inference

        return begin_inference(self, batch_nodes, keep)

    def inference_step(self) -> dict:
        """The next layer of the layer-wise run on every rank. Collective."""
        from ..predict.runner import inference_step

        return inference_step(self)

    def finish_inference(self, directory: str | None, embed_step: int | None = None) -> dict:
        """Write this worker's ``part-RANK.parquet`` into ``directory``; its metric sums."""
        from ..predict.runner import finish_inference

        return finish_inference(self, directory, embed_step)
