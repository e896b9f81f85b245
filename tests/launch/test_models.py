"""Any model, any task, through the runtime: 2 gloo workers == one process on the whole graph.

Every registered node-level convolution (a :class:`~distgnn.models.LayerStack` of it, edge
features where the partition has them) trains 3 full-graph epochs on a 2-part partition through
:class:`~distgnn.launch.worker.Worker` in two gloo processes; the parameters must equal 3 Adam
steps on the whole graph (dropout off). A few models and tasks also go through the real
``launch(...)`` on Ray.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from distgnn.graph import Graph
from distgnn.launch.replica import accepts_edge_features
from distgnn.models import layer_names, model_builder
from distgnn.partition import load_manifest, reassemble
from distgnn.tasks import custom_task, get_task
from tests.launch.shards import write_parts
from tests.launch.spawn import run_ranks

N, F_IN, S, C = 24, 5, 3, 3
LR, WD, HIDDEN = 0.01, 5e-4, 8


def tiny_graph(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, N, (90,), generator=g)
    dst = torch.randint(0, N, (90,), generator=g)
    keep = src != dst
    ei = torch.stack([src[keep], dst[keep]])
    x = torch.randn(N, F_IN, generator=g)
    e = torch.rand(ei.shape[1], S, generator=g)
    y = torch.randint(0, C, (N,), generator=g)
    train = torch.zeros(N, dtype=torch.bool)
    train[::2] = True
    val = ~train
    return ei, x, e, y, train, val


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    ei, x, e, y, train, val = tiny_graph()
    out = tmp_path_factory.mktemp("models") / "parts"
    assignment = torch.tensor([0] * (N // 2) + [1] * (N - N // 2))[torch.randperm(N, generator=torch.Generator().manual_seed(1))]
    return write_parts(out, ei, N, assignment, x=x, y=y, edge_attr=e, train_mask=train, val_mask=val, test_mask=val)


def reference(parts_dir: str, model, task="node-classification", epochs: int = 3, layer_args=None, y=None):
    """``epochs`` Adam steps on the whole graph, as the runtime takes them; the state and metrics."""
    data, _ = reassemble(parts_dir)
    t = get_task(task)
    y = data.y if y is None else y
    build = model_builder(model, hidden=HIDDEN, num_layers=2, dropout=0.0, layer_args=layer_args, edge_dim=S)
    torch.manual_seed(0)
    net = build(F_IN, t.out_channels(y))
    graph = Graph(data.edge_index, data.num_nodes)
    inputs = {"e": data.edge_attr.view(-1, S)} if accepts_edge_features(net) else {}
    if any(isinstance(p, torch.nn.parameter.UninitializedParameter) for p in net.parameters()):
        with torch.no_grad():
            net.eval()(data.x, graph, **inputs)  # lazy sizes, as the runtime does
    groups = net.param_groups(WD) if hasattr(net, "param_groups") else net.parameters()
    opt = torch.optim.Adam(groups, lr=LR, weight_decay=0.0 if hasattr(net, "param_groups") else WD)
    tr = data.train_mask
    for _ in range(epochs):
        net.train()
        opt.zero_grad()
        out = net(data.x, graph, **inputs)  # (N, C)
        (t.loss(out[tr], y[tr]) / int(tr.sum())).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        out = net(data.x, graph, **inputs)
    metrics = {}
    for split, m in (("train", data.train_mask), ("val", data.val_mask), ("test", data.test_mask)):
        metrics.update({f"{split}_{k}": v for k, v in t.metrics(t.metric_sums(out[m], y[m])).items()})
    return {k: v.detach() for k, v in net.state_dict().items()}, metrics


def _train_layers(rank, world, parts_dir, cases):
    from distgnn.launch import RunConfig
    from distgnn.launch.worker import Worker

    m = load_manifest(parts_dir)
    starts = [p.node_start for p in m.parts] + [m.num_nodes]
    out = {}
    for name, task, layer_args in cases:
        cfg = RunConfig(parts=parts_dir, model=name, task=task, layer_args=layer_args, hidden=HIDDEN, dropout=0.0,
                        lr=LR, weight_decay=WD, epochs=3, workers=world, threads_per_worker=1)
        w = Worker(rank, world, cfg.to_dict())
        w.load(parts_dir, [rank], starts)
        for epoch in (1, 2, 3):
            stats = w.run_epoch(epoch, None, epoch == 3)
        state = w.state()["model"]
        out[name, task] = ({k: v.numpy() for k, v in state.items()}, stats.metrics, w.inputs.keys() == {"e"})
    return out


# dropout inside the layers off; GeneralConv's batch norm off (it cancels the kernel's bias, whose
# gradient is then zero up to rounding, which Adam scales to +-lr either way)
LAYER_ARGS = {"ChebConv": {"K": 2}, "GATConv": {"dropout_rate": 0.0}, "GeneralConv": {"dropout": 0.0, "batch_norm": False}}
# parameters the loss does not reach: the last XENetConv's edge model (the stack returns nodes only);
# their gradient is zero up to rounding, which Adam turns into steps of +-lr in any direction
UNUSED = {"XENetConv": ("convs.1.edge_model.",)}


@pytest.mark.slow
@pytest.mark.multiprocess
def test_every_layer_trains_on_two_workers_as_on_the_whole_graph(parts, tmp_path):
    cases = [(name, "node-classification", LAYER_ARGS.get(name)) for name in layer_names()]
    results = run_ranks(_train_layers, 2, tmp_path, parts, cases, timeout=600)
    assert len(cases) == len(layer_names()) >= 19
    for name, task, layer_args in cases:
        want, metrics = reference(parts, name, task, layer_args=layer_args)
        for rank in (0, 1):
            got, got_metrics, has_e = results[rank][name, task]
            assert has_e, f"{name}: the edge features reach the model"
            for k, v in want.items():
                if k.startswith(UNUSED.get(name, ())):
                    continue
                torch.testing.assert_close(torch.from_numpy(got[k]), v, atol=2e-5, rtol=1e-4,
                                           msg=lambda m: f"{name} {k} rank {rank}: {m}")
            assert got_metrics == pytest.approx(metrics, abs=1e-9), name


def make_parts(out, y) -> str:
    ei, x, e, _, train, val = tiny_graph()
    assignment = torch.tensor([0] * (N // 2) + [1] * (N - N // 2))[torch.randperm(N, generator=torch.Generator().manual_seed(1))]
    return write_parts(out, ei, N, assignment, x=x, y=y, edge_attr=e, train_mask=train, val_mask=val, test_mask=val)


def task_labels():
    _, x, _, y, _, _ = tiny_graph()
    g = torch.Generator().manual_seed(2)
    return {"node-regression": 2.0 + x[:, 0] - 0.5 * x[:, 1] + 0.1 * torch.randn(N, generator=g),
            "multi-label": (torch.rand(N, C, generator=g) < 0.4).float()}


@pytest.mark.slow
@pytest.mark.multiprocess
def test_tasks_train_on_two_workers_as_on_the_whole_graph(tmp_path):
    """Regression and multi-label: parameters and every metric (all-reduced sums) equal the whole graph's."""
    for task, y in task_labels().items():
        parts = make_parts(tmp_path / task, y)
        cases = [("gcn", task, None), ("GINConv", task, None), ("ChebConv", task, {"K": 2})]
        results = run_ranks(_train_layers, 2, tmp_path, parts, cases, timeout=300)
        for name, _, layer_args in cases:
            want, metrics = reference(parts, name, task, layer_args=layer_args)
            for rank in (0, 1):
                got, got_metrics, _ = results[rank][name, task]
                for k, v in want.items():
                    torch.testing.assert_close(torch.from_numpy(got[k]), v, atol=2e-5, rtol=1e-4)
                assert set(got_metrics) == set(metrics) and len(metrics) >= 6
                assert got_metrics == pytest.approx(metrics, rel=1e-6, abs=1e-7), (task, name)  # float32 outputs


# -- through the real launch(...) on Ray ------------------------------------------------------------
def two_layer_mlp_gcn(in_channels: int, out_channels: int) -> torch.nn.Module:
    """A user model: a module-level builder (picklable), forward(x, graph, **inputs)."""
    from distgnn.layers import GCNConv

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(in_channels, HIDDEN)
            self.conv = GCNConv(out_channels)

        def forward(self, x, graph, **inputs):
            return self.conv(torch.relu(self.lin(x)), graph)

    return Net()


def _abs_error(out, y):
    return {"abs_error": (out.view(-1) - y).abs().sum()}  # a sum over the rows


def _refuse_labels(y, masks, where, num_classes=None):
    from distgnn.data import DataError

    if (y > 3).any():
        raise DataError(f"{where}: targets above 3 on {int((y > 3).sum())} node(s)")


def _sq_loss(out, y):
    return ((out.view(-1) - y) ** 2).sum()


@pytest.mark.slow
@pytest.mark.multiprocess
def test_launch_user_model_tasks_run_dir_and_callbacks(ray_session, tmp_path):
    from distgnn.launch import EpochStats, LaunchError, RunConfig, launch, load_checkpoint
    from distgnn.launch import Driver

    labels = task_labels()
    reg = make_parts(tmp_path / "reg", labels["node-regression"])
    seen = []
    base = dict(workers=2, threads_per_worker=1, epochs=3, lr=LR, weight_decay=WD, timeout_s=120, max_restarts=0)
    res = launch(RunConfig(parts=reg, task="node-regression", checkpoint_dir=str(tmp_path / "ck"), **base),
                 model=two_layer_mlp_gcn, callbacks=[seen.append])
    # parameters after 3 steps == the whole graph's
    want, metrics = reference(reg, two_layer_mlp_gcn, "node-regression")
    state = load_checkpoint(os.path.join(tmp_path / "ck", "checkpoint-000003.pt"))
    for k, v in want.items():
        torch.testing.assert_close(state["model"][k], v, atol=2e-5, rtol=1e-4)
    assert res.metrics == pytest.approx(metrics, rel=1e-6, abs=1e-7)
    assert [type(s) for s in seen] == [EpochStats] * 3 and [s.epoch for s in seen] == [1, 2, 3]
    # the run directory sits beside the checkpoints
    assert res.run_dir == os.path.abspath(tmp_path / "ck")
    lines = [json.loads(x) for x in open(os.path.join(res.run_dir, "epochs.jsonl"))]
    assert [x["epoch"] for x in lines] == [1, 2, 3] and lines[-1]["val_r2"] == pytest.approx(metrics["val_r2"])
    result = json.load(open(os.path.join(res.run_dir, "result.json")))
    assert result["metrics"]["test_mae"] == pytest.approx(metrics["test_mae"]) and result["task"] == "node-regression"
    assert "test_models:two_layer_mlp_gcn" in json.load(open(os.path.join(res.run_dir, "config.json")))["model"]

    # a user loss/metric pair, sampled mode, a registered layer by name; run_dir given
    task = custom_task(_sq_loss, _abs_error, names=("abs_error",), higher_is_better=False, out_channels=1)
    res = launch(RunConfig(parts=reg, model="GINConv", mode="sampled", fanouts=(3, 3), batch_size=6, select="best_val",
                           run_dir=str(tmp_path / "run"), **base), task=task)
    assert len(res.history) == 3 and all(np.isfinite(h.loss) for h in res.history)
    assert set(res.metrics) == {"train_abs_error", "val_abs_error", "test_abs_error"}
    best = min(res.history, key=lambda h: h.metrics["val_abs_error"])
    assert res.best_epoch == best.epoch and res.metrics == best.metrics
    assert len(open(tmp_path / "run" / "epochs.jsonl").readlines()) == 3

    # node classification, sampled, no run directory
    parts = make_parts(tmp_path / "cls", tiny_graph()[3])
    res = launch(parts=parts, mode="sampled", batch_size=4, model="sage", run_dir="", **base)
    assert res.run_dir is None and 0 <= res.metrics["val_acc"] <= 1

    # sampled subgraphs carry the features of their edges (read where each edge is stored): with
    # fan-outs above every degree and one batch per epoch, sampled training of an edge-feature
    # layer takes exactly the full-graph steps
    ck = tmp_path / "ck-ecc"
    launch(parts=reg, model="ECCConv", task="node-regression", mode="sampled", fanouts=(100, 100), batch_size=1000,
           hidden=HIDDEN, dropout=0.0, run_dir="", checkpoint_dir=str(ck), **base)
    want, _ = reference(reg, "ECCConv", "node-regression")
    state = load_checkpoint(os.path.join(ck, "checkpoint-000003.pt"))
    for k, v in want.items():
        torch.testing.assert_close(state["model"][k], v, atol=2e-5, rtol=1e-4, msg=lambda m: f"ECCConv {k}: {m}")

    # labels are checked at load (Task.validate): a refusal stops the run before epoch 1, never retried
    refusing = custom_task(_sq_loss, _abs_error, names=("abs_error",), out_channels=1, validate=_refuse_labels)
    epochs = []
    driver = Driver(RunConfig(parts=reg, run_dir="", task=refusing, **{**base, "max_restarts": 3}),
                    on_epoch=epochs.append)
    with pytest.raises(LaunchError, match=r"^loading the parts: .*\(parts \d\.\.\d\): targets above 3 on \d+ node\(s\)$"):
        driver.run()
    assert driver.attempt == 1 and not epochs


def test_config_errors_name_the_option():
    from distgnn.launch import RunConfig
    from distgnn.models import ModelError
    from distgnn.tasks import TaskError

    with pytest.raises(ModelError, match="unknown model 'NoSuchConv'; choose one of gat, gcn, sage, a layer"):
        RunConfig(model="NoSuchConv")
    with pytest.raises(ModelError, match="no_such_module"):
        RunConfig(model="no_such_module:build")
    with pytest.raises(TaskError, match="unknown task 'ranking'"):
        RunConfig(task="ranking")
    with pytest.raises(ValueError, match="select must be 'last' or 'best_val', got 'best'"):
        RunConfig(select="best")
    c = RunConfig.from_flat(model="ChebConv", layer_args={"K": 3}, workers=3, mode="sampled", checkpoint_dir="ck")
    assert (c.model_options.layer_args, c.placement.workers, c.sampling.mode, c.robustness.checkpoint_dir) == (
        {"K": 3}, 3, "sampled", "ck")
    assert RunConfig(model=two_layer_mlp_gcn).describe()["model"] == "tests.launch.test_models:two_layer_mlp_gcn"
