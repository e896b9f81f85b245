"""Single-process link prediction: train_link's loss, modes, selection, the CLI and Cora."""
import copy

import pytest
import torch
from torch import nn

from distgnn.data import DataError, GraphData
from distgnn.data.links import split_links
from distgnn.data.synthetic import sbm
from distgnn.graph import Graph
from distgnn.models import DotDecoder, LinkModel, ModelError, link_model_builder, model_builder
from distgnn.sampling.negative import NegativeSampler
from distgnn.train import TrainConfig
from distgnn.train.cli import main
from distgnn.train.link import train_link


@pytest.fixture(scope="module")
def graph():
    data = sbm(num_nodes=300, num_classes=3, avg_degree=6, num_features=8, seed=0)
    return split_links(data, (0.8, 0.1, 0.1), seed=1, eval_negatives=2)


class Pointwise(nn.Module):
    """An encoder that ignores the graph (so a sampled neighbourhood gives the full-graph rows)."""

    def __init__(self, f, d):
        super().__init__()
        self.lin = nn.Linear(f, d)

    def forward(self, x, graph):
        return self.lin(x)


def manual_loss(model, data, split, epoch, seed, k=1):
    src, dst = split.train_edge_index
    ns, nd = NegativeSampler(data.num_nodes, k, seed=seed).sample(src, dst, split.train_eid, epoch)
    h = model(data.x, Graph(data.edge_index, data.num_nodes))
    logits = model.score(h[torch.cat([src, ns])], h[torch.cat([dst, nd])])
    label = torch.cat([torch.ones(src.numel()), torch.zeros(ns.numel())])
    return nn.functional.binary_cross_entropy_with_logits(logits, label)  # mean over positives and negatives


def test_full_mode_loss_and_steps_match_a_manual_loop(graph):
    data, split = graph
    torch.manual_seed(0)
    model = link_model_builder(model_builder("gcn", hidden=8, dropout=0.0), "dot", embedding_dim=4)(8, 4)
    twin = copy.deepcopy(model)
    cfg = TrainConfig(epochs=3, lr=0.01, weight_decay=0.0, seed=3)
    res = train_link(model, data, split, cfg, negatives=2)
    opt = torch.optim.Adam(twin.parameters(), lr=0.01)
    for epoch in (1, 2, 3):
        opt.zero_grad()
        loss = manual_loss(twin, data, split, epoch, seed=3, k=2)
        loss.backward()
        opt.step()
        assert res.history[epoch - 1].loss == pytest.approx(loss.item(), rel=1e-5)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert set(res.test) == {"auc", "ap", "hits@50", "mrr"} and res.metric == "auc" and res.test_acc == res.test["auc"]
    assert res.train == {} and res.epoch == 3


def test_sampled_mode_one_batch_equals_full_for_a_pointwise_encoder(graph):
    data, split = graph
    cfg = TrainConfig(epochs=2, lr=0.01, weight_decay=0.0, seed=0)
    runs = []
    for mode in ("full", "sampled"):
        torch.manual_seed(0)
        model = LinkModel(Pointwise(8, 4), DotDecoder())
        runs.append((train_link(model, data, split, cfg, mode=mode, batch_size=10_000), model))
    (full, m_full), (sampled, m_sampled) = runs
    assert [s.loss for s in sampled.history] == pytest.approx([s.loss for s in full.history], rel=1e-5)
    for a, b in zip(m_full.parameters(), m_sampled.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_sampled_mode_batches_and_learns(graph):
    data, split = graph
    b = link_model_builder(model_builder("sage", hidden=16, dropout=0.0), "mlp", embedding_dim=8)
    res = train_link(b, data, split, TrainConfig(epochs=3, lr=0.02, seed=0), mode="sampled", batch_size=400,
                     fanouts=(5, 5), exclude_positives=True, neg_mode="uniform", on_epoch=lambda s: None)
    assert len(res.history) == 3 and all(s.val for s in res.history)
    assert res.history[-1].loss < res.history[0].loss
    again = train_link(b, data, split, TrainConfig(epochs=3, lr=0.02, seed=0), mode="sampled", batch_size=400,
                       fanouts=(5, 5), exclude_positives=True, neg_mode="uniform")
    assert [s.loss for s in again.history] == [s.loss for s in res.history]  # seeded


def test_best_val_selection(graph):
    data, split = graph
    b = link_model_builder(model_builder("gcn", hidden=8, dropout=0.0), embedding_dim=8)
    res = train_link(b, data, split, TrainConfig(epochs=6, lr=0.05, seed=0, select="best_val"))
    best = max(res.history, key=lambda s: s.val_acc)
    assert res.epoch == best.epoch and res.val_acc == best.val_acc


def test_plain_encoder_module_is_wrapped(graph):
    data, split = graph
    res = train_link(Pointwise(8, 4), data, split, TrainConfig(epochs=2, seed=0))
    assert 0.0 <= res.test_acc <= 1.0


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda d, s: train_link(Pointwise(8, 4), d, s, mode="dense"), "mode must be 'full' or 'sampled'",
                 id="mode"),
    pytest.param(lambda d, s: train_link(Pointwise(8, 4), d, s, batch_size=0), "batch_size must be a positive int",
                 id="batch-size"),
    pytest.param(lambda d, s: train_link(Pointwise(8, 4), d, s, decoder="cos"), "unknown decoder 'cos'", id="decoder"),
    pytest.param(lambda d, s: train_link(Pointwise(8, 4), d, s, decoder="mlp"),
                 "an mlp decoder on a plain encoder module needs embedding_dim", id="mlp-width"),
    pytest.param(lambda d, s: train_link(Pointwise(8, 4), d, "split"), "train_link needs a LinkSplit", id="split"),
    pytest.param(lambda d, s: train_link(Pointwise(8, 4), d.with_(x=None), s), "link prediction needs node features",
                 id="features"),
    pytest.param(lambda d, s: train_link(Pointwise(8, 4), d.with_(edge_index=d.edge_index[:, 1:]), s),
                 "data.edge_index must be the split's training edges", id="not-the-split"),
    pytest.param(lambda d, s: train_link(Pointwise(8, 4), d, s, negatives=0), r"k \(--negatives\) must be an int >= 1",
                 id="negatives"),
])
def test_errors(graph, call, match):
    data, split = graph
    with pytest.raises((ValueError, DataError, ModelError), match=match):
        call(data, split)


def test_no_training_edge():
    data = GraphData(torch.tensor([[0, 1], [1, 0]]), 2, x=torch.ones(2, 1))
    d, s = split_links(data, (0.0, 0.0, 1.0))
    with pytest.raises(DataError, match="the edge split left no training edge"):
        train_link(Pointwise(1, 2), d, s)


def test_cli_full_and_sampled(capsys):
    assert main(["--dataset", "synthetic:300", "--task", "link-prediction", "--epochs", "2", "--hidden", "8",
                 "--embedding-dim", "4", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "edge split 0.85,0.05,0.10 (seed 0)" in out and "final: test auc" in out and "hits@50" in out
    assert main(["--dataset", "synthetic:300", "--task", "link-prediction", "--epochs", "2", "--mode", "sampled",
                 "--decoder", "mlp", "--negatives", "2", "--neg-sampling", "uniform", "--exclude-positives",
                 "--eval-negatives", "3", "--edge-split", "0.7,0.1,0.2", "--split-seed", "4", "--hits-k", "5"]) == 0
    out = capsys.readouterr().out
    assert "3 negatives per evaluation edge" in out and "mlp decoder" in out and "epoch    2" in out
    assert "hits@5 " in out


@pytest.mark.parametrize("args, match", [
    pytest.param(["--edge-split", "0.9,0.2"], "error: --edge-split must be three fractions", id="split"),
    pytest.param(["--negatives", "0"], "error: --negatives must be >= 1, got 0", id="negatives"),
    pytest.param(["--hits-k", "0"], "error: --hits-k must be >= 1, got 0", id="hits-k"),
    pytest.param(["--embedding-dim", "0"], "error: --embedding-dim must be positive", id="embedding-dim"),
    pytest.param(["--eval-negatives", "-1"], "error: --eval-negatives must be >= 0", id="eval-negatives"),
    pytest.param(["--loss", "mse"], "error: link-prediction: unknown loss 'mse'", id="loss"),
])
def test_cli_errors(capsys, args, match):
    assert main(["--dataset", "synthetic:200", "--task", "link-prediction", "--epochs", "1"] + args) == 2
    assert match in capsys.readouterr().err


# Cora (GCN + dot, 85/5/10, 5 seeds, test AUC and AP >= 0.90 in one process and on 2 workers):
# tests/launch/test_link.py::test_cora_gcn_dot_distributed_within_one_point_of_single_process


def test_a_partition_with_an_edge_split_trains_on_its_stored_split(tmp_path, capsys):
    from distgnn.partition import PartitionError, partition
    from distgnn.train.link import partition_link_split

    data = sbm(num_nodes=200, num_classes=3, avg_degree=6, num_features=8, num_val=20, num_test=20, seed=2)
    partition(data, 2, tmp_path / "p", method="random", edge_split=(0.8, 0.1, 0.1), split_seed=4, eval_negatives=2)
    got_data, got = partition_link_split(tmp_path / "p")
    want_data, want = split_links(data, (0.8, 0.1, 0.1), seed=4, eval_negatives=2)
    assert torch.equal(got_data.edge_index, want_data.edge_index) and torch.equal(got_data.x, want_data.x)
    for f in ("train_edge_index", "train_eid", "src", "dst", "split", "label", "query"):
        assert torch.equal(getattr(got, f), getattr(want, f)), f
    assert (got.fractions, got.seed, got.eval_negatives) == ((0.8, 0.1, 0.1), 4, 2)
    args = ["--dataset", str(tmp_path / "p"), "--task", "link-prediction", "--epochs", "2", "--quiet"]
    assert main(args) == 0
    assert "edge split 0.8,0.1,0.1 (stored in the partition) (seed 4)" in capsys.readouterr().out
    assert main(args + ["--edge-split", "0.5,0.25,0.25"]) == 2
    assert "the partition holds its edge split; --edge-split" in capsys.readouterr().err
    partition(data, 1, tmp_path / "plain", method="range")
    with pytest.raises(PartitionError, match="the partition has no edge split .partition it with --edge-split."):
        partition_link_split(tmp_path / "plain")
