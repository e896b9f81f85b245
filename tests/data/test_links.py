import numpy as np
import pytest
import torch

from distgnn.data import DataError, GraphData
from distgnn.data.links import (
    SPLIT_TEST,
    SPLIT_TRAIN,
    SPLIT_VAL,
    edge_split_codes,
    eval_negatives,
    parse_edge_split,
    split_links,
)
from distgnn.data.synthetic import sbm


def undirected(n=400, e=3000, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randint(0, n, (2, e), generator=g)
    return GraphData(torch.stack([torch.cat([a, b]), torch.cat([b, a])]), n, x=torch.randn(n, 3, generator=g),
                     edge_attr=torch.arange(2 * e, dtype=torch.float32)[:, None])


def test_parse_edge_split():
    assert parse_edge_split("0.85,0.05,0.10") == (0.85, 0.05, 0.10)
    assert parse_edge_split("1,0,0") == (1.0, 0.0, 0.0)


@pytest.mark.parametrize("text, match", [
    pytest.param("0.8,0.1", "--edge-split must be three fractions", id="two"),
    pytest.param("0.8,0.1,x", "--edge-split must be three numbers", id="not-a-number"),
    pytest.param("0.8,0.1,0.2", r"--edge-split fractions must sum to 1, got .*sum 1\.1", id="sum"),
    pytest.param("1.5,-0.5,0", "--edge-split must be three fractions in", id="range"),
])
def test_parse_edge_split_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_edge_split(text)


def test_codes_symmetric_seeded_and_fractions():
    g = torch.Generator().manual_seed(1)
    u, v = torch.randint(0, 100_000, (2, 200_000), generator=g).numpy()
    f = (0.85, 0.05, 0.10)
    c = edge_split_codes(u, v, f, seed=3)
    assert c.dtype == np.int8 and set(np.unique(c)) == {0, 1, 2}
    assert np.array_equal(c, edge_split_codes(v, u, f, seed=3))  # both directions
    assert np.array_equal(c, edge_split_codes(torch.from_numpy(u), torch.from_numpy(v), f, seed=3))
    assert not np.array_equal(c, edge_split_codes(u, v, f, seed=4))
    share = np.bincount(c, minlength=3) / c.size
    assert np.allclose(share, f, atol=0.005), share
    # streamable: chunk by chunk equals the whole
    chunks = np.concatenate([edge_split_codes(u[i:i + 7777], v[i:i + 7777], f, 3) for i in range(0, u.size, 7777)])
    assert np.array_equal(chunks, c)
    # a degenerate split puts everything in train
    assert not edge_split_codes(u, v, (1.0, 0.0, 0.0), 3).any()
    assert (edge_split_codes(u, v, (0.0, 0.0, 1.0), 3) == 2).all()


def test_split_links_undirected_graph():
    data = undirected()
    train, s = split_links(data, (0.7, 0.1, 0.2), seed=5, eval_negatives=3)
    ei = data.edge_index
    codes = edge_split_codes(ei[0], ei[1], (0.7, 0.1, 0.2), 5)
    # training graph: exactly the code-0 edges in input order, with their features
    keep = torch.from_numpy(codes == SPLIT_TRAIN)
    assert torch.equal(train.edge_index, ei[:, keep]) and torch.equal(s.train_edge_index, train.edge_index)
    assert torch.equal(s.train_eid, torch.arange(int(keep.sum())))
    assert torch.equal(train.edge_attr[:, 0].long(), keep.nonzero().view(-1))  # features follow their edges
    assert torch.equal(train.x, data.x)
    # no val/test pair survives in the training graph, in either direction
    tr = set(map(tuple, train.edge_index.t().tolist()))
    pos = s.label == 1
    for a, b in zip(s.src[pos].tolist(), s.dst[pos].tolist()):
        assert (a, b) not in tr and (b, a) not in tr
    # candidates: positive then its k negatives per query, query ids 0..P-1 in edge-id order
    k, p = 3, int((~keep).sum())
    assert s.src.numel() == p * (1 + k)
    assert torch.equal(s.query, torch.arange(p).repeat_interleave(1 + k))
    assert torch.equal(s.label.view(p, 1 + k), torch.tensor([1, 0, 0, 0], dtype=torch.int8).expand(p, 4))
    evals = (~keep).nonzero().view(-1)
    assert torch.equal(s.src.view(p, 4)[:, 0], ei[0, evals]) and torch.equal(s.dst.view(p, 4)[:, 0], ei[1, evals])
    assert torch.equal(s.src.view(p, 4), ei[0, evals][:, None].expand(p, 4))  # negatives keep the source
    assert torch.equal(s.split.view(p, 4)[:, 0].long(), torch.from_numpy(codes[evals.numpy()]).long())
    assert bool((s.split.view(p, 4) == s.split.view(p, 4)[:, :1]).all())
    assert int(s.dst.min()) >= 0 and int(s.dst.max()) < data.num_nodes
    assert s.counts() == {"train": int(keep.sum()), "val": int((codes == SPLIT_VAL).sum()),
                          "test": int((codes == SPLIT_TEST).sum())}
    val = s.candidates("val")
    assert set(val) == {"src", "dst", "label", "query"} and int(val["label"].sum()) == s.counts()["val"]
    # reproducible
    _, again = split_links(data, (0.7, 0.1, 0.2), seed=5, eval_negatives=3)
    assert all(torch.equal(getattr(s, f), getattr(again, f)) for f in ("src", "dst", "split", "label", "query"))


def test_eval_negatives_keyed_by_query():
    src, dst = np.arange(50) % 7, np.arange(50) % 11
    s, d = eval_negatives(src, dst, 4, 1000, seed=2)
    assert s.shape == d.shape == (200,) and np.array_equal(s, np.repeat(src, 4))
    assert 0 <= d.min() and d.max() < 1000 and np.unique(d).size > 150
    # a chunk with its query ids equals the same rows of the whole
    s2, d2 = eval_negatives(src[20:30], dst[20:30], 4, 1000, seed=2, query=np.arange(20, 30))
    assert np.array_equal(d2, d[80:120]) and np.array_equal(s2, s[80:120])
    assert not np.array_equal(eval_negatives(src, dst, 4, 1000, seed=3)[1], d)
    assert eval_negatives(src, dst, 0, 1000, seed=2)[0].size == 0
    # uniform over the nodes
    _, many = eval_negatives(np.zeros(20_000), np.zeros(20_000), 5, 10, seed=0)
    assert np.allclose(np.bincount(many, minlength=10) / many.size, 0.1, atol=0.01)


def test_split_links_on_a_generated_graph_keeps_fractions():
    data = sbm(num_nodes=2000, num_classes=4, avg_degree=10, seed=0)
    _, s = split_links(data, seed=0)
    c = s.counts()
    e = data.num_edges
    assert abs(c["val"] / e - 0.05) < 0.01 and abs(c["test"] / e - 0.10) < 0.015 and sum(c.values()) == e


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda: edge_split_codes([0], [1], (0.5, 0.5), 0), "edge split must be three fractions", id="two"),
    pytest.param(lambda: edge_split_codes([0], [1], (0.5, 0.5, 0.5), 0), "edge split fractions must sum to 1",
                 id="sum"),
    pytest.param(lambda: edge_split_codes([0], [1], (1, 0, 0), 0.5), "edge split seed must be an int", id="seed"),
    pytest.param(lambda: edge_split_codes([0, 1], [1], (1, 0, 0), 0), "src and dst differ in length", id="length"),
    pytest.param(lambda: eval_negatives([0], [1], -1, 5, 0), "--eval-negatives must be an int >= 0", id="k"),
    pytest.param(lambda: eval_negatives([0], [1], 1, 0, 0), "eval negatives need num_nodes >= 1", id="nodes"),
    pytest.param(lambda: eval_negatives([0], [1], 1, 5, 0, query=[0, 1]), "query has 2 ids for 1 positives",
                 id="query"),
    pytest.param(lambda: split_links("g"), "split_links needs a GraphData, got str", id="data"),
])
def test_errors(call, match):
    with pytest.raises((ValueError, DataError), match=match):
        call()
