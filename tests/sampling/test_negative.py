import pytest
import torch

from distgnn.sampling.negative import NegativeSampler, edge_membership


def positives(e=300, n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    src, dst = torch.randint(0, n, (2, e), generator=g)
    return src, dst, torch.arange(e) * 3 + 7  # global edge ids need not be contiguous


@pytest.mark.parametrize("mode", ["corrupt-dst", "uniform"])
def test_same_negatives_whatever_the_batch(mode):
    src, dst, eid = positives()
    s = NegativeSampler(50, k=3, mode=mode, seed=4)
    ns, nd = s.sample(src, dst, eid, epoch=2)
    assert ns.shape == nd.shape == (900,) and ns.dtype == nd.dtype == torch.long
    assert 0 <= int(nd.min()) and int(nd.max()) < 50 and 0 <= int(ns.min()) and int(ns.max()) < 50
    if mode == "corrupt-dst":
        assert torch.equal(ns, src.repeat_interleave(3))
    else:
        assert not torch.equal(ns, src.repeat_interleave(3))
    # any permutation / split into batches / another sampler object gives the same rows
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(1))
    ps, pd = NegativeSampler(50, k=3, mode=mode, seed=4).sample(src[perm], dst[perm], eid[perm], epoch=2)
    rows = (perm[:, None] * 3 + torch.arange(3)).view(-1)
    assert torch.equal(ps, ns[rows]) and torch.equal(pd, nd[rows])
    parts = [s.sample(src[i:i + 64], dst[i:i + 64], eid[i:i + 64], 2) for i in range(0, 300, 64)]
    assert torch.equal(torch.cat([p[1] for p in parts]), nd)
    # epochs and seeds change them
    assert not torch.equal(s.sample(src, dst, eid, 3)[1], nd)
    assert not torch.equal(NegativeSampler(50, k=3, mode=mode, seed=5).sample(src, dst, eid, 2)[1], nd)


def test_uniform_distribution():
    n = 10
    src, dst, eid = positives(e=20_000, n=n)
    for mode in ("corrupt-dst", "uniform"):
        ns, nd = NegativeSampler(n, k=2, mode=mode).sample(src, dst, eid, 0)
        assert torch.allclose(torch.bincount(nd, minlength=n) / nd.numel(), torch.full((n,), 0.1), atol=0.01)
    assert torch.allclose(torch.bincount(ns, minlength=n) / ns.numel(), torch.full((n,), 0.1), atol=0.01)


def test_exclusion():
    # a dense graph: node 0 points to every node but 5 and 9, so corrupt-dst negatives of 0 are mostly positives
    n = 10
    ei = torch.stack([torch.zeros(8, dtype=torch.long), torch.tensor([0, 1, 2, 3, 4, 6, 7, 8])])
    member = edge_membership(ei, n)
    assert member(torch.tensor([0, 0, 1]), torch.tensor([4, 5, 0])).tolist() == [True, False, False]
    src, dst, eid = torch.zeros(400, dtype=torch.long), torch.ones(400, dtype=torch.long), torch.arange(400)
    plain = NegativeSampler(n, k=1).sample(src, dst, eid, 0)[1]
    ex = NegativeSampler(n, k=1, exclude=member, max_rounds=50).sample(src, dst, eid, 0)[1]
    assert set(ex.tolist()) == {5, 9} and not set(plain.tolist()) <= {5, 9}
    # draws that were not excluded keep their value; the result is still keyed by eid
    fine = (plain == 5) | (plain == 9)
    assert torch.equal(ex[fine], plain[fine])
    perm = torch.randperm(400)
    again = NegativeSampler(n, k=1, exclude=member, max_rounds=50).sample(src[perm], dst[perm], eid[perm], 0)[1]
    assert torch.equal(again, ex[perm])
    # after max_rounds a draw is kept even if excluded
    kept = NegativeSampler(n, k=1, exclude=member, max_rounds=1).sample(src, dst, eid, 0)[1]
    assert bool(member(src, kept).any()) and int(member(src, kept).sum()) < int(member(src, plain).sum())
    assert not bool(edge_membership(torch.zeros(2, 0, dtype=torch.long), 3)(torch.tensor([1]), torch.tensor([2])).any())


@pytest.mark.parametrize("call, match", [
    pytest.param(lambda: NegativeSampler(0), "NegativeSampler: num_nodes must be an int >= 1", id="nodes"),
    pytest.param(lambda: NegativeSampler(5, k=0), r"k \(--negatives\) must be an int >= 1", id="k"),
    pytest.param(lambda: NegativeSampler(5, mode="tail"), "unknown mode 'tail' .*corrupt-dst, uniform", id="mode"),
    pytest.param(lambda: NegativeSampler(5, seed=1.5), "NegativeSampler: seed must be an int", id="seed"),
    pytest.param(lambda: NegativeSampler(5, exclude=3), "exclude must be a callable", id="exclude"),
    pytest.param(lambda: NegativeSampler(5, max_rounds=-1), "max_rounds must be an int >= 0", id="rounds"),
    pytest.param(lambda: NegativeSampler(5).sample(torch.zeros(2, dtype=torch.long), torch.zeros(3, dtype=torch.long),
                                                   torch.zeros(2, dtype=torch.long), 0),
                 r"src, dst and eid must be \[B\] each", id="lengths"),
    pytest.param(lambda: NegativeSampler(5).sample(torch.zeros(2), torch.zeros(2), torch.zeros(2), 0.5),
                 "epoch must be an int", id="epoch"),
    pytest.param(lambda: NegativeSampler(5, exclude=lambda u, v: u).sample(
        torch.ones(2, dtype=torch.long), torch.ones(2, dtype=torch.long), torch.arange(2), 0),
        r"exclude\(u, v\) must return a bool tensor \[2\]", id="exclude-result"),
])
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
