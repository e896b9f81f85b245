import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from distgnn.data import DataError, GraphData
from distgnn.tasks import TASKS, Task, TaskError, custom_task, get_task


def test_registry_names():
    assert TASKS == ("node-classification", "multi-label", "node-regression", "link-prediction")
    for name in TASKS[:3]:  # node tasks (link prediction: tests/test_link_task.py)
        t = get_task(name)
        assert isinstance(t, Task) and t.name == name and t.higher_is_better
    assert get_task(t) is t


def test_classification_loss_is_a_sum_and_accuracy_exact():
    t = get_task("node-classification")
    out = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0], [0.5, 0.4, 0.0], [0.0, 2.0, 1.0]])
    y = torch.tensor([0, 1, 0, 1])
    assert t.out_channels(y) == 2
    assert torch.allclose(t.loss(out, y), F.cross_entropy(out, y) * 4)
    sums = t.metric_sums(out, y)
    assert sums.dtype == torch.float64 and sums.tolist() == [4.0, 3.0]
    assert t.metrics(sums) == {"acc": 0.75}
    assert torch.allclose(t.loss(out[:2], y[:2]) + t.loss(out[2:], y[2:]), t.loss(out, y))
    assert torch.equal(t.metric_sums(out[:1], y[:1]) + t.metric_sums(out[1:], y[1:]), sums)
    assert math.isnan(t.metrics(torch.zeros(2, dtype=torch.float64))["acc"])


def test_multilabel_micro_f1_hand_example():
    t = get_task("multi-label")
    out = torch.tensor([[1.0, -1.0, 2.0], [-1.0, 1.0, 1.0]])  # predictions [[1,0,1],[0,1,1]]
    y = torch.tensor([[1, 0, 0], [1, 1, 1]])
    # tp = 3 (0,0),(1,1),(1,2); fp = 1 (0,2); fn = 1 (1,0); tn = 1 -> micro-F1 = 6/8, acc = 4/6
    sums = t.metric_sums(out, y)
    assert sums.tolist() == [2.0, 3.0, 1.0, 1.0, 4.0]
    m = t.metrics(sums)
    assert m["micro_f1"] == pytest.approx(0.75, abs=1e-15) and m["acc"] == pytest.approx(4 / 6, abs=1e-15)
    ref = F.binary_cross_entropy_with_logits(out, y.float()) * 2
    assert torch.allclose(t.loss(out, y), ref)
    assert torch.equal(t.metric_sums(out[:1], y[:1]) + t.metric_sums(out[1:], y[1:]), sums)
    assert t.out_channels(y) == 3


@pytest.mark.parametrize("cols", [pytest.param(None, id="one-target"), pytest.param(3, id="three-targets")])
def test_regression_metrics_match_numpy(cols):
    g = torch.Generator().manual_seed(0)
    shape = (50,) if cols is None else (50, cols)
    y = torch.randn(shape, generator=g, dtype=torch.float64) * 2 + 1
    out = (y + 0.5 * torch.randn(shape, generator=g, dtype=torch.float64)).reshape(50, -1)
    t = get_task("node-regression")
    assert t.out_channels(y) == (1 if cols is None else cols)
    sums = t.metric_sums(out[:20], y[:20]) + t.metric_sums(out[20:], y[20:])  # two halves == whole
    assert torch.allclose(sums, t.metric_sums(out, y), rtol=1e-14, atol=1e-12)
    m = t.metrics(sums)
    yy, pp = y.numpy().reshape(50, -1), out.numpy()
    r2 = np.mean(1 - ((yy - pp) ** 2).sum(0) / ((yy - yy.mean(0)) ** 2).sum(0))
    assert m["r2"] == pytest.approx(r2, rel=1e-12)
    assert m["mae"] == pytest.approx(np.abs(yy - pp).mean(), rel=1e-12)
    assert m["rmse"] == pytest.approx(np.sqrt(((yy - pp) ** 2).mean()), rel=1e-12)
    assert float(t.loss(out, y)) == pytest.approx(((yy - pp) ** 2).mean(1).sum(), rel=1e-12)
    l1 = get_task("node-regression", loss="l1")
    assert float(l1.loss(out, y)) == pytest.approx(np.abs(yy - pp).mean(1).sum(), rel=1e-12)


def test_custom_task_means_over_rows():
    t = custom_task(
        lambda out, y: (out[:, 0] - y).abs().sum(),
        lambda out, y: {"hits": ((out[:, 0] - y).abs() < 0.5).sum(), "err": (out[:, 0] - y).abs().sum()},
        names=("hits", "err"),
        name="within-half",
    )
    out, y = torch.tensor([[0.0], [1.0], [3.0]]), torch.tensor([0.2, 1.9, 3.0])
    assert float(t.loss(out, y)) == pytest.approx(1.1)
    sums = t.metric_sums(out[:1], y[:1]) + t.metric_sums(out[1:], y[1:])
    m = t.metrics(sums)
    assert m["hits"] == pytest.approx(2 / 3) and m["err"] == pytest.approx(1.1 / 3)
    assert t.primary == "hits" and t.out_channels(y) == 1


def masks(n, nodes):
    m = torch.zeros(n, dtype=torch.bool)
    m[list(nodes)] = True
    return {"train_mask": m, "val_mask": None}


@pytest.mark.parametrize(
    "task, y, nodes, match",
    [
        pytest.param("node-classification", torch.tensor([0, -1, 1]), [1], "node 1 is in train_mask but has no label", id="cls-unlabelled"),
        pytest.param("node-classification", torch.tensor([0, 5, 1]), [1], r"class 5 outside \[0, 3\)", id="cls-range"),
        pytest.param("node-classification", torch.tensor([0.0, 1.0, 1.0]), [1], "needs \\[N\\] int64 class ids", id="cls-float"),
        pytest.param("multi-label", torch.tensor([[0, 1], [-1, 1], [1, 1]]), [1], "no label", id="ml-unlabelled"),
        pytest.param("multi-label", torch.tensor([[0, 1], [2, 1], [1, 1]]), [1], "other than 0 or 1", id="ml-value"),
        pytest.param("multi-label", torch.tensor([0, 1, 1]), [1], r"needs an \[N, C\]", id="ml-1d"),
        pytest.param("node-regression", torch.tensor([0.0, float("nan"), 1.0]), [1], "no target \\(NaN\\)", id="reg-nan"),
        pytest.param("node-regression", torch.tensor([0.0, float("inf"), 1.0]), [0], "node 1 is infinite", id="reg-inf"),
        pytest.param("node-regression", torch.tensor([0, 1, 1]), [0], "needs float targets", id="reg-int"),
    ],
)
def test_validate_errors(task, y, nodes, match):
    with pytest.raises(DataError, match=f"^cora: .*{match}"):
        get_task(task).validate(y, masks(3, nodes), "cora", num_classes=3 if task == "node-classification" else None)


def test_validate_allows_unlabelled_nodes_outside_masks():
    get_task("node-classification").validate(torch.tensor([0, -1, 1]), masks(3, [0, 2]), "g", num_classes=2)
    get_task("multi-label").validate(torch.tensor([[0.0, 1.0], [float("nan"), 1.0]]), masks(2, [0]), "g")
    get_task("node-regression").validate(torch.tensor([[0.0], [float("nan")]]), masks(2, [0]), "g")


def test_graph_data_accepts_task_labels():
    ei = torch.tensor([[0, 1], [1, 0]])
    assert GraphData(ei, 2, y=torch.tensor([[0.5, 1.0], [float("nan"), 2.0]])).num_classes == 2
    assert GraphData(ei, 2, y=torch.tensor([0.5, 1.0])).num_classes == 1
    with pytest.raises(DataError, match="y in 'graph' must be"):
        GraphData(ei, 2, y=torch.tensor([0.5, 1.0, 2.0]))


@pytest.mark.parametrize(
    "call, match",
    [
        pytest.param(lambda: get_task("ranking"), "unknown task 'ranking'; choose one of node-classification", id="unknown"),
        pytest.param(lambda: get_task("node-regression", loss="huber"), "unknown loss 'huber'; choose one of mse, l1", id="reg-loss"),
        pytest.param(lambda: get_task("node-classification", loss="mse"), "unknown loss 'mse'", id="cls-loss"),
        pytest.param(lambda: get_task(3), "task must be a name", id="type"),
        pytest.param(lambda: custom_task(1, len), "must be callables", id="custom-callable"),
        pytest.param(lambda: custom_task(len, len, names=("a",), primary="b"), "primary 'b' is not one of", id="custom-primary"),
    ],
)
def test_task_errors(call, match):
    with pytest.raises(TaskError, match=match):
        call()


def test_regression_shape_mismatch():
    with pytest.raises(TaskError, match=r"model output \(2, 3\) does not match targets \(2, 1\)"):
        get_task("node-regression").loss(torch.zeros(2, 3), torch.zeros(2))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda y, m: torch.where(m, y.double() * 2 - 3, torch.tensor(float("nan"), dtype=torch.float64)),
                     id="regression-negative-and-nan-outside-masks"),
        pytest.param(lambda y, m: torch.stack([y == 0, y == 1], 1).long(), id="multi-label-int"),
        pytest.param(lambda y, m: torch.stack([y == 0, y == 1, y == 2], 1).float(), id="multi-label-float"),
    ],
)
def test_task_labels_survive_partitioning(tmp_path, make):
    from distgnn.data import sbm
    from distgnn.partition import load_part, partition, reassemble

    d = sbm(num_nodes=200, num_classes=3, num_val=30, num_test=30, seed=0)
    masked = d.train_mask | d.val_mask | d.test_mask
    data = d.with_(y=make(d.y, masked))
    partition(data, 2, tmp_path / "p", method="range")
    back, _ = reassemble(tmp_path / "p", original_ids=True)
    assert back.y.dtype == data.y.dtype and torch.equal(back.y.nan_to_num(7.0), data.y.nan_to_num(7.0))
    part = load_part(tmp_path / "p", 1)
    assert part.y.shape[1:] == data.y.shape[1:]
