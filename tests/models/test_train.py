import math

import pytest
import torch

from distgnn.data import DataError, sbm
from distgnn.models import GCN, build_model
from distgnn.train import TrainConfig, train_node_classifier
from distgnn.train.cli import main


@pytest.fixture(scope="module")
def small():
    return sbm(num_nodes=600, num_classes=3, avg_degree=8, num_features=8, num_val=100, num_test=200, seed=1)


def test_training_learns_the_synthetic_graph_and_is_reproducible(small):
    def run():
        torch.manual_seed(0)
        model = GCN(small.num_features, 16, small.num_classes)
        return train_node_classifier(model, small, TrainConfig(epochs=60, seed=0))

    a, b = run(), run()
    assert a.test_acc > 0.8, a.test_acc  # chance is 1/3
    assert a.test_acc == b.test_acc and a.history[-1].loss == b.history[-1].loss
    assert a.history[-1].loss < a.history[0].loss / 2
    assert math.isnan(a.history[0].val_acc) and not math.isnan(a.history[-1].val_acc)


def test_best_val_selection_and_callback(small):
    torch.manual_seed(0)
    seen = []
    model = build_model("sage", small.num_features, small.num_classes)
    res = train_node_classifier(model, small, TrainConfig(epochs=20, select="best_val"), on_epoch=seen.append)
    assert [s.epoch for s in seen] == list(range(1, 21))
    assert res.val_acc == max(s.val_acc for s in seen)


def test_bad_inputs(small):
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        TrainConfig(epochs=0)
    with pytest.raises(DataError, match="node classification needs y"):
        train_node_classifier(GCN(8, 4, 3), small.with_(y=None), TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="unknown model 'mlp'"):
        build_model("mlp", 8, 3)


def test_cli_runs_and_reports(capsys):
    assert main(["--dataset", "synthetic:800", "--epochs", "5"]) == 0
    out = capsys.readouterr().out
    assert "epoch    5  loss" in out and "final: test accuracy" in out
    assert main(["--dataset", "nope"]) == 2
    assert "error: unknown dataset 'nope'" in capsys.readouterr().err
    assert main(["--dataset", "synthetic:800", "--epochs", "0"]) == 2
    assert "error: epochs must be a positive int, got 0" in capsys.readouterr().err
    assert main(["--dataset", "synthetic:800", "--lr", "0"]) == 2
    assert "error: lr must be positive, got 0.0" in capsys.readouterr().err


# ---------------------------------------------------------------- tasks, builders, sampled mode
import numpy as np  # noqa: E402

from distgnn.graph import Graph  # noqa: E402
from distgnn.models import LayerStack, model_builder  # noqa: E402
from distgnn.tasks import get_task  # noqa: E402
from distgnn.train import train, train_full, train_sampled  # noqa: E402


@pytest.fixture(scope="module")
def regression(small):
    w = torch.linspace(-1, 1, small.num_features)
    return small.with_(y=(2.0 * small.y - 1 + 0.1 * (small.x @ w)).double(), name="reg")  # class-driven targets


def test_regression_reports_the_task_metrics_of_its_model(regression):
    torch.manual_seed(0)
    model = LayerStack("GCNConv", regression.num_features, 1, hidden=16, dropout=0.0)
    res = train_full(model, regression, TrainConfig(epochs=80, lr=0.02, weight_decay=0.0), task="node-regression")
    assert res.metric == "r2" and set(res.test) == {"r2", "mae", "rmse"}
    assert res.history[-1].loss < res.history[0].loss / 2
    model.eval()
    with torch.no_grad():
        out = model(regression.x, Graph(regression.edge_index, regression.num_nodes))[:, 0].double().numpy()
    m = regression.test_mask.numpy()
    y, p = regression.y.numpy()[m], out[m]
    assert res.test_acc == res.test["r2"] == pytest.approx(1 - ((y - p) ** 2).sum() / ((y - y.mean()) ** 2).sum(), rel=1e-9)
    assert res.test["mae"] == pytest.approx(np.abs(y - p).mean(), rel=1e-9)
    assert res.test["r2"] > 0.5, res.test


def test_best_val_selection_uses_the_primary_metric(regression):
    seen = []
    res = train(model_builder("GraphSageConv", hidden=8), regression, TrainConfig(epochs=15, select="best_val"),
                task=get_task("node-regression", loss="l1"), on_epoch=seen.append)
    assert res.val_acc == max(s.val["r2"] for s in seen) and res.epoch == max(seen, key=lambda s: s.val["r2"]).epoch


def test_multi_label_learns(small):
    y = torch.stack([small.y == 0, small.y != 2], 1).long()  # (N, 2)
    res = train_full(model_builder("gcn"), small.with_(y=y), TrainConfig(epochs=60), task="multi-label")
    assert res.metric == "micro_f1" and res.test_acc > 0.8, res.test


@pytest.mark.parametrize("batch_size", [pytest.param(1024, id="default-batch-larger-than-train-set"),
                                        pytest.param(16, id="many-steps")])
def test_sampled_mode_trains_on_small_training_sets(small, batch_size):
    assert int(small.train_mask.sum()) < 1024
    res = train(model_builder("gcn"), small, TrainConfig(epochs=15, seed=1), mode="sampled", fanouts=(5, 5),
                batch_size=batch_size)
    assert res.test_acc > 0.6 and res.history[-1].loss < res.history[0].loss


def test_sampled_edge_features_follow_the_sampled_edges(small):
    e = torch.randn(small.num_edges, 2, generator=torch.Generator().manual_seed(0))
    data = small.with_(edge_attr=e)
    res = train_sampled(model_builder("ECCConv", hidden=8, edge_dim=2), data, TrainConfig(epochs=3), (4, 4), 64)
    assert all(math.isfinite(s.loss) for s in res.history)


def test_labels_are_validated(small):
    with pytest.raises(DataError, match="sbm-600: node-regression needs float targets"):
        train_full(GCN(8, 4, 3), small, TrainConfig(epochs=1), task="node-regression")
    multi = small.with_(y=torch.stack([small.y == 0, small.y == 1], 1).long())
    multi.y[int(small.train_mask.nonzero()[0]), 0] = -1  # no label on a training node
    with pytest.raises(DataError, match="is in train_mask but has no label"):
        train_full(GCN(8, 4, 2), multi, TrainConfig(epochs=1), task="multi-label")


def test_sampled_batch_size_and_mode_errors(small):
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        train_sampled(GCN(8, 4, 3), small, TrainConfig(epochs=1), batch_size=0)
    with pytest.raises(ValueError, match="mode must be 'full' or 'sampled', got 'dense'"):
        train(GCN(8, 4, 3), small, mode="dense")


def test_cli_models_tasks_and_sampling(capsys, tmp_path, monkeypatch):
    args = ["--dataset", "synthetic:400", "--epochs", "3", "--quiet"]
    assert main(args + ["--model", "chebconv", "--layer-args", '{"K": 2}', "--hidden", "8", "--mode", "sampled",
                        "--fanout", "5,5"]) == 0
    out = capsys.readouterr().out
    assert "model: chebconv" in out and "sampled (fan-out 5,5, batch 1024)" in out and "final: test accuracy" in out
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "user_gnn.py").write_text(
        "from torch import nn\nclass M(nn.Module):\n    def __init__(s, i, o):\n        super().__init__()\n"
        "        s.lin = nn.Linear(i, o)\n    def forward(s, x, graph):\n        return s.lin(x)\n"
        "def mlp(i, o):\n    return M(i, o)\n"
    )
    assert main(args + ["--model", "user_gnn:mlp", "--select", "best_val"]) == 0
    assert "model: user_gnn:mlp" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, match",
    [
        pytest.param(["--model", "mlp"], "error: unknown model 'mlp'; choose one of gat, gcn, sage", id="unknown-model"),
        pytest.param(["--model", "nowhere.mod:fn"], "error: model 'nowhere.mod:fn': cannot import module", id="import"),
        pytest.param(["--layer-args", "K=3"], "error: --layer-args must be a JSON object", id="layer-args"),
        pytest.param(["--fanout", "5,x"], "error: --fanout must be comma-separated integers", id="fanout"),
        pytest.param(["--batch-size", "0"], "error: --batch-size must be positive, got 0", id="batch-size"),
        pytest.param(["--task", "node-regression"], "error: sbm-300: node-regression needs float targets", id="task-labels"),
        pytest.param(["--loss", "huber"], "error: node-classification: unknown loss 'huber'", id="loss"),
        pytest.param(["--model", "GCNConv", "--layer-args", '{"Q": 1}'], "unexpected keyword argument 'Q'", id="layer-arg"),
        pytest.param(["--dropout", "1.5"], r"error: --dropout must be in \[0, 1\), got 1.5", id="dropout"),
    ],
)
def test_cli_errors_are_one_line(capsys, extra, match):
    assert main(["--dataset", "synthetic:300", "--epochs", "1"] + extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and __import__("re").search(match, err), err


def test_cli_help_lists_tasks_models_and_options(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("node-classification", "multi-label", "node-regression", "gcn, sage", "ChebConv", "XENetConv",
                  "package.module:function", "--layer-args", "--mode", "--fanout", "--batch-size", "--transform",
                  "--select", "--loss", "--layers"):
        assert words in text, words
