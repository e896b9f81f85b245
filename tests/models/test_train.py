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
