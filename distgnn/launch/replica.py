"""One worker's replica of the model: parameters, optimiser and gradient synchronisation.

Every rank builds the same module from the same seed, so the replicas start identical; each
rank's loss is its share of the global mean (summed over its rows, divided by the global count),
so the SUM of the ranks' gradients is the whole-graph gradient. :meth:`Replica.sync_gradients`
flattens every gradient into one buffer and sums it with ONE all-reduce; every rank then takes
the same optimiser step. :meth:`Replica.digest` hashes the parameters so the driver can check
that the replicas stay bit-identical.
"""
from __future__ import annotations

import hashlib
import inspect

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["Replica", "accepts_edge_features", "size_lazy_layers"]


def accepts_edge_features(model: nn.Module) -> bool:
    """Whether ``model.forward`` takes ``e=`` (a parameter named ``e`` or ``**kwargs``)."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return "e" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def size_lazy_layers(model: nn.Module, x, graph, inputs: dict) -> None:
    """Give lazy layers (``UninitializedParameter``) their sizes from one forward in eval mode,
    without gradients; a collective on a partition (every rank calls it: the same model)."""
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
        model.eval()
        with torch.no_grad():
            model(x, graph, **inputs)


class Replica:
    """``model`` on ``device`` with an Adam optimiser (``model.param_groups(weight_decay)`` when
    the model defines it, else weight decay on every parameter)."""

    def __init__(self, model: nn.Module, lr: float, weight_decay: float, device: torch.device):
        self.model = model.to(device)
        self.device = device
        decoupled = hasattr(model, "param_groups")
        groups = model.param_groups(weight_decay) if decoupled else model.parameters()
        self.optimizer = torch.optim.Adam(groups, lr=lr, weight_decay=0.0 if decoupled else weight_decay)
        self.params = [p for p in model.parameters()]
        self.takes_edge_features = accepts_edge_features(model)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.params)

    def zero_grad(self) -> None:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)

    def sync_gradients(self, count: int | None = None) -> None:
        """Sum every parameter's gradient over the ranks: one flat all-reduce.

        With ``count`` (this rank's loss terms), the count rides along in the same all-reduce and
        the summed gradients are divided by the global count (a mean over the global batch).
        """
        if not self.params:
            return
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

    def step(self) -> None:
        self.optimizer.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def digest(self) -> str:
        """SHA-256 of every parameter's bytes: equal on all ranks iff the replicas are identical."""
        h = hashlib.sha256()
        for name, p in sorted(self.model.state_dict().items()):
            h.update(name.encode())
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def state(self) -> dict:
        """Model and optimiser state, CPU tensors."""
        to_cpu = lambda obj: _map_tensors(obj, lambda t: t.detach().cpu())  # noqa: E731
        return {"model": to_cpu(self.model.state_dict()), "optimizer": to_cpu(self.optimizer.state_dict())}

    def set_state(self, state: dict) -> None:
        self.model.load_state_dict(_map_tensors(state["model"], lambda t: t.to(self.device)))
        self.optimizer.load_state_dict(state["optimizer"])


def _map_tensors(obj, fn):
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    return obj
