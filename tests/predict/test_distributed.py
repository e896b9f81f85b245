"""Exact inference on 2 and 3 real processes (gloo): the Parquet files, read back with pyarrow only
and joined to the input ids, hold the whole graph's predictions and embeddings."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from distgnn.data import sbm
from distgnn.graph import Graph
from distgnn.launch.config import RunConfig
from distgnn.models import model_builder
from distgnn.partition import partition
from tests.launch.spawn import run_ranks

pytestmark = pytest.mark.multiprocess


def _ranks(rank, world, parts, cases, out_dir, batch_nodes, embed):
    """Every case ``(name, state, config)`` on this rank; its ``finish_inference`` answers."""
    import os

    from distgnn.launch.shard import assign_parts
    from distgnn.launch.worker import Worker
    from distgnn.partition import load_manifest

    m = load_manifest(parts)
    blocks = assign_parts(m.num_parts, world, [p.num_edges + p.num_nodes for p in m.parts])
    starts = [m.parts[b[0]].node_start for b in blocks] + [m.num_nodes]
    done = {}
    for name, state, config in cases:
        w = Worker(rank, world, config)
        w.load_inference(parts, list(blocks[rank]), starts, m, state, state.get("channels"))
        steps = w.begin_inference(batch_nodes, (embed,))["steps"]
        for _ in steps:
            w.inference_step()
        directory = os.path.join(out_dir, name)
        os.makedirs(directory, exist_ok=True)
        done[name] = w.finish_inference(directory, embed)
    return done


@pytest.fixture(scope="module")
def graph_and_parts(tmp_path_factory):
    data = sbm(num_nodes=240, num_classes=4, num_features=8, num_val=40, num_test=40, seed=3)
    out = str(tmp_path_factory.mktemp("predict") / "parts")
    partition(data, 3, out, method="random", seed=1)  # ids relabelled: the output must map them back
    return data, out


def _state(model: str, data):
    torch.manual_seed(7)
    net = model_builder(model)(data.x.shape[1], int(data.y.max()) + 1)
    return net, {"model": {k: v.detach().clone() for k, v in net.state_dict().items()},
                 "channels": [data.x.shape[1], int(data.y.max()) + 1]}


MODELS = ("gcn", "sage", "gat")


@pytest.mark.parametrize("world", [2, 3])
def test_predictions_on_ranks_equal_whole_graph_inference(tmp_path, graph_and_parts, world):
    import pyarrow as pa
    import pyarrow.parquet as pq

    data, parts = graph_and_parts
    nets, cases = {}, []
    for model in MODELS:
        nets[model], state = _state(model, data)
        cases.append((model, state, RunConfig(model=model, workers=world, threads_per_worker=1, run_dir="").to_dict()))
    out_dir = str(tmp_path / "out")
    done = run_ranks(_ranks, world, tmp_path, parts, cases, out_dir, 50, 1, timeout=300)
    ids_in = pa.table({"id": pa.array(np.arange(data.num_nodes, dtype=np.int64))})
    g = Graph(data.edge_index, data.num_nodes)
    for model, net in nets.items():
        net.eval()
        with torch.no_grad():
            ref = net(data.x, g)  # (N, C) original ids
            emb = net.convs[0](data.x, g)
            emb = torch.nn.functional.elu(emb) if model == "gat" else torch.relu(emb)
        table = pq.read_table(f"{out_dir}/{model}")  # pyarrow only: every part file
        # Arrow joins carry no list columns: join the scalar ones, then take the rows in id order
        assert ids_in.join(table.select(["id", "class"]), "id", join_type="inner").num_rows == data.num_nodes
        assert table.num_rows == data.num_nodes
        table = table.sort_by("id")
        ids = table.column("id").to_numpy()
        np.testing.assert_array_equal(ids, np.arange(data.num_nodes))
        probs = np.stack(table.column("probabilities").to_numpy(zero_copy_only=False))
        np.testing.assert_allclose(probs, torch.softmax(ref, -1).numpy(), atol=2e-5, rtol=1e-4, err_msg=model)
        np.testing.assert_array_equal(table.column("class").to_numpy(), ref.argmax(-1).numpy())
        got_emb = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
        np.testing.assert_allclose(got_emb, emb.numpy(), atol=2e-5, rtol=1e-4, err_msg=model)
        # the ranks' metric sums add up to the whole graph's (test split: rows, correct)
        sums = sum(d[model]["sums"] for d in done)
        test = data.test_mask
        assert sums[-2] == int(test.sum())
        assert sums[-1] == int((ref.argmax(-1)[test] == data.y[test]).sum())


def _load_errors(rank, world, parts, unlabelled, config):
    from distgnn.launch.shard import assign_parts
    from distgnn.launch.worker import Worker
    from distgnn.partition import load_manifest

    def load(where, state, channels):
        m = load_manifest(where)
        starts = [0, m.num_nodes]
        Worker(rank, world, config).load_inference(where, list(assign_parts(m.num_parts, 1)[0]), starts, m, state,
                                                   channels)

    torch.manual_seed(0)
    net = model_builder("gcn")(8, 4)
    state = {"model": net.state_dict()}
    with pytest.raises(ValueError, match=r"the partition has 8 features, the checkpoint's model takes 5; predict on "
                                         r"the partition it was trained on"):
        load(parts, state, [5, 4])
    with pytest.raises(ValueError, match=r"the checkpoint's parameters do not fit the model gcn rebuilt from its "
                                         r"settings \(size mismatch"):
        load(parts, state, [8, 3])
    with pytest.raises(ValueError, match="does not record its output width and the partition has no label column"):
        load(unlabelled, state, None)
    load(parts, state, None)  # an older checkpoint: the width from the labels (4 classes)
    return True


def test_worker_refuses_a_model_that_does_not_fit(tmp_path, graph_and_parts):
    from distgnn.data import GraphData

    data, parts = graph_and_parts
    unlabelled = str(tmp_path / "unlabelled")
    partition(GraphData(edge_index=data.edge_index, num_nodes=data.num_nodes, x=data.x), 1, unlabelled, method="range")
    config = RunConfig(model="gcn", workers=1, threads_per_worker=1, run_dir="").to_dict()
    assert run_ranks(_load_errors, 1, tmp_path, parts, unlabelled, config, timeout=120) == [True]
