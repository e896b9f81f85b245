"""Link prediction through the runtime: distributed == single process, full-graph and sampled.

A small graph is split (``--edge-split``) and partitioned by the real partitioner; workers
(:class:`~distgnn.launch.worker.Worker`) in 2 or 3 gloo processes train a few epochs, and the
loss of every epoch, the parameters and the validation/test metrics must equal one process on the
same training graph (in the partition's ids):

- full-graph: :func:`distgnn.train.link.train_link` itself (one step per epoch on every
  training edge);
- sampled: the driver's batches (:meth:`~distgnn.launch.link.LinkSampledDriver.plan`: one
  global shuffle, every worker's own edges in chunks of ``ceil(batch / W)``), each worker's
  positives, keyed negatives and sampled neighbourhood, one optimiser step per global batch; on
  one worker that is ``train_link``'s sampled loop (checked too).

On 3 ranks one rank owns only nodes without incoming training edges: it has no positive edge
and no candidate, yet takes part in every exchange. Then the real ``launch(...)`` on Ray
(checkpoint, resume), the CLI, the errors, and Cora (slow): distributed within 1 point of one
process.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from distgnn.data import GraphData
from distgnn.data.links import LinkSplit
from distgnn.graph import Graph
from distgnn.launch.link import LinkSampledDriver, build_link_model, merge_link_edges
from distgnn.launch.seeds import mix_seed
from distgnn.partition import load_manifest, load_part
from distgnn.sampling import NeighborSampler, sample_subgraph
from distgnn.sampling.negative import NegativeSampler, edge_membership
from distgnn.tasks import get_task
from distgnn.train import TrainConfig
from distgnn.train.link import train_link
from tests.launch.spawn import run_ranks

N, F_IN, HIDDEN, S = 30, 6, 8, 2
LR, WD = 0.01, 5e-4
SPLIT = (0.7, 0.15, 0.15)


def link_graph(seed: int = 0) -> GraphData:
    """An undirected graph (both directions of every pair) whose nodes 24..29 have no in-edge."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, N, (70,), generator=g)
    dst = torch.randint(0, 24, (70,), generator=g)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    back = src < 24  # the reverse of an edge into 0..23 from 0..23
    ei = torch.cat([torch.stack([src, dst]), torch.stack([dst[back], src[back]])], 1)
    x = torch.randn(N, F_IN, generator=g)
    e = torch.rand(ei.shape[1], S, generator=g)
    return GraphData(edge_index=ei, num_nodes=N, x=x, edge_attr=e, name="link-graph")


# parts: 2 interleaved; 3 with part 2 owning only nodes 24..29 (no in-edge: no positive, no candidate)
ASSIGN = {2: torch.arange(N) % 2, 3: torch.cat([torch.arange(24) % 2, torch.full((6,), 2)])}


def link_parts(out, world: int, *, eval_negatives: int = 2, seed: int = 0) -> str:
    from distgnn.partition import partition
    from tests.launch.shards import FixedPartitioner

    method = FixedPartitioner(tuple(int(a) for a in ASSIGN[world]))
    partition(link_graph(), world, out, method=method, edge_split=SPLIT, eval_negatives=eval_negatives,
              split_seed=seed)
    return str(out)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("link")
    return {w: link_parts(root / f"parts-{w}", w) for w in (2, 3)}


def from_parts(parts_dir: str) -> tuple[GraphData, LinkSplit, list[int]]:
    """The single-process view of a partition: the training graph in its ids (edges in eid
    order), the split's candidates, and ``starts``."""
    m = load_manifest(parts_dir)
    ps = [load_part(parts_dir, k, m) for k in range(m.num_parts)]
    eid = torch.cat([p.eid for p in ps])
    order = torch.argsort(eid)
    ei = torch.cat([p.edge_index for p in ps], 1)[:, order]
    e = torch.cat([p.edge_attr.reshape(p.eid.numel(), S) for p in ps])[order] if ps[0].edge_attr is not None else None
    le = merge_link_edges(ps)
    split = LinkSplit(train_edge_index=ei, train_eid=eid[order], **le)
    data = GraphData(edge_index=ei, num_nodes=m.num_nodes, x=torch.cat([p.x for p in ps]), edge_attr=e, name="parts")
    return data, split, [p.node_start for p in m.parts] + [m.num_nodes]


def config(parts_dir: str, world: int, **kw):
    from distgnn.launch import RunConfig

    base = dict(parts=parts_dir, task="link-prediction", model="sage", hidden=HIDDEN, embedding_dim=6, dropout=0.0, lr=LR,
                weight_decay=WD, epochs=3, workers=world, threads_per_worker=1, fanouts=(3, 2), batch_size=10)
    base.update(kw)
    return RunConfig(**base)


# -- workers in real processes ---------------------------------------------------------------------------
def _train(rank, world, parts_dir, kw):
    from distgnn.launch.worker import Worker

    m = load_manifest(parts_dir)
    starts = [p.node_start for p in m.parts] + [m.num_nodes]
    cfg = config(parts_dir, world, **kw)
    w = Worker(rank, world, cfg.to_dict())
    info = w.load(parts_dir, [rank], starts)
    planner = None
    if cfg.mode == "sampled":  # the driver's plan, computed alike on every rank
        planner = LinkSampledDriver(cfg)
        planner.prepare([{"train_eids": load_part(parts_dir, k, m).eid.numpy()} for k in range(world)], starts)
    losses, stats = [], None
    for epoch in range(1, cfg.epochs + 1):
        plan = None
        if planner is not None:
            per_worker, steps = planner.plan(epoch)
            plan = (per_worker[rank].numpy(), steps)
        stats = w.run_epoch(epoch, plan, epoch == cfg.epochs)
        losses.append(stats.loss)
    state = {k: v.numpy() for k, v in w.state()["model"].items()}
    return state, losses, stats.metrics, info["train"], w.digest()


def reference(parts_dir: str, world: int, **kw):
    """One process, the runtime's steps: ``(state, losses per epoch, metrics)``."""
    cfg = config(parts_dir, world, **kw)
    data, split, starts = from_parts(parts_dir)
    torch.manual_seed(cfg.seed)
    model = build_link_model(cfg, F_IN, S)
    losses = []
    train_cfg = TrainConfig(epochs=cfg.epochs, lr=LR, weight_decay=WD, seed=cfg.seed)
    common = dict(negatives=cfg.negatives, neg_mode=cfg.neg_sampling, exclude_positives=cfg.exclude_positives,
                  on_epoch=lambda s: losses.append(s.loss))
    if cfg.mode == "full" or world == 1:
        res = train_link(model, data, split, train_cfg, mode=cfg.mode, fanouts=cfg.fanouts, batch_size=cfg.batch_size,
                         **common)
        metrics = {f"{s}_{k}": v for s, d in (("val", res.val), ("test", res.test)) for k, v in d.items()}
        return model.state_dict(), losses, metrics
    return sampled_reference(model, data, split, starts, cfg)


def sampled_reference(model, data, split, starts, cfg):
    """Sampled link prediction in one process with ``cfg.workers`` workers' batches."""
    from distgnn.train.link import evaluate_link

    world = cfg.workers
    task = get_task("link-prediction")
    n = data.num_nodes
    src, dst = split.train_edge_index
    owner = torch.searchsorted(torch.tensor(starts), dst, right=True) - 1  # the worker storing each edge
    exclude = edge_membership(split.train_edge_index, n) if cfg.exclude_positives else None
    negs = NegativeSampler(n, cfg.negatives, cfg.neg_sampling, seed=cfg.seed, exclude=exclude)
    sampler = NeighborSampler(data.edge_index, n, cfg.fanouts, eid=split.train_eid)
    opt = torch.optim.Adam(model.param_groups(WD), lr=LR)
    planner = LinkSampledDriver(cfg)
    planner.prepare([{"train_eids": split.train_eid[owner == r].numpy()} for r in range(world)], starts)
    local = -(-cfg.batch_size // world)
    losses = []
    for epoch in range(1, cfg.epochs + 1):
        per_worker, steps = planner.plan(epoch)
        chunks = [list(torch.split(e, local)) for e in per_worker]
        model.train()
        total, count = 0.0, 0
        for k in range(steps):
            opt.zero_grad()
            rows = 0
            for w in range(world):
                if k >= len(chunks[w]):
                    continue
                pos = torch.searchsorted(split.train_eid, chunks[w][k])
                s, d, e = src[pos], dst[pos], split.train_eid[pos]
                ns, nd = negs.sample(s, d, e, epoch)
                u, v = torch.cat([s, ns]), torch.cat([d, nd])
                seeds = torch.unique(torch.cat([u, v]))
                sub = sample_subgraph(sampler.sample_fn, seeds, cfg.fanouts, seed=mix_seed(cfg.seed, epoch, k),
                                      num_nodes=n)
                inputs = {"e": data.edge_attr[torch.searchsorted(split.train_eid, sub.eid)]} if model.takes_edges else {}
                h = model(data.x[sub.node_ids], Graph(sub.edge_index, int(sub.node_ids.numel())), **inputs)
                logits = model.score(h[torch.searchsorted(seeds, u)], h[torch.searchsorted(seeds, v)])
                label = torch.cat([torch.ones(s.numel()), torch.zeros(ns.numel())])
                loss = task.loss(logits, label)
                loss.backward()
                total += float(loss.detach())
                rows += int(label.numel())
            count += rows
            for p in model.parameters():
                if p.grad is not None:
                    p.grad /= rows
            opt.step()
        losses.append(total / count)
    inputs = {"e": data.edge_attr} if model.takes_edges else {}
    res = evaluate_link(model, task, data.x, Graph(data.edge_index, n), inputs, split)
    metrics = {f"{s}_{k}": v for s in ("val", "test") for k, v in res[s].items()}
    return model.state_dict(), losses, metrics


def check_equal(results, want, world: int, label: str):
    state, losses, metrics = want
    assert len({r[4] for r in results}) == 1, f"{label}: replicas differ"
    for rank in range(world):
        got_state, got_losses, got_metrics, _, _ = results[rank]
        assert got_losses == pytest.approx(losses, rel=1e-5, abs=1e-7), label
        for k, v in state.items():
            torch.testing.assert_close(torch.from_numpy(got_state[k]), v, atol=2e-5, rtol=1e-4,
                                       msg=lambda m: f"{label} {k} rank {rank}: {m}")
        assert set(got_metrics) == set(metrics) and {"val_auc", "test_ap", "test_mrr", "test_hits@50"} <= set(metrics)
        assert got_metrics == pytest.approx(metrics, rel=1e-5, abs=1e-6), label


def _train_cases(rank, world, parts_dir, cases):
    return [_train(rank, world, parts_dir, kw) for kw in cases]  # one process start for every case


CASES = {
    2: [dict(mode="full"), dict(mode="sampled"), dict(mode="sampled", model="ECCConv")],  # ECCConv: edge features
    3: [dict(mode="full", negatives=2, neg_sampling="uniform", decoder="mlp"),
        dict(mode="full", negatives=3, exclude_positives=True),
        dict(mode="sampled", negatives=2, exclude_positives=True)],
}


@pytest.mark.multiprocess
@pytest.mark.parametrize("world", [2, 3])
def test_distributed_link_prediction_equals_single_process(parts, tmp_path, world):
    """Full-graph and sampled, dot and MLP decoders, corrupt-dst and uniform negatives, with and
    without excluding known positives, an encoder of edge features (ECCConv, sampled: the sampled
    edges' rows come from the workers storing them): loss of every epoch, parameters and metrics
    as one process."""
    results = run_ranks(_train_cases, world, tmp_path, parts[world], CASES[world], timeout=300)
    for i, kw in enumerate(CASES[world]):
        per_rank = [r[i] for r in results]
        if world == 3:
            assert per_rank[2][3] == 0, "rank 2 owns no positive edge"
        check_equal(per_rank, reference(parts[world], world, **kw), world, f"{world} ranks {kw}")


def test_sampled_reference_on_one_worker_is_train_link(parts):
    """The batch rules of the runtime on one worker are train_link's sampled loop."""
    cfg_kw = dict(mode="sampled", negatives=2, exclude_positives=True)
    cfg = config(parts[2], 1, **cfg_kw)
    data, split, starts = from_parts(parts[2])
    torch.manual_seed(cfg.seed)
    mine = sampled_reference(build_link_model(cfg, F_IN, S), data, split, [starts[0], starts[-1]], cfg)
    theirs = reference(parts[2], 1, **cfg_kw)
    assert mine[1] == pytest.approx(theirs[1], rel=1e-6)
    for k, v in theirs[0].items():
        torch.testing.assert_close(mine[0][k], v, atol=1e-6, rtol=1e-5)


# -- through the real launch(...) on Ray ---------------------------------------------------------------
def gcn_encoder(in_channels: int, out_channels: int) -> torch.nn.Module:
    """A user encoder (bring your own model): a module-level builder, forward(x, graph, **inputs)."""
    from distgnn.layers import GCNConv

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(in_channels, HIDDEN)
            self.conv = GCNConv(out_channels)

        def forward(self, x, graph, **inputs):
            return self.conv(torch.relu(self.lin(x)), graph)

    return Encoder()


@pytest.mark.slow
@pytest.mark.multiprocess
def test_launch_link_prediction_checkpoints_and_resume(ray_session, parts, tmp_path):
    """launch(model=<encoder builder>, task="link-prediction"): the checkpoint after 3 epochs equals
    one process; a run stopped after 2 epochs and resumed, and a run that loses a worker and
    recovers from its checkpoint, end with the same parameters."""
    from distgnn.launch import LaunchError, launch, load_checkpoint

    base = dict(parts=parts[2], task="link-prediction", embedding_dim=6, lr=LR, weight_decay=WD, workers=2,
                threads_per_worker=1, timeout_s=120, max_restarts=0, checkpoint_every=1)
    res = launch(epochs=3, checkpoint_dir=str(tmp_path / "a"), mode="sampled", fanouts=(3, 2), batch_size=10,
                 model=gcn_encoder, **base)
    cfg = config(parts[2], 2, mode="sampled", model=gcn_encoder)
    want_state, want_losses, want_metrics = reference(parts[2], 2, mode="sampled", model=gcn_encoder)
    state = load_checkpoint(str(tmp_path / "a" / "checkpoint-000003.pt"))
    for k, v in want_state.items():
        torch.testing.assert_close(state["model"][k], v, atol=2e-5, rtol=1e-4)
    assert [h.loss for h in res.history] == pytest.approx(want_losses, rel=1e-5)
    assert res.metrics == pytest.approx(want_metrics, rel=1e-5, abs=1e-6) and cfg.task == "link-prediction"
    assert len(set(res.digests)) == 1

    # stopped after 2 epochs, resumed to 3: the same parameters as the uninterrupted run
    launch(epochs=2, checkpoint_dir=str(tmp_path / "b"), mode="sampled", fanouts=(3, 2), batch_size=10,
           model=gcn_encoder, **base)
    resumed = launch(epochs=3, checkpoint_dir=str(tmp_path / "b"), resume=True, mode="sampled", fanouts=(3, 2),
                     batch_size=10, model=gcn_encoder, **base)
    assert [h.epoch for h in resumed.history] == [3]
    again = load_checkpoint(str(tmp_path / "b" / "checkpoint-000003.pt"))
    for k, v in state["model"].items():
        torch.testing.assert_close(again["model"][k], v, atol=0, rtol=0)
    # a worker killed after epoch 2: the run restarts from its checkpoint and ends as the straight run
    import os
    import signal

    from distgnn.launch import Driver, RunConfig

    driver = Driver(RunConfig(epochs=3, checkpoint_dir=str(tmp_path / "c"), mode="sampled", fanouts=(3, 2),
                              batch_size=10, model=gcn_encoder, **{**base, "max_restarts": 1}))
    killed = []

    def kill_once(stats):
        if stats.epoch == 2 and not killed:
            killed.append(driver.pids[1])
            os.kill(driver.pids[1], signal.SIGKILL)

    driver.on_epoch = kill_once
    recovered = driver.run()
    assert killed and recovered.restarts == 1 and recovered.digests == res.digests
    # a checkpoint of another decoder is refused before any worker starts
    with pytest.raises(LaunchError, match=r"written with different settings \(decoder\)"):
        launch(epochs=4, checkpoint_dir=str(tmp_path / "b"), resume=True, decoder="mlp", model=gcn_encoder, **base)


# -- pieces and errors ----------------------------------------------------------------------------------
def test_split_edges_gives_every_worker_the_same_step_count():
    from distgnn.launch.link import split_edges

    order = torch.tensor([9, 2, 7, 4, 0, 5, 8])
    owner = torch.tensor([2, 0, 2, 0, 2, 2, 2])  # worker 1 stores no edge
    per_worker, steps = split_edges(order, owner, 3, batch_size=6)  # 2 positives per worker and step
    assert [w.tolist() for w in per_worker] == [[2, 4], [], [9, 7, 0, 5, 8]]
    assert steps == 3
    assert split_edges(order[:0], owner[:0], 3, batch_size=6)[1] == 1


def test_link_options_are_checked():
    from distgnn.launch import RunConfig

    with pytest.raises(ValueError, match="decoder must be one of dot, mlp, got 'cosine'"):
        RunConfig(task="link-prediction", decoder="cosine")
    with pytest.raises(ValueError, match="neg_sampling must be one of corrupt-dst, uniform, got 'hard'"):
        RunConfig(task="link-prediction", neg_sampling="hard")
    with pytest.raises(ValueError, match="negatives must be an integer >= 1, got 0"):
        RunConfig(task="link-prediction", negatives=0)
    with pytest.raises(ValueError, match="embedding_dim must be an integer >= 1, got 0"):
        RunConfig(task="link-prediction", embedding_dim=0)
    with pytest.raises(ValueError, match="cache_policy 'prepass' measures node seeds; link prediction caches by "
                                         "in-degree"):
        RunConfig(task="link-prediction", mode="sampled", cache_mb=1.0, cache_policy="prepass")


def test_launch_refuses_a_partition_without_edge_split_or_features(tmp_path):
    """Checked on the driver, before Ray or any worker starts."""
    from distgnn.launch import LaunchError, launch
    from tests.launch.shards import write_parts

    data = link_graph()
    plain = write_parts(tmp_path / "plain", data.edge_index, N, ASSIGN[2], x=data.x)
    with pytest.raises(LaunchError, match="the partition has no edge split; link prediction needs one "
                                          r"\(partition with --edge-split 0.85,0.05,0.10"):
        launch(parts=plain, task="link-prediction", workers=2, run_dir="")
    from distgnn.partition import partition

    featureless = str(tmp_path / "featureless")
    partition(data.with_(x=None), 2, featureless, method="random", edge_split=SPLIT)
    with pytest.raises(LaunchError, match="the partition has no features column; link prediction needs node "
                                          "features"):
        launch(parts=featureless, task="link-prediction", workers=2, run_dir="")


def _load_rank(rank, world, parts_dir):
    from distgnn.launch.worker import Worker

    m = load_manifest(parts_dir)
    try:
        Worker(rank, world, config(parts_dir, world).to_dict()).load(
            parts_dir, [rank], [p.node_start for p in m.parts] + [m.num_nodes])
    except ValueError as err:
        return str(err)


@pytest.mark.multiprocess
def test_a_split_without_training_or_evaluation_edges_is_refused(tmp_path):
    """Every worker refuses the same partition with the same one line (the counts are all-reduced)."""
    from distgnn.partition import partition
    from tests.launch.shards import FixedPartitioner

    method = FixedPartitioner(tuple(int(a) for a in ASSIGN[2]))
    no_eval, no_train = str(tmp_path / "no-eval"), str(tmp_path / "no-train")
    partition(link_graph(), 2, no_eval, method=method, edge_split=(1.0, 0.0, 0.0))
    partition(link_graph(), 2, no_train, method=method, edge_split=(0.0, 0.5, 0.5))
    assert run_ranks(_load_rank, 2, tmp_path, no_eval, timeout=120) == [
        "the partition has no validation or test edge: partition it with --edge-split (python -m "
        "distgnn.partition ... --edge-split 0.85,0.05,0.10)"] * 2
    assert run_ranks(_load_rank, 2, tmp_path, no_train, timeout=120) == [
        "the partition has no training edge (link prediction trains on the edges of its graph)"] * 2


# -- Cora ------------------------------------------------------------------------------------------------
CORA_SEEDS = (0, 1, 2, 3, 4)


CORA = dict(model="gcn", hidden=128, embedding_dim=64, dropout=0.0, lr=0.01, weight_decay=5e-4, epochs=100)


def _cora_rank(rank, world, parts_by_seed):
    """Every seed's run on this rank (one process start for all of them): test AUC and AP."""
    from distgnn.launch import RunConfig
    from distgnn.launch.worker import Worker

    torch.set_num_threads(1)
    out = []
    for seed, parts_dir in parts_by_seed:
        m = load_manifest(parts_dir)
        cfg = RunConfig(parts=parts_dir, task="link-prediction", workers=world, threads_per_worker=1, seed=seed, **CORA)
        w = Worker(rank, world, cfg.to_dict())
        w.load(parts_dir, [rank], [p.node_start for p in m.parts] + [m.num_nodes])
        for epoch in range(1, cfg.epochs + 1):
            stats = w.run_epoch(epoch, None, epoch == cfg.epochs)
        out.append((stats.metrics["test_auc"], stats.metrics["test_ap"]))
    return out


@pytest.mark.slow
@pytest.mark.multiprocess
def test_cora_gcn_dot_distributed_within_one_point_of_single_process(tmp_path):
    """GAE-style link prediction on Cora (GCN 128 -> 64, dot
    decoder, raw features, 85/5/10 split seeded like training, 100 epochs, 5 seeds): 2 workers
    (METIS parts, full-graph) against one process on the original graph. Training negatives are
    drawn in the partition's ids, so the runs differ by their negatives; the test metrics must
    agree within 1 point on average (and 2 per seed), and reach AUC and AP >= 0.90 each, in one
    process and distributed (the published GAE: 91.0 / 92.0)."""
    from distgnn.data.links import split_links
    from distgnn.data.transforms import load_dataset
    from distgnn.models import link_model_builder, model_builder
    from distgnn.partition import partition

    cora = load_dataset("cora", transform="none")
    parts = []
    for seed in CORA_SEEDS:
        parts.append((seed, str(tmp_path / f"cora-{seed}")))
        partition(cora, 2, parts[-1][1], method="metis", seed=0, edge_split=(0.85, 0.05, 0.10), split_seed=seed)
    distributed = run_ranks(_cora_rank, 2, tmp_path, parts, timeout=900)
    assert distributed[0] == distributed[1]
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker (more threads on a busy machine only slow it down)
    for seed, (dist_auc, dist_ap) in zip(CORA_SEEDS, distributed[0]):
        data, split = split_links(cora, (0.85, 0.05, 0.10), seed=seed)
        build = link_model_builder(model_builder("gcn", hidden=128, dropout=0.0), "dot", embedding_dim=64)
        single = train_link(build, data, split, TrainConfig(epochs=100, lr=0.01, weight_decay=5e-4, seed=seed))
        rows.append((seed, single.test["auc"], dist_auc, single.test["ap"], dist_ap))
    torch.set_num_threads(threads)
    print("\nCora link prediction (GCN + dot, 85/5/10), test AUC / AP: one process vs 2 workers")
    for seed, sa, da, sp, dp in rows:
        print(f"seed {seed}: AUC {sa:.4f} vs {da:.4f}   AP {sp:.4f} vs {dp:.4f}")
    means = np.mean([r[1:] for r in rows], axis=0)
    print(f"mean:   AUC {means[0]:.4f} vs {means[1]:.4f}   AP {means[2]:.4f} vs {means[3]:.4f}")
    assert abs(means[0] - means[1]) <= 0.01 and abs(means[2] - means[3]) <= 0.01, means
    for seed, sa, da, sp, dp in rows:  # GAE's figures (91.0 AUC / 92.0 AP) one process and distributed
        assert sa >= 0.90 and sp >= 0.90 and da >= 0.90 and dp >= 0.90, (seed, sa, da, sp, dp)
        assert abs(sa - da) <= 0.02 and abs(sp - dp) <= 0.02, (seed, sa, da, sp, dp)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_cli_link_prediction(ray_session, parts, tmp_path, capsys):
    from distgnn.launch.cli import main

    rc = main(["--parts", parts[3], "--task", "link-prediction", "--workers", "3", "--threads-per-worker", "1",
               "--epochs", "2", "--mode", "sampled", "--fanout", "3,2", "--batch-size", "12", "--model", "sage",
               "--hidden", "8", "--embedding-dim", "6", "--decoder", "mlp", "--negatives", "2", "--exclude-positives",
               "--hits-k", "5", "--run-dir", str(tmp_path / "run"), "--max-restarts", "0"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "sampled link prediction (fan-out 3,2, batch 12 edges, mlp decoder, 2 negative(s) per edge)" in out
    assert "task link-prediction, 3 workers" in out
    final = [line for line in out.splitlines() if line.startswith("final: test auc ")]
    assert len(final) == 1 and ", hits@5 " in final[0] and ", mrr " in final[0] and "train" not in final[0], out
    assert main(["--task", "link-prediction", "--hits-k", "0"]) == 2
    assert "error: --hits-k: link-prediction: hits_k must be an int >= 1, got 0" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.multiprocess
def test_predict_exports_link_embeddings_and_the_launch_metrics(ray_session, parts, tmp_path):
    """distgnn.predict on a link-prediction checkpoint (3 parts on 2 workers, chunks of 7 nodes):
    every node's embedding (the ``output`` column, by original id) equals the encoder on the whole
    training graph, and the metrics over all candidates equal the launch's final ones."""
    import pyarrow.parquet as pq

    from distgnn.launch import latest_checkpoint, launch, load_checkpoint
    from distgnn.partition.reader import load_nodes_map
    from distgnn.predict import predict

    ck = str(tmp_path / "ck")
    res = launch(parts=parts[3], task="link-prediction", model="gcn", hidden=HIDDEN, embedding_dim=6, dropout=0.0,
                 workers=3, threads_per_worker=1, epochs=3, lr=LR, weight_decay=WD, checkpoint_dir=ck, run_dir="",
                 timeout_s=120, max_restarts=0)
    out = str(tmp_path / "out")
    r = predict(parts[3], ck, out, workers=2, batch_nodes=7, threads_per_worker=1)
    assert set(r.metrics) == set(res.metrics) and "test_auc" in r.metrics
    assert r.metrics == pytest.approx(res.metrics, rel=1e-5, abs=1e-6)
    assert [c["name"] for c in r.columns] == ["id", "output"] and r.layerwise

    data, _, _ = from_parts(parts[3])  # the training graph in the partition's ids
    model = build_link_model(config(parts[3], 3, model="gcn"), F_IN, S)
    model.load_state_dict(load_checkpoint(latest_checkpoint(ck))["model"])
    with torch.no_grad():
        want = model.eval()(data.x, Graph(data.edge_index, data.num_nodes))  # (N, 6), new ids
    t = pq.read_table(out).sort_by("id")
    original = load_nodes_map(parts[3])  # new id -> original id
    got = torch.from_numpy(np.stack(t.column("output").to_numpy(zero_copy_only=False)))
    np.testing.assert_array_equal(t.column("id").to_numpy(), np.arange(N))
    torch.testing.assert_close(got[torch.from_numpy(original)], want, atol=2e-6, rtol=1e-5)
