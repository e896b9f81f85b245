"""The link-prediction task: BCE sum and exact metrics against plain float64 reference code."""
import math

import pytest
import torch
import torch.nn.functional as F

from distgnn.tasks import TASKS, LinkPrediction, TaskError, get_task


def ref_auc(s, y):
    pos = [a for a, l in zip(s, y) if l]
    neg = [a for a, l in zip(s, y) if not l]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def ref_ap(s, y):
    total = sum(y)
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(s), reverse=True):
        chosen = [l for a, l in zip(s, y) if a >= t]
        tp = sum(chosen)
        precision, recall = tp / len(chosen), tp / total
        ap += (recall - prev_recall) * precision
        prev_recall = recall
    return ap


def ref_hits(s, y, k):
    neg = sorted((a for a, l in zip(s, y) if not l), reverse=True)
    pos = [a for a, l in zip(s, y) if l]
    if len(neg) < k:
        return 1.0
    return sum(p > neg[k - 1] for p in pos) / len(pos)


def ref_mrr(s, y, q):
    total, count = 0.0, 0
    for query in sorted(set(q)):
        rows = [(a, l) for a, l, b in zip(s, y, q) if b == query]
        pos = [a for a, l in rows if l]
        if not pos:
            continue
        neg = [a for a, l in rows if not l]
        rank = 1 + (sum(n > pos[0] for n in neg) + sum(n >= pos[0] for n in neg)) / 2
        total += 1 / rank
        count += 1
    return total / count


def candidates(n_queries, k, ties, seed):
    g = torch.Generator().manual_seed(seed)
    m = n_queries * (1 + k)
    scores = torch.randint(0, 4, (m,), generator=g).double() if ties else torch.randn(m, generator=g, dtype=torch.float64)
    label = torch.zeros(n_queries, 1 + k, dtype=torch.int8)
    label[:, 0] = 1
    query = torch.arange(n_queries).repeat_interleave(1 + k)
    perm = torch.randperm(m, generator=g)  # row order must not matter
    return scores[perm], label.view(-1)[perm], query[perm]


@pytest.mark.parametrize("n_queries, k, ties, hits_k", [
    pytest.param(7, 3, False, 5, id="distinct"),
    pytest.param(9, 4, True, 3, id="ties"),
    pytest.param(5, 1, True, 50, id="fewer-negatives-than-K"),
    pytest.param(30, 2, False, 10, id="larger"),
])
@pytest.mark.parametrize("seed", [0, 1])
def test_metrics_equal_reference(n_queries, k, ties, hits_k, seed):
    s, y, q = candidates(n_queries, k, ties, seed)
    got = LinkPrediction(hits_k).metrics(s.float() if not ties else s, y, q)
    sl, yl, ql = s.float().double().tolist() if not ties else s.tolist(), y.tolist(), q.tolist()
    want = {"auc": ref_auc(sl, yl), "ap": ref_ap(sl, yl), f"hits@{hits_k}": ref_hits(sl, yl, hits_k),
            "mrr": ref_mrr(sl, yl, ql)}
    assert set(got) == set(want)
    for name in want:
        assert got[name] == pytest.approx(want[name], abs=1e-12), name


def test_metrics_known_values():
    lp = LinkPrediction(hits_k=1)
    # perfect ranking
    m = lp.metrics(torch.tensor([3.0, 1.0, 2.0, 0.0]), torch.tensor([1, 0, 1, 0]), torch.tensor([0, 0, 1, 1]))
    assert m == {"auc": 1.0, "ap": 1.0, "hits@1": 1.0, "mrr": 1.0}
    # all tied: AUC 1/2, AP = base rate, MRR with the pessimistic/optimistic average
    m = lp.metrics(torch.zeros(4), torch.tensor([1, 0, 0, 0]), torch.zeros(4, dtype=torch.long))
    assert m["auc"] == 0.5 and m["ap"] == 0.25 and m["hits@1"] == 0.0 and m["mrr"] == pytest.approx(1 / 2.5)
    # no negatives: only MRR is defined
    m = lp.metrics(torch.ones(2), torch.ones(2), torch.arange(2))
    assert math.isnan(m["auc"]) and math.isnan(m["ap"]) and m["mrr"] == 1.0


def test_loss_is_bce_sum():
    logits = torch.randn(6, dtype=torch.float64, requires_grad=True)
    label = torch.tensor([1, 0, 1, 1, 0, 0], dtype=torch.int8)
    got = LinkPrediction().loss(logits, label)
    want = sum(-math.log(torch.sigmoid(v).item()) if l else -math.log(1 - torch.sigmoid(v).item())
               for v, l in zip(logits, label.tolist()))
    assert got.item() == pytest.approx(want, rel=1e-12)
    assert torch.allclose(got, F.binary_cross_entropy_with_logits(logits, label.double(), reduction="sum"))


def test_registry():
    assert "link-prediction" in TASKS
    task = get_task("link-prediction")
    assert isinstance(task, LinkPrediction) and task.primary == "auc" and task.higher_is_better
    assert get_task(task) is task and get_task("link-prediction", loss="bce").hits_k == 50


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda: LinkPrediction(0), "link-prediction: hits_k must be an int >= 1, got 0", id="hits-k"),
    pytest.param(lambda: get_task("link-prediction", loss="mse"), "link-prediction: unknown loss 'mse'", id="loss"),
    pytest.param(lambda: LinkPrediction().metrics(torch.zeros(3), torch.zeros(2), torch.zeros(3)),
                 r"scores, label and query differ in length \(3, 2, 3\)", id="length"),
    pytest.param(lambda: LinkPrediction().metrics(torch.tensor([0.0, math.nan]), torch.tensor([1, 0]),
                                                  torch.zeros(2)), "scores contain NaN", id="nan"),
    pytest.param(lambda: LinkPrediction().metrics(torch.zeros(3), torch.tensor([1, 1, 0]), torch.zeros(3)),
                 "query 0 has 2 positives; MRR needs one positive per query", id="two-positives"),
])
def test_errors(call, match):
    with pytest.raises(TaskError, match=match):
        call()
