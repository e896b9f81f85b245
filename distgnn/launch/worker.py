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
   (:func:`~.shard.build_graph`), the model (same initial parameters on every rank: same seed)
   and the optimiser;
4. ``train_epoch(epoch)`` (full-graph) or ``begin_epoch`` / ``run_steps`` / ``end_epoch``
   (sampled, see :mod:`.sampled`) on every rank together, as the driver asks; a loss that is no
   longer finite is a :class:`ValueError` (the driver stops instead of retrying or reporting a
   ``nan`` run as a success);
5. ``state()`` / ``set_state()`` for checkpoints. The driver ends a worker by killing its actor.

Gradient synchronisation: each rank's loss is its share of the global mean (summed over its
training nodes, divided by the global count), so the SUM of the ranks' gradients is the
whole-graph gradient; all gradients are flattened into one buffer and summed with ONE
all-reduce, then every rank takes the same optimiser step. ``digest()`` hashes the parameters
so the driver can check that replicas stay bit-identical.

Randomness (dropout) is reseeded at every epoch from ``(seed, epoch, rank)``: a run resumed from
a checkpoint continues exactly as the uninterrupted run would have.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
import time
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .config import RunConfig

log = logging.getLogger(__name__)

__all__ = ["Worker", "mix_seed"]


def mix_seed(*values: int) -> int:
    """A 63-bit seed mixed from ``values`` (e.g. seed, epoch, rank): the same on every machine."""
    h = hashlib.blake2b(":".join(str(int(v)) for v in values).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


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
        self.model = None
        self.optimizer = None
        self.sampled = None
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
    def load(self, parts_dir: str, part_ids: list[int], starts: list[int]) -> dict:
        """Load and merge ``part_ids``, build the graph, the model and the optimiser. Collective."""
        from ..models import build_model
        from ..partition import load_manifest, load_part
        from .shard import build_graph, merge_parts

        t0 = time.perf_counter()
        manifest = load_manifest(parts_dir)
        parts = [load_part(parts_dir, k, manifest) for k in part_ids]
        shard = merge_parts(parts, self.rank, starts)
        del parts
        for name in ("x", "y", "train_mask"):
            if getattr(shard, name) is None:
                raise ValueError(f"{parts_dir}: the partition has no {name!r} column; node classification needs "
                                 "features, labels and a training mask")
        read_s = time.perf_counter() - t0
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
        stats = torch.tensor(
            [int(self.masks["train"].sum()), int(self.y.max()) + 1 if n else 0], dtype=torch.long, device=dev
        )
        counts = stats.clone()
        dist.all_reduce(counts[:1])
        dist.all_reduce(counts[1:], op=dist.ReduceOp.MAX)
        self.num_train, num_classes = int(counts[0]), int(counts[1])
        if self.num_train == 0:
            raise ValueError(f"{parts_dir}: the training mask selects no node")
        c = self.config
        kwargs = {"num_layers": c.num_layers}
        if c.dropout is not None:
            kwargs["dropout"] = c.dropout
        torch.manual_seed(c.seed)  # the same initial parameters on every rank
        model = build_model(c.model, int(self.x.shape[1]), num_classes, c.hidden, **kwargs).to(dev)
        self.model = model
        decoupled = hasattr(model, "param_groups")
        groups = model.param_groups(c.weight_decay) if decoupled else model.parameters()
        self.optimizer = torch.optim.Adam(groups, lr=c.learning_rate, weight_decay=0.0 if decoupled else c.weight_decay)
        self.params = [p for p in model.parameters()]
        self.epoch = 0
        extra = {}
        if c.mode == "sampled":
            from .sampled import SampledTrainer

            self.sampled = SampledTrainer(self, shard)
            extra["train_ids"] = (torch.nonzero(shard.train_mask).view(-1) + shard.node_start).numpy()
        return {**extra,
            "rank": self.rank, "parts": list(part_ids), "nodes": n, "edges": self.graph.num_edges,
            "halo": self.graph.num_halo, "train": int(self.masks["train"].sum()), "classes": num_classes,
            "features": int(self.x.shape[1]), "parameters": sum(p.numel() for p in self.params),
            "read_s": read_s, "load_s": time.perf_counter() - t0,
        }

    # -- training -------------------------------------------------------------------------------
    def _sync_gradients(self, count: int | None = None) -> None:
        """Sum every parameter's gradient over the ranks: one flat all-reduce.

        With ``count`` (this rank's loss terms), the count rides along in the same all-reduce and
        the summed gradients are divided by the global count (a mean over the global batch).
        """
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        parts = [g.reshape(-1) for g in grads]
        if count is not None:
            parts.append(torch.tensor([float(count)], dtype=parts[0].dtype, device=parts[0].device))
        flat = torch.cat(parts)
        dist.all_reduce(flat)
        if count is not None:
            total, flat = flat[-1], flat[:-1]
            if float(total) > 0:
                flat = flat / total
        offset = 0
        for p in self.params:
            k = p.numel()
            p.grad = flat[offset: offset + k].view_as(p)
            offset += k

    def train_epoch(self, epoch: int, evaluate: bool = True) -> dict:
        """One full-graph step (and, with ``evaluate``, accuracies); global figures, same on all ranks."""
        ex = self.graph.exchange
        ex.reset_counters()
        torch.manual_seed(mix_seed(self.config.seed, epoch, self.rank))
        t0 = time.perf_counter()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(self.x, self.graph)  # (N_w, classes)
        mask = self.masks["train"]
        loss = F.cross_entropy(logits[mask], self.y[mask], reduction="sum") / self.num_train
        loss.backward()
        t_sync = time.perf_counter()
        self._sync_gradients()
        sync_s = time.perf_counter() - t_sync
        self.optimizer.step()
        self._synchronize()
        step_s = time.perf_counter() - t0
        stats = {"epoch": epoch, "step_s": step_s, "sync_s": sync_s, "exchange_s": ex.seconds,
                 "halo_bytes": ex.bytes_sent}
        total = loss.detach().reshape(1)
        if evaluate:
            acc = self._accuracy_counts()
            total = torch.cat([total, acc])
        dist.all_reduce(total)
        stats["loss"] = float(total[0])
        _finite_loss(stats["loss"])
        if evaluate:
            stats.update(self._accuracies(total[1:]))
        stats["epoch_s"] = time.perf_counter() - t0
        self.epoch = epoch
        return stats

    # -- sampled mode (see .sampled) -------------------------------------------------------------
    def begin_epoch(self, epoch: int, seeds, steps: int) -> None:
        """Start a sampled epoch with this worker's shuffled seeds (global ids) and the step count."""
        torch.manual_seed(mix_seed(self.config.seed, epoch, self.rank))
        self.graph.exchange.reset_counters()
        self.sampled.begin_epoch(epoch, torch.as_tensor(seeds, dtype=torch.long), steps)

    def run_steps(self, count: int) -> int:
        """Run up to ``count`` sampled steps; returns the steps left in the epoch. Collective."""
        return self.sampled.run_steps(count)

    def end_epoch(self, epoch: int, evaluate: bool = True) -> dict:
        """Finish a sampled epoch: global loss and traffic, and (full-graph) accuracies. Collective."""
        s = self.sampled.end_stats()
        self.sampled.stop()
        t0 = time.perf_counter()
        total = torch.tensor([s["loss_sum"], s["seeds"]], dtype=torch.float64, device=self.device)
        if evaluate:
            total = torch.cat([total, self._accuracy_counts().double()])
        dist.all_reduce(total)
        out = {k: v for k, v in s.items() if k not in ("loss_sum",)}
        out.update(epoch=epoch, loss=float(total[0] / total[1]) if float(total[1]) else float("nan"),
                   eval_s=time.perf_counter() - t0, halo_bytes=self.graph.exchange.bytes_sent)
        if float(total[1]):
            _finite_loss(out["loss"])
        if evaluate:
            out.update(self._accuracies(total[2:]))
        self.epoch = epoch
        return out

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _accuracy_counts(self):
        self.model.eval()
        with torch.no_grad():
            pred = self.model(self.x, self.graph).argmax(-1)
        hit = pred == self.y
        out = []
        for name in ("train", "val", "test"):
            m = self.masks[name]
            out += [hit[m].sum(), m.sum()]
        return torch.stack(out).to(torch.float32)

    @staticmethod
    def _accuracies(counts) -> dict:
        c = counts.tolist()
        acc = lambda k: c[2 * k] / c[2 * k + 1] if c[2 * k + 1] else float("nan")  # noqa: E731
        return {"train_acc": acc(0), "val_acc": acc(1), "test_acc": acc(2)}

    # -- state ----------------------------------------------------------------------------------
    def digest(self) -> str:
        """SHA-256 of every parameter's bytes: equal on all ranks iff the replicas are identical."""
        h = hashlib.sha256()
        for name, p in sorted(self.model.state_dict().items()):
            h.update(name.encode())
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def state(self) -> dict:
        """Model and optimiser state (CPU tensors) and the last finished epoch."""
        to_cpu = lambda obj: _map_tensors(obj, lambda t: t.detach().cpu())  # noqa: E731
        return {"epoch": self.epoch, "model": to_cpu(self.model.state_dict()),
                "optimizer": to_cpu(self.optimizer.state_dict())}

    def set_state(self, state: dict) -> None:
        self.model.load_state_dict(_map_tensors(state["model"], lambda t: t.to(self.device)))
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])


def _finite_loss(loss: float) -> None:
    """Stop a run whose loss is NaN or infinite (the same on every rank: it is all-reduced)."""
    if not math.isfinite(loss):
        raise ValueError(f"the training loss is {loss} (it diverged, or the features hold extreme values); "
                         "lower --lr or check the input")


def _map_tensors(obj, fn):
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    return obj
