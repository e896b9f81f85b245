"""Sampled mini-batch training through the driver: equal steps, exactness, accuracy, recovery."""
from __future__ import annotations

import os
import signal

import pytest
import torch
import torch.nn.functional as F

from distgnn.data import load_planetoid, sbm
from distgnn.launch import Driver, RunConfig, launch, latest_checkpoint, load_checkpoint
from distgnn.launch.sampled import split_seeds
from distgnn.launch.worker import mix_seed
from distgnn.models import build_model
from distgnn.partition import load_manifest, partition, reassemble
from distgnn.sampling import NeighborSampler, sample_subgraph
from distgnn.tasks import get_task
from tests.launch.shards import write_parts

pytestmark = pytest.mark.multiprocess


def test_split_seeds_gives_every_worker_the_same_step_count():
    starts = [0, 10, 10, 30]  # worker 1 owns nothing
    seeds = torch.tensor([25, 3, 11, 4, 29, 0, 12, 13, 14, 15])
    per_worker, steps = split_seeds(seeds, starts, batch_size=6)  # 2 seeds per worker and step
    assert [w.tolist() for w in per_worker] == [[3, 4, 0], [], [25, 11, 29, 12, 13, 14, 15]]
    assert steps == 4  # worker 2's 7 seeds need 4 steps; the others pad with empty batches
    _, steps = split_seeds(torch.zeros(0, dtype=torch.long), starts, batch_size=6)
    assert steps == 1


def _reference(parts: str, seed: int, epochs: int, batch_size: int, fanouts, model_name="sage", dropout=0.0,
               task="node-classification"):
    """Single-process sampled training with the driver's batches: the same shuffle, the same
    per-worker chunks and step seeds, one optimiser step per global batch."""
    data, _ = reassemble(parts)  # in the partition's ids, like the workers
    m = load_manifest(parts)
    starts = [p.node_start for p in m.parts] + [m.num_nodes]
    workers = 2
    starts_w = [starts[0], starts[2], starts[4]]  # 4 parts on 2 workers: parts 0-1 and 2-3
    torch.manual_seed(seed)
    task = get_task(task)
    model = build_model(model_name, data.num_features, task.out_channels(data.y), dropout=dropout)
    opt = torch.optim.Adam(model.param_groups(5e-4), lr=0.01, weight_decay=0.0)
    sampler = NeighborSampler(data.edge_index, data.num_nodes, fanouts)
    train_ids = torch.nonzero(data.train_mask).view(-1)
    local = -(-batch_size // workers)
    for epoch in range(1, epochs + 1):
        torch.manual_seed(mix_seed(seed, epoch, 0))  # dropout: its own stream (the workers use one per rank)
        g = torch.Generator().manual_seed(mix_seed(seed, epoch))
        order = train_ids[torch.randperm(train_ids.numel(), generator=g)]
        per_worker, steps = split_seeds(order, starts_w, batch_size)
        chunks = [list(torch.split(s, local)) for s in per_worker]
        model.train()
        for k in range(steps):
            opt.zero_grad()
            count = 0
            for w in range(workers):
                if k >= len(chunks[w]):
                    continue
                seeds = chunks[w][k]
                sub = sample_subgraph(sampler.sample_fn, seeds, fanouts, seed=mix_seed(seed, epoch, k),
                                      num_nodes=data.num_nodes)
                out = model(data.x[sub.node_ids], sub.edge_index)
                task.loss(out[: sub.num_seeds], data.y[seeds]).backward()  # a sum over the seeds
                count += seeds.numel()
            for p in model.parameters():
                p.grad /= count
            opt.step()
    model.eval()
    with torch.no_grad():
        out = model(data.x, data.edge_index)
    m = data.test_mask
    return model, task.metrics(task.metric_sums(out[m], data.y[m]))[task.primary]


@pytest.fixture(scope="module")
def cora_parts(tmp_path_factory):
    try:
        data = load_planetoid("cora", normalize_features=True)
    except Exception as exc:  # the dataset ships beside the repository
        pytest.fail(f"Cora is needed for this test: {exc}")
    out = tmp_path_factory.mktemp("cora") / "cora-4"
    partition(data, 4, out, method="metis", seed=0)
    return str(out)


def test_sampled_training_equals_single_process_step_for_step(ray_session, cora_parts, tmp_path):
    # without dropout the only difference left is the order of floating-point sums
    kw = dict(model="sage", mode="sampled", fanouts=(5, 3), batch_size=32, epochs=3, seed=4, dropout=0.0)
    res = launch(parts=cora_parts, workers=2, threads_per_worker=1, timeout_s=60,
                 checkpoint_dir=str(tmp_path / "ck"), checkpoint_every=3, **kw)
    assert len(set(res.digests)) == 1
    assert [h["steps"] for h in res.history] == [5, 5, 5]
    state = load_checkpoint(latest_checkpoint(str(tmp_path / "ck")))["model"]
    ref, ref_acc = _reference(cora_parts, 4, 3, 32, (5, 3))
    for name, want in ref.state_dict().items():
        torch.testing.assert_close(state[name], want, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")
    assert abs(res.test_acc - ref_acc) <= 0.002


@pytest.mark.parametrize("task", ["node-regression", "multi-label"])
def test_sampled_tasks_equal_single_process_step_for_step(ray_session, tmp_path, task):
    """Regression (float targets) and multi-label ([N, C] 0/1 labels) in sampled mode on 2 workers
    take the single-process sampled steps: parameters and the test metric agree."""
    data = load_planetoid("cora", normalize_features=True)
    g = torch.Generator().manual_seed(5)
    if task == "node-regression":
        y = data.y.float() / 3.0 + 10.0 * data.x[:, :8].sum(1) + 0.1 * torch.randn(data.num_nodes, generator=g)
    else:
        y = F.one_hot(data.y, 7).float()
        y[:, 0] = (torch.rand(data.num_nodes, generator=g) < 0.3).float()  # a second label on some nodes
    parts = str(tmp_path / task)
    partition(data.with_(y=y), 4, parts, method="metis", seed=0)
    kw = dict(model="sage", mode="sampled", fanouts=(5, 3), batch_size=32, epochs=3, seed=4, dropout=0.0, task=task)
    res = launch(parts=parts, workers=2, threads_per_worker=1, timeout_s=60, run_dir="",
                 checkpoint_dir=str(tmp_path / "ck"), checkpoint_every=3, **kw)
    assert len(set(res.digests)) == 1
    state = load_checkpoint(latest_checkpoint(str(tmp_path / "ck")))["model"]
    ref, ref_metric = _reference(parts, 4, 3, 32, (5, 3), task=task)
    for name, want in ref.state_dict().items():
        torch.testing.assert_close(state[name], want, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")
    primary = get_task(task).primary
    assert res.metrics[f"test_{primary}"] == pytest.approx(ref_metric, abs=2e-3)


def test_cora_sampled_four_parts_matches_single_process_accuracy(ray_session, cora_parts):
    seeds, dist_acc, single_acc = [0, 1, 2], [], []
    for seed in seeds:
        res = launch(parts=cora_parts, workers=2, threads_per_worker=1, timeout_s=60, model="sage", mode="sampled",
                     fanouts=(10, 10), batch_size=32, epochs=30, seed=seed, eval_every=30)
        dist_acc.append(res.test_acc)
        single_acc.append(_reference(cora_parts, seed, 30, 32, (10, 10), dropout=0.5)[1])
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    print(f"Cora GraphSAGE sampled test accuracy: single {single_acc}, 4 parts on 2 workers {dist_acc}")
    assert mean(dist_acc) > 0.74
    assert abs(mean(dist_acc) - mean(single_acc)) <= 0.01, (single_acc, dist_acc)


def test_imbalanced_training_nodes_do_not_hang(ray_session, tmp_path):
    # every training node in part 0: the other worker runs empty batches and still meets every collective
    data = sbm(num_nodes=600, seed=1)
    assignment = (torch.arange(600) >= 300).long()
    train = torch.zeros(600, dtype=torch.bool)
    train[:40] = True
    parts = write_parts(tmp_path / "p", data.edge_index, 600, assignment, x=data.x, y=data.y, train_mask=train,
                        val_mask=data.val_mask, test_mask=data.test_mask)
    res = launch(parts=parts, workers=2, threads_per_worker=1, timeout_s=60, model="gcn", mode="sampled",
                 fanouts=(4, 4), batch_size=16, epochs=2, cache_mb=0.01, pipeline=False)
    assert [h["steps"] for h in res.history] == [5, 5]  # 40 seeds, 8 per worker and step, all on worker 0
    assert res.history[-1]["seeds"] == 40
    assert 0 < res.history[-1]["hit_rate"] < 1, "a cache of 0.01 MiB holds some of the remote rows"
    assert res.history[-1]["bytes_saved"] > 0 and res.history[-1]["bytes_fetched"] > 0
    assert len(set(res.digests)) == 1
    # a cache chosen by a sampling pre-pass over the worker's own seeds hits more often than by degree
    pre = launch(parts=parts, workers=2, threads_per_worker=1, timeout_s=60, model="gcn", mode="sampled",
                 fanouts=(4, 4), batch_size=16, epochs=2, cache_mb=0.01, cache_policy="prepass", pipeline=False)
    assert pre.digests == res.digests, "the cache changes where rows come from, never their values"
    assert pre.history[-1]["hit_rate"] > res.history[-1]["hit_rate"]


def test_sampled_run_recovers_a_killed_worker(ray_session, cora_parts, tmp_path):
    base = dict(parts=cora_parts, workers=2, threads_per_worker=1, timeout_s=60, model="sage", mode="sampled",
                fanouts=(5, 5), batch_size=32, epochs=4, seed=2, checkpoint_every=2)
    straight = launch(checkpoint_dir=str(tmp_path / "a"), **base)
    driver = Driver(RunConfig(checkpoint_dir=str(tmp_path / "b"), **base))
    killed = []

    def kill_once(stats):
        if stats["epoch"] == 3 and not killed:
            killed.append(driver.pids[0])
            os.kill(driver.pids[0], signal.SIGKILL)

    driver.on_epoch = kill_once
    recovered = driver.run()
    assert killed and recovered.restarts == 1
    assert recovered.digests == straight.digests, "resumed from epoch 2: the same parameters as the straight run"
