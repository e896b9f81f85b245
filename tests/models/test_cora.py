"""Cora accuracy of the reference setups (the dataset must be present: missing data fails)."""
from __future__ import annotations

import pytest
import torch

from distgnn.data import load_planetoid
from distgnn.models import GAT, GCN
from distgnn.train import TrainConfig, train_node_classifier


@pytest.fixture(scope="module")
def cora():
    return load_planetoid("cora", normalize_features=True)


@pytest.mark.slow
def test_gcn_kipf_welling_setup_reaches_paper_accuracy(cora):
    accs = []
    for seed in range(5):
        torch.manual_seed(seed)
        model = GCN(cora.num_features, 16, cora.num_classes, num_layers=2, dropout=0.5)
        cfg = TrainConfig(epochs=200, lr=0.01, weight_decay=5e-4, seed=seed)
        accs.append(train_node_classifier(model, cora, cfg).test_acc)
    mean = sum(accs) / len(accs)
    assert mean >= 0.805, f"GCN on Cora: mean test accuracy {mean:.4f} over seeds {accs} (paper: 0.815)"


@pytest.mark.slow
def test_gat_paper_setup_reaches_paper_accuracy(cora):
    accs = []
    for seed in range(5):
        torch.manual_seed(seed)
        model = GAT(cora.num_features, 8, cora.num_classes, heads=8, out_heads=1, dropout=0.6)
        cfg = TrainConfig(epochs=200, lr=0.005, weight_decay=5e-4, seed=seed, select="best_val")
        accs.append(train_node_classifier(model, cora, cfg).test_acc)
    mean = sum(accs) / len(accs)
    assert mean >= 0.82, f"GAT on Cora: mean test accuracy {mean:.4f} over seeds {accs} (paper: 0.830)"
