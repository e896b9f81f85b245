"""Node-level tasks: what a model's output means, its loss, its metrics and which labels are valid.

A :class:`Task` is the one object the trainers (single-process and distributed) consult about
labels. Its two rules make distributed results exact:

* :meth:`Task.loss` returns the **sum** over the rows it is given (not the mean): the caller
  divides by the global number of rows, so the per-rank losses add up to the whole-graph loss.
* :meth:`Task.metric_sums` returns a 1-D float64 vector of **additive** sums (counts, hits,
  squared errors, ...); ranks all-reduce the vectors and :meth:`Task.metrics` finalises the sum,
  so a metric computed on parts equals the metric computed on the whole graph.

=====================  ==========================  ==============================  ==============
task                   labels ``y``                loss                            metrics
=====================  ==========================  ==============================  ==============
node-classification    ``[N]`` int64 ``0..C-1``,   cross-entropy                   ``acc``
                       ``-1`` unlabelled
multi-label            ``[N, C]`` 0/1 (int or      binary cross-entropy with       ``micro_f1``,
                       float), ``-1``/NaN          logits, mean over the C          ``acc`` (per
                       unlabelled                  columns of a row                label)
node-regression        ``[N]`` or ``[N, C]``       ``mse`` (default) or ``l1``,    ``r2``, ``mae``,
                       float, NaN unlabelled       mean over the C columns          ``rmse``
link-prediction        edges (:class:`LinkPrediction`: candidate pairs with 0/1 labels, BCE with logits,
                       ``auc``, ``ap``, ``hits@K``, ``mrr`` computed exactly over all candidates)
=====================  ==========================  ==============================  ==============

Nodes outside every mask may be unlabelled; a masked node must carry a valid label
(:meth:`Task.validate` raises a one-line :class:`~distgnn.data.DataError` otherwise).

``r2`` is the mean over target columns of ``1 - SSE_c / SST_c`` with
``SST_c = Σy² - (Σy)²/n`` (the coefficient of determination, as scikit-learn's ``r2_score`` with
``multioutput="uniform_average"``); ``mae`` and ``rmse`` average over rows and columns.
"""
from __future__ import annotations

import math
from typing import Callable, Protocol, Sequence, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from .data.dataset import DataError

__all__ = [
    "TASKS",
    "MultiLabel",
    "NodeClassification",
    "NodeRegression",
    "Task",
    "TaskError",
    "custom_task",
    "LinkPrediction",
    "get_task",
]


class TaskError(ValueError):
    """An unknown task or an option the task does not take; the message names the choices."""


@runtime_checkable
class Task(Protocol):
    name: str
    primary: str
    higher_is_better: bool

    def out_channels(self, y: Tensor) -> int: ...

    def validate(self, y: Tensor, masks: dict, where: str, num_classes: int | None = None) -> None: ...

    def loss(self, out: Tensor, y: Tensor) -> Tensor: ...

    def metric_sums(self, out: Tensor, y: Tensor) -> Tensor: ...

    def metrics(self, sums: Tensor) -> dict[str, float]: ...


def _masked(masks: dict) -> list[tuple[str, Tensor]]:
    return [(name, m) for name, m in (masks or {}).items() if m is not None]


def _first(bad: Tensor) -> int:
    return int(bad.nonzero()[0, 0])


def _count(y: Tensor, out: Tensor) -> Tensor:
    """The number of rows as a float64 scalar on the output's device (no host sync)."""
    return torch.tensor(float(y.shape[0]), dtype=torch.float64, device=out.device)


def _div(a: float, b: float) -> float:
    return a / b if b else float("nan")


class NodeClassification:
    """One class per node: cross-entropy on logits ``[n, C]``, accuracy.

    Shapes:
        out: ``[n, C]`` logits; y: ``[n]`` int64 class ids.
        metric_sums: ``[2]`` float64 ``(rows, correct)``.
    """

    name = "node-classification"
    primary = "acc"
    higher_is_better = True
    losses = ("cross-entropy",)

    def out_channels(self, y: Tensor) -> int:
        return int(y.max()) + 1 if y.numel() else 0

    def validate(self, y: Tensor, masks: dict, where: str, num_classes: int | None = None) -> None:
        if y.dim() != 1 or y.dtype != torch.long:
            raise DataError(f"{where}: {self.name} needs [N] int64 class ids, got {tuple(y.shape)} {y.dtype} "
                            "(use --task multi-label or node-regression for other labels)")
        for name, m in _masked(masks):
            if bool((m & (y < 0)).any()):
                raise DataError(f"{where}: node {_first(m & (y < 0))} is in {name} but has no label (-1); label it or "
                                "leave it out of the mask")
            if num_classes is not None and bool((m & (y >= num_classes)).any()):
                node = _first(m & (y >= num_classes))
                raise DataError(f"{where}: node {node} in {name} has class {int(y[node])} outside [0, {num_classes})")

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(out, y, reduction="sum")

    def metric_sums(self, out: Tensor, y: Tensor) -> Tensor:
        correct = (out.argmax(-1) == y).sum()
        return torch.stack([_count(y, out), correct.to(torch.float64)])

    def metrics(self, sums: Tensor) -> dict[str, float]:
        n, correct = (float(v) for v in sums)
        return {"acc": _div(correct, n)}

    def __repr__(self) -> str:
        return "NodeClassification()"


class MultiLabel:
    """Several independent 0/1 labels per node: binary cross-entropy with logits (mean over the
    ``C`` columns of each row, summed over rows), micro-F1 and per-label accuracy (a label is
    predicted when its logit is positive).

    Shapes:
        out: ``[n, C]`` logits; y: ``[n, C]`` 0/1 (any dtype).
        metric_sums: ``[5]`` float64 ``(rows, tp, fp, fn, correct labels)``.
    """

    name = "multi-label"
    primary = "micro_f1"
    higher_is_better = True
    losses = ("bce",)

    def out_channels(self, y: Tensor) -> int:
        return int(y.shape[1]) if y.dim() == 2 else 0

    def validate(self, y: Tensor, masks: dict, where: str, num_classes: int | None = None) -> None:
        if y.dim() != 2:
            raise DataError(f"{where}: {self.name} needs an [N, C] 0/1 label column, got shape {tuple(y.shape)}")
        if num_classes is not None and y.shape[1] != num_classes:
            raise DataError(f"{where}: {self.name} labels have {y.shape[1]} columns, expected {num_classes}")
        missing = (y < 0).any(1) | (torch.isnan(y).any(1) if y.is_floating_point() else False)
        for name, m in _masked(masks):
            if bool((m & missing).any()):
                raise DataError(f"{where}: node {_first(m & missing)} is in {name} but has no label (-1 or NaN); label "
                                "it or leave it out of the mask")
            bad = m & ((y != 0) & (y != 1)).any(1)
            if bool(bad.any()):
                raise DataError(f"{where}: node {_first(bad)} in {name} has a multi-label value other than 0 or 1")

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(out, y.to(out.dtype), reduction="none").mean(1).sum()

    def metric_sums(self, out: Tensor, y: Tensor) -> Tensor:
        pred, truth = out > 0, y > 0.5
        counts = [(pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum(), (pred == truth).sum()]
        return torch.stack([_count(y, out)] + [c.to(torch.float64) for c in counts])  # n, tp, fp, fn, correct

    def metrics(self, sums: Tensor) -> dict[str, float]:
        n, tp, fp, fn, correct = (float(v) for v in sums)
        labels = tp + fn + fp + (correct - tp)  # = n * C
        return {"micro_f1": _div(2 * tp, 2 * tp + fp + fn), "acc": _div(correct, labels)}

    def __repr__(self) -> str:
        return "MultiLabel()"


class NodeRegression:
    """Float targets per node: ``mse`` or ``l1`` loss (mean over the ``C`` target columns of a
    row, summed over rows), R², MAE and RMSE.

    Args:
        loss: ``"mse"`` (default) or ``"l1"``.

    Shapes:
        out: ``[n, C]`` (or ``[n]``); y: ``[n]`` (one target, ``C = 1``) or ``[n, C]`` float.
        metric_sums: ``[1 + 4 C]`` float64 ``(rows, Σy [C], Σy² [C], SSE [C], SAE [C])``.
    """

    name = "node-regression"
    primary = "r2"
    higher_is_better = True
    losses = ("mse", "l1")

    def __init__(self, loss: str = "mse") -> None:
        if loss not in self.losses:
            raise TaskError(f"{self.name}: unknown loss {loss!r}; choose one of {', '.join(self.losses)}")
        self.loss_name = loss

    def out_channels(self, y: Tensor) -> int:
        return 1 if y.dim() == 1 else int(y.shape[1])

    def validate(self, y: Tensor, masks: dict, where: str, num_classes: int | None = None) -> None:
        if y.dim() not in (1, 2) or not y.is_floating_point():
            raise DataError(f"{where}: {self.name} needs float targets [N] or [N, C], got {tuple(y.shape)} {y.dtype}")
        rows = y if y.dim() == 2 else y[:, None]
        nan, inf = torch.isnan(rows).any(1), torch.isinf(rows).any(1)
        if bool(inf.any()):
            raise DataError(f"{where}: target of node {_first(inf)} is infinite (targets must be finite; NaN marks no label)")
        for name, m in _masked(masks):
            if bool((m & nan).any()):
                raise DataError(f"{where}: node {_first(m & nan)} is in {name} but has no target (NaN); give it one or "
                                "leave it out of the mask")

    def _pair(self, out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        y = (y if y.dim() == 2 else y[:, None]).to(out.dtype)  # (n, C)
        out = out if out.dim() == 2 else out[:, None]  # (n, C)
        if out.shape != y.shape:
            raise TaskError(f"{self.name}: model output {tuple(out.shape)} does not match targets {tuple(y.shape)}")
        return out, y

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        out, y = self._pair(out, y)
        err = (out - y).square() if self.loss_name == "mse" else (out - y).abs()
        return err.mean(1).sum()

    def metric_sums(self, out: Tensor, y: Tensor) -> Tensor:
        out, y = self._pair(out.detach().double(), y)
        d = out - y
        return torch.cat([_count(y, out)[None], y.sum(0), y.square().sum(0), d.square().sum(0), d.abs().sum(0)])

    def metrics(self, sums: Tensor) -> dict[str, float]:
        sums = sums.double()
        c = (sums.numel() - 1) // 4
        n = float(sums[0])
        sy, syy, sse, sae = sums[1:].view(4, c)
        if n == 0:
            return {"r2": float("nan"), "mae": float("nan"), "rmse": float("nan")}
        sst = syy - sy.square() / n
        r2 = float((1 - sse / sst).mean()) if bool((sst > 0).all()) else float("nan")
        return {"r2": r2, "mae": float(sae.sum()) / (n * c), "rmse": math.sqrt(float(sse.sum()) / (n * c))}

    def __repr__(self) -> str:
        return f"NodeRegression(loss={self.loss_name!r})"


class LinkPrediction:
    """Whether an edge exists: binary cross-entropy on pair logits; AUC, AP, Hits@K and MRR.

    Args:
        hits_k: the ``K`` of Hits@K (default 50, as OGB's ``ogbl-collab``).

    Metrics (:meth:`metrics`), exact over all the candidates given (the runtime gathers every
    worker's scores first; they are not averaged per worker), in float64:

    * ``auc``: area under the ROC curve, ``(Σ rank(pos) - P(P+1)/2) / (P·Q)`` with average ranks
      (a positive tied with a negative counts 1/2), as scikit-learn's ``roc_auc_score``;
    * ``ap``: average precision ``Σ_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds,
      as scikit-learn's ``average_precision_score``;
    * ``hits@K``: the fraction of positives scoring strictly above the K-th highest negative
      (OGB's ``Evaluator``; 1.0 when there are fewer than K negatives);
    * ``mrr``: the mean over queries of ``1 / rank`` of the positive among its own negatives, with
      ``rank = 1 + (#neg > pos + #neg >= pos) / 2`` (OGB's tie rule). Each query has one positive.

    ``auc``/``ap``/``hits@K`` are NaN without positives or negatives; ``mrr`` is NaN without queries.

    Shapes:
        loss: logits ``[M]``, label ``[M]`` 0/1 -> scalar (the **sum** over rows).
        metrics: scores ``[M]``, label ``[M]`` 0/1, query ``[M]`` int64 -> dict of floats.
    """

    name = "link-prediction"
    primary = "auc"
    higher_is_better = True
    losses = ("bce",)

    def __init__(self, hits_k: int = 50) -> None:
        if isinstance(hits_k, bool) or not isinstance(hits_k, int) or hits_k < 1:
            raise TaskError(f"{self.name}: hits_k must be an int >= 1, got {hits_k!r}")
        self.hits_k = hits_k

    def loss(self, logits: Tensor, label: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits, label.to(logits.dtype), reduction="sum")

    def metrics(self, scores: Tensor, label: Tensor, query: Tensor) -> dict[str, float]:
        s = scores.detach().to(torch.float64).reshape(-1)  # (M,)
        pos = label.reshape(-1) > 0  # (M,)
        q = query.reshape(-1).to(torch.long)
        if not (s.numel() == pos.numel() == q.numel()):
            raise TaskError(f"{self.name}: scores, label and query differ in length ({s.numel()}, {pos.numel()}, "
                            f"{q.numel()})")
        if not bool(torch.isfinite(s).all()):
            raise TaskError(f"{self.name}: scores contain NaN or infinite values")
        sp, sn = s[pos], s[~pos]
        n_pos, n_neg = sp.numel(), sn.numel()
        nan = float("nan")
        out = {"auc": nan, "ap": nan, f"hits@{self.hits_k}": nan, "mrr": nan}
        if n_pos and n_neg:
            out["auc"] = _auc(s, pos)
            out["ap"] = _average_precision(s, pos)
            if n_neg < self.hits_k:
                out[f"hits@{self.hits_k}"] = 1.0
            else:
                kth = torch.topk(sn, self.hits_k).values[-1]
                out[f"hits@{self.hits_k}"] = float((sp > kth).double().mean())
        if n_pos:
            out["mrr"] = _mrr(s, pos, q, self.name)
        return out

    def __repr__(self) -> str:
        return f"LinkPrediction(hits_k={self.hits_k})"


def _auc(s: Tensor, pos: Tensor) -> float:
    """ROC AUC with average ranks for ties (float64)."""
    order = torch.argsort(s, stable=True)
    sorted_s = s[order]
    _, inverse, counts = torch.unique_consecutive(sorted_s, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).to(torch.float64)  # 1-based rank of each tie group's last row
    avg = ends - (counts.to(torch.float64) - 1) / 2  # average 1-based rank of the group
    ranks = torch.empty_like(s)
    ranks[order] = avg[inverse]
    n_pos = int(pos.sum())
    n_neg = s.numel() - n_pos
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_precision(s: Tensor, pos: Tensor) -> float:
    """Average precision over distinct thresholds (scikit-learn's step-wise definition)."""
    order = torch.argsort(s, descending=True, stable=True)
    ds, dp = s[order], pos[order].to(torch.float64)
    _, counts = torch.unique_consecutive(ds, return_counts=True)
    last = torch.cumsum(counts, 0) - 1  # last row of each threshold group
    tp = torch.cumsum(dp, 0)[last]  # (T,)
    predicted = (last + 1).to(torch.float64)
    precision, recall = tp / predicted, tp / tp[-1]
    gain = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((gain * precision).sum())


def _mrr(s: Tensor, pos: Tensor, q: Tensor, name: str) -> float:
    queries, local = torch.unique(q, return_inverse=True)
    n_q = queries.numel()
    n_pos_q = torch.zeros(n_q, dtype=torch.long).index_add_(0, local, pos.long())
    if bool((n_pos_q > 1).any()):
        raise TaskError(f"{name}: query {int(queries[n_pos_q > 1][0])} has {int(n_pos_q.max())} positives; MRR needs "
                        "one positive per query")
    has = n_pos_q == 1
    pos_score = torch.zeros(n_q, dtype=torch.float64).index_put_((local[pos],), s[pos])
    neg = ~pos
    above = torch.zeros(n_q, dtype=torch.float64).index_add_(0, local[neg], (s[neg] > pos_score[local[neg]]).double())
    tied = torch.zeros(n_q, dtype=torch.float64).index_add_(0, local[neg], (s[neg] >= pos_score[local[neg]]).double())
    rank = 1 + (above + tied) / 2
    return float((1 / rank[has]).mean())


class CustomTask:
    """A user-supplied loss/metric pair (see :func:`custom_task`)."""

    def __init__(self, loss_fn, metric_fn, names, name, primary, higher_is_better, out_channels, validate):
        self.loss_fn, self.metric_fn, self.names = loss_fn, metric_fn, tuple(names)
        self.name, self.primary, self.higher_is_better = name, primary, higher_is_better
        self._out, self._validate = out_channels, validate

    def out_channels(self, y: Tensor) -> int:
        if self._out is not None:
            return self._out(y) if callable(self._out) else int(self._out)
        return int(y.max()) + 1 if y.dim() == 1 and not y.is_floating_point() else (1 if y.dim() == 1 else int(y.shape[1]))

    def validate(self, y: Tensor, masks: dict, where: str, num_classes: int | None = None) -> None:
        if self._validate is not None:
            self._validate(y, masks, where)

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        return self.loss_fn(out, y)

    def metric_sums(self, out: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            got = self.metric_fn(out, y)
        if isinstance(got, dict):
            if set(got) != set(self.names):
                raise TaskError(f"task {self.name!r}: metric_fn returned {sorted(got)}, expected {list(self.names)}")
            got = [got[k] for k in self.names]
        vals = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=out.device).reshape(()) for v in got])
        if vals.numel() != len(self.names):
            raise TaskError(f"task {self.name!r}: metric_fn returned {vals.numel()} sums, expected {len(self.names)}")
        return torch.cat([_count(y, out)[None], vals])

    def metrics(self, sums: Tensor) -> dict[str, float]:
        n = float(sums[0])
        return {k: _div(float(v), n) for k, v in zip(self.names, sums[1:])}

    def __repr__(self) -> str:
        return f"CustomTask({self.name!r}, metrics={list(self.names)})"


def custom_task(
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    metric_fn: Callable[[Tensor, Tensor], dict | Sequence],
    names: Sequence[str] = ("metric",),
    *,
    name: str = "custom",
    primary: str | None = None,
    higher_is_better: bool = True,
    out_channels: int | Callable[[Tensor], int] | None = None,
    validate: Callable[[Tensor, dict, str], None] | None = None,
) -> Task:
    """A task from a user-supplied loss/metric pair.

    Args:
        loss_fn: ``loss_fn(out [n, C], y [n, ...]) -> scalar``, the **sum** over the ``n`` rows.
        metric_fn: ``metric_fn(out, y)`` -> the per-row **sums** of each metric, a dict keyed by
            ``names`` or a sequence in that order; :meth:`Task.metrics` divides them by the global
            row count, so each metric is a mean over rows (exact after an all-reduce).
        names: metric names (default ``("metric",)``); primary: the one ``select="best_val"``
            uses (default ``names[0]``); higher_is_better (default True).
        out_channels: output width, an int or ``fn(y)`` (default: ``max(y) + 1`` for int ``[N]``
            labels, the number of columns otherwise).
        validate: optional ``fn(y, masks, where)`` raising :class:`~distgnn.data.DataError`.
    """
    if not callable(loss_fn) or not callable(metric_fn):
        raise TaskError("custom_task: loss_fn and metric_fn must be callables fn(out, y)")
    names = tuple(names)
    if not names or not all(isinstance(n, str) for n in names):
        raise TaskError(f"custom_task: names must be a non-empty sequence of str, got {names!r}")
    primary = names[0] if primary is None else primary
    if primary not in names:
        raise TaskError(f"custom_task: primary {primary!r} is not one of the metric names {list(names)}")
    return CustomTask(loss_fn, metric_fn, names, name, primary, higher_is_better, out_channels, validate)


_TASKS = {"node-classification": NodeClassification, "multi-label": MultiLabel, "node-regression": NodeRegression,
          "link-prediction": LinkPrediction}
TASKS = tuple(_TASKS)


def get_task(spec: str | Task, *, loss: str | None = None) -> Task:
    """A task by name (:data:`TASKS`), or ``spec`` itself when it already is a task.

    ``loss`` picks the regression loss (``"mse"`` default, ``"l1"``); for the other tasks it may
    only name their own loss (``"cross-entropy"``, ``"bce"``).
    """
    if not isinstance(spec, str):
        if isinstance(spec, (Task, LinkPrediction)):
            if loss is not None:
                raise TaskError(f"--loss applies to a named task, not to {spec!r}")
            return spec
        raise TaskError(f"task must be a name ({', '.join(TASKS)}) or a Task, got {type(spec).__name__}")
    cls = _TASKS.get(spec)
    if cls is None:
        raise TaskError(f"unknown task {spec!r}; choose one of {', '.join(TASKS)}")
    if cls is NodeRegression:
        return NodeRegression(loss or "mse")
    if loss is not None and loss not in cls.losses:
        raise TaskError(f"{spec}: unknown loss {loss!r}; choose one of {', '.join(cls.losses)}")
    return cls()
