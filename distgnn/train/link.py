"""Single-process link prediction: full-graph or on sampled neighbourhoods (:func:`train_link`).

The data comes from :func:`distgnn.data.links.split_links` (or the same split read from a
partition): the message-passing graph holds only training edges, each of which is also a training
positive; validation/test candidates are fixed. A step's loss is the task's BCE **sum** over the
positives and their negatives divided by their number, as the distributed runtime computes it.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Callable

import torch
from torch import Tensor, nn

from ..data.dataset import DataError, GraphData
from ..data.links import SPLIT_TEST, SPLIT_VAL, LinkSplit
from ..graph import Graph
from .loop import EpochStats, TrainConfig, TrainResult, _score

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_EMBEDDING_DIM", "evaluate_link", "link_model", "partition_link_split", "train_link"]

DEFAULT_EMBEDDING_DIM = 64


def link_model(model_or_builder, in_channels: int, decoder: str = "dot", embedding_dim: int | None = None):
    """The :class:`~distgnn.models.LinkModel` to train: ``model_or_builder`` itself when it is
    one; a module (the encoder) or a builder's result wrapped with ``decoder``; a builder is called
    as ``build(in_channels, embedding_dim or 64)``."""
    from ..models import LinkModel, ModelError, make_decoder

    dim = DEFAULT_EMBEDDING_DIM if embedding_dim is None else embedding_dim
    model = model_or_builder
    if not isinstance(model, nn.Module):
        if not callable(model):
            raise TypeError(f"model must be an nn.Module or a builder fn(in_channels, out_channels), got "
                            f"{type(model).__name__}")
        model = model(in_channels, dim)
    if isinstance(model, LinkModel):
        return model
    if decoder == "mlp" and embedding_dim is None and isinstance(model_or_builder, nn.Module):
        raise ModelError("train_link: an mlp decoder on a plain encoder module needs embedding_dim (its output width)")
    return LinkModel(model, make_decoder(decoder, dim))


def partition_link_split(path) -> tuple[GraphData, LinkSplit]:
    """The training graph and :class:`~distgnn.data.links.LinkSplit` stored in a partition made
    with ``--edge-split`` (or a split column), in original node ids: the same as
    :func:`~distgnn.data.links.split_links` on the partitioned graph with the same split.

    Raises :class:`~distgnn.partition.PartitionError` when the partition has no edge split.
    """
    from ..partition import load_manifest, reassemble
    from ..partition.reader import load_link_edges

    m = load_manifest(path)
    tables = [load_link_edges(path, k, m) for k in range(m.num_parts)]  # refuses a partition without a split
    data, new_to_old = reassemble(path, original_ids=True)
    cols = {c: torch.cat([t[c] for t in tables]) for c in tables[0]}
    order = torch.argsort(cols["query"], stable=True)  # each part holds whole queries, positive first
    cols = {c: v[order] for c, v in cols.items()}
    cols["src"], cols["dst"] = new_to_old[cols["src"]], new_to_old[cols["dst"]]
    ls = m.link_split
    split = LinkSplit(train_edge_index=data.edge_index, train_eid=torch.arange(data.num_edges), **cols,
                      fractions=tuple(ls["fractions"]), seed=ls["seed"], eval_negatives=ls["eval_negatives"])
    return data, split


def _check(data: GraphData, split: LinkSplit) -> None:
    if not isinstance(split, LinkSplit):
        raise DataError(f"train_link needs a LinkSplit (distgnn.data.links.split_links), got {type(split).__name__}")
    if data.x is None:
        raise DataError(f"{data.name}: link prediction needs node features x")
    if data.num_edges != split.train_edge_index.shape[1] or not torch.equal(data.edge_index, split.train_edge_index):
        raise DataError(f"{data.name}: data.edge_index must be the split's training edges (pass the GraphData "
                        "split_links returned)")
    if split.train_eid.numel() == 0:
        raise DataError(f"{data.name}: the edge split left no training edge")


@torch.no_grad()
def evaluate_link(model, task, x: Tensor, graph, inputs: dict, split: LinkSplit) -> dict[str, dict]:
    """Metrics of the validation and test candidates from full-graph embeddings (eval mode)."""
    model.eval()
    h = model(x, graph, **inputs)  # (N, D)
    scores = model.score(h[split.src], h[split.dst])  # (M,)
    out = {}
    for name, code in (("val", SPLIT_VAL), ("test", SPLIT_TEST)):
        rows = split.split == code
        out[name] = task.metrics(scores[rows], split.label[rows], split.query[rows]) if bool(rows.any()) else {}
    return out


def train_link(
    model_or_builder: nn.Module | Callable[[int, int], nn.Module],
    data: GraphData,
    split: LinkSplit,
    config: TrainConfig = TrainConfig(),
    *,
    mode: str = "full",
    fanouts: tuple[int, ...] = (10, 10),
    batch_size: int = 1024,
    replace: bool = False,
    negatives: int = 1,
    neg_mode: str = "corrupt-dst",
    exclude_positives: bool = False,
    decoder: str = "dot",
    embedding_dim: int | None = None,
    hits_k: int = 50,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Train a link predictor on the training edges of ``split``; report validation/test metrics.

    Args:
        model_or_builder: a :class:`~distgnn.models.LinkModel`, an encoder module (wrapped with
            ``decoder``) or a builder ``fn(in_channels, out_channels)`` returning either (called
            after seeding with ``config.seed``, ``out_channels = embedding_dim``, default 64).
        data: the training graph :func:`~distgnn.data.links.split_links` returned (``x``
            required; ``edge_attr`` passed as ``e=`` to encoders that take it).
        split: its :class:`~distgnn.data.links.LinkSplit`.
        config: :class:`~distgnn.train.TrainConfig` (epochs, lr, weight decay, seed, select).
        mode: ``"full"`` (one step per epoch on every training edge) or ``"sampled"``.
        fanouts, batch_size, replace: sampled mode: in-neighbours per hop, positives per step,
            sampling with replacement (defaults ``(10, 10)``, 1024, False).
        negatives: ``k`` per positive (default 1); neg_mode: ``"corrupt-dst"`` (default) or
            ``"uniform"``; exclude_positives: redraw negatives that are training edges (default
            False). Negatives are keyed by ``(config.seed, epoch, training edge id, j)``
            (:class:`~distgnn.sampling.negative.NegativeSampler`).
        decoder: ``"dot"`` (default) or ``"mlp"`` for encoders not already a LinkModel.
        hits_k: the K of Hits@K (default 50). on_epoch: called with every epoch's stats.

    Modes:
        full: ``h = model(x, train graph)``; the positives are all training edges;
        sampled: the training edges (in ``split.train_eid`` order) are shuffled by
        ``torch.Generator().manual_seed(mix_seed(seed, epoch))`` and cut into ``batch_size``
        positives; a batch's seeds are the sorted unique endpoints of its positives and
        negatives; the model runs on their sampled neighbourhood
        (:class:`~distgnn.sampling.NeighborSampler` keyed by ``mix_seed(seed, epoch, step)``,
        edge ids = ``split.train_eid``) and scores from the seed rows. Positive edges are not
        removed from their own batch's message-passing graph (as PyG's LinkNeighborLoader by
        default).

    Evaluation: full-graph embeddings of the training graph in eval mode, scores of every
    candidate, :meth:`~distgnn.tasks.LinkPrediction.metrics` per split. ``TrainResult.val``/``test``
    hold auc, ap, hits@K, mrr; ``val_acc``/``test_acc`` the AUC; ``train`` is empty and
    ``train_acc`` NaN (no training metric is computed). With ``select="last"`` and no ``on_epoch``
    only the last epoch is evaluated.

    Shapes:
        data.x ``[N, F]``; split.train_edge_index ``[2, E_train]``; candidates ``[M]``.
    """
    from ..launch.seeds import mix_seed
    from ..models import DECODERS, ModelError
    from ..sampling.negative import NegativeSampler, edge_membership
    from ..tasks import LinkPrediction

    if mode not in ("full", "sampled"):
        raise ValueError(f"mode must be 'full' or 'sampled', got {mode!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if decoder not in DECODERS:
        raise ModelError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
    _check(data, split)
    task = LinkPrediction(hits_k)
    n = data.num_nodes
    pos_src, pos_dst = split.train_edge_index  # (E_train,) each
    eid = split.train_eid
    exclude = edge_membership(split.train_edge_index, n) if exclude_positives else None
    sampler = NegativeSampler(n, negatives, neg_mode, seed=config.seed, exclude=exclude)

    torch.manual_seed(config.seed)
    model = link_model(model_or_builder, data.num_features, decoder, embedding_dim)
    takes_e = data.edge_attr is not None and model.takes_edges
    groups = model.param_groups(config.weight_decay)
    opt = torch.optim.Adam(groups, lr=config.lr)
    graph = Graph(data.edge_index, n)
    inputs = {"e": data.edge_attr} if takes_e else {}

    if mode == "sampled":
        from ..sampling import NeighborSampler

        neighbours = NeighborSampler(data.edge_index, n, fanouts, replace=replace, seed=config.seed, eid=eid)

    def step_loss(epoch: int, rows: Tensor | None, step: int) -> tuple[Tensor, int]:
        s, d, e = (pos_src, pos_dst, eid) if rows is None else (pos_src[rows], pos_dst[rows], eid[rows])
        ns, nd = sampler.sample(s, d, e, epoch)  # (B * k,) each
        u, v = torch.cat([s, ns]), torch.cat([d, nd])  # (B + B k,)
        label = torch.cat([torch.ones_like(s), torch.zeros_like(ns)])
        if rows is None:
            h = model(data.x, graph, **inputs)  # (N, D)
            logits = model.score(h[u], h[v])
        else:
            seeds = torch.unique(torch.cat([u, v]))  # sorted
            sub = neighbours.sample(seeds, seed=mix_seed(config.seed, epoch, step))
            sub_inputs = {"e": data.edge_attr[torch.searchsorted(eid, sub.eid)]} if takes_e else {}
            h = model(data.x[sub.node_ids], Graph(sub.edge_index, sub.num_nodes), **sub_inputs)  # (n_sub, D)
            logits = model.score(h[torch.searchsorted(seeds, u)], h[torch.searchsorted(seeds, v)])
        return task.loss(logits, label), int(label.numel())

    result, best = TrainResult(metric=task.primary), None
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        if mode == "full":
            batches = [None]
        else:
            g = torch.Generator().manual_seed(mix_seed(config.seed, epoch))
            batches = torch.split(torch.randperm(eid.numel(), generator=g), batch_size)
        for step, rows in enumerate(batches):
            opt.zero_grad()
            loss_sum, m = step_loss(epoch, rows, step)
            (loss_sum / m).backward()
            opt.step()
            total += float(loss_sum.detach())
            count += m
        loss = total / count
        if on_epoch is None and config.select == "last" and epoch < config.epochs:
            result.history.append(EpochStats(epoch, loss, math.nan, math.nan, time.perf_counter() - t0))
            continue
        metrics = evaluate_link(model, task, data.x, graph, inputs, split)
        stats = EpochStats(epoch, loss, math.nan, metrics["val"].get(task.primary, math.nan),
                           time.perf_counter() - t0, {}, metrics["val"])
        result.history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        key = _score(task, metrics["val"])
        if config.select == "last" or best is None or key > best:
            best = key
            result.epoch, result.train, result.val, result.test = epoch, {}, metrics["val"], metrics["test"]
            result.train_acc = math.nan
            result.val_acc = metrics["val"].get(task.primary, math.nan)
            result.test_acc = metrics["test"].get(task.primary, math.nan)
    return result
