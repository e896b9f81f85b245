"""distgnn.predict on Ray after distgnn.launch: a model trained in sampled mode, and the built-in
demo's run directory, predicted exactly (read back by original id); refusals once workers run
leave nothing at --out."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from distgnn.data import sbm
from distgnn.graph import Graph
from distgnn.launch import launch, latest_checkpoint, load_checkpoint
from distgnn.launch.errors import LaunchError
from distgnn.models import model_builder
from distgnn.partition import partition
from distgnn.predict import PredictError, predict

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]


def _reference(model: str, data, state: dict) -> torch.Tensor:
    net = model_builder(model)(data.x.shape[1], int(data.y.max()) + 1)
    net.load_state_dict(state["model"])
    net.eval()
    with torch.no_grad():
        return net(data.x, Graph(data.edge_index, data.num_nodes))  # (N, C) original ids


def _read(out: str):
    import pyarrow.parquet as pq

    t = pq.read_table(out).sort_by("id")
    return t.column("id").to_numpy(), np.stack(t.column("probabilities").to_numpy(zero_copy_only=False)), t


def test_sampled_training_then_the_command_line_on_three_workers(tmp_path, ray_session):
    data = sbm(num_nodes=400, num_classes=4, num_features=8, num_val=50, num_test=50, seed=2)
    parts = str(tmp_path / "parts")
    partition(data, 3, parts, method="random", seed=0)
    ck = str(tmp_path / "ck")
    launch(parts=parts, workers=2, epochs=2, mode="sampled", fanouts=(4, 4), batch_size=64, model="sage",
           checkpoint_dir=ck, threads_per_worker=1, run_dir="")
    state = load_checkpoint(latest_checkpoint(ck))
    out = str(tmp_path / "out")
    env = {**os.environ, "RAY_ADDRESS": ""}
    proc = subprocess.run([sys.executable, "-m", "distgnn.predict", "--parts", parts, "--checkpoint", ck, "--out", out,
                           "--workers", "3", "--threads-per-worker", "1", "--batch-nodes", "37", "--embeddings", "2"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "layer 1/3 GraphSageConv 1: 400 rows in 12 chunks" in proc.stdout  # one line per layer off a terminal
    assert f"wrote 400 predictions (id, class, probabilities, embedding) to {out}" in proc.stdout
    ref = _reference("sage", data, state)
    ids, probs, t = _read(out)
    np.testing.assert_array_equal(ids, np.arange(400))
    np.testing.assert_allclose(probs, torch.softmax(ref, -1).numpy(), atol=2e-5, rtol=1e-4)
    assert t.schema.field("embedding").type.list_size == 64
    import json

    m = json.load(open(os.path.join(out, "_manifest.json")))
    assert m["format"] == "distgnn-predictions" and m["model"] == "sage" and m["embeddings"] == 2
    assert sorted(m["files"]) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert sum(f["rows"] for f in m["files"].values()) == 400
    test = data.test_mask
    assert m["metrics"]["test_acc"] == pytest.approx(float((ref.argmax(-1)[test] == data.y[test]).float().mean()))


def test_the_demo_run_directory_then_predict_overwrite_and_refusals(tmp_path, ray_session, runs_dir):
    run = str(tmp_path / "demo")
    result = launch(workers=2, epochs=2, threads_per_worker=1, run_dir=run)  # the built-in graph, as make demo
    assert os.path.exists(os.path.join(run, "parts", "manifest.json")) and latest_checkpoint(run)
    out = str(tmp_path / "preds")
    r = predict(checkpoint=run, out=out, workers=2, threads_per_worker=1)  # --parts: the run's own
    assert r.metrics["test_acc"] == pytest.approx(result.test_acc)  # the launch report is the exact path too
    assert r.num_nodes == 10_000 and r.layerwise and [x["name"] for x in r.layers] == ["GCNConv 1", "GCNConv 2"]
    ids, probs, _ = _read(out)
    np.testing.assert_array_equal(ids, np.arange(10_000))
    with pytest.raises(PredictError, match="exists and is not empty"):
        predict(checkpoint=run, out=out, workers=2, threads_per_worker=1)
    with pytest.raises(PredictError, match=r"--embeddings 3: the model has 2 layer steps \(1=GCNConv 1, 2=GCNConv 2\)"):
        predict(checkpoint=run, out=out, workers=2, threads_per_worker=1, overwrite=True, embeddings=3)
    with pytest.raises(PredictError, match="--embeddings 5"):
        predict(checkpoint=run, out=str(tmp_path / "never"), workers=2, threads_per_worker=1, embeddings=5)
    assert sorted(os.listdir(tmp_path)) == ["demo", "preds"]  # nothing half-written, no temporary left
    r2 = predict(checkpoint=run, out=out, workers=2, threads_per_worker=1, overwrite=True, embeddings=1,
                 batch_nodes=0)
    ids2, probs2, t = _read(out)
    np.testing.assert_allclose(probs2, probs, atol=1e-6)
    assert "embedding" in t.column_names and r2.columns[-1] == {"name": "embedding", "type": "float32", "shape": [16]}
    only = predict(checkpoint=run, workers=2, threads_per_worker=1)  # no --out: the exact metrics alone
    assert only.out is None and only.metrics == r.metrics and sorted(os.listdir(tmp_path)) == ["demo", "preds"]


def test_a_checkpoint_that_does_not_fit_the_model_is_refused(tmp_path, ray_session):
    data = sbm(num_nodes=200, num_classes=3, num_features=6, num_val=20, num_test=20, seed=4)
    parts = str(tmp_path / "parts")
    partition(data, 2, parts, method="random", seed=0)
    ck = str(tmp_path / "ck")
    launch(parts=parts, workers=2, epochs=1, model="gcn", checkpoint_dir=ck, threads_per_worker=1, run_dir="")
    state = load_checkpoint(latest_checkpoint(ck))
    from distgnn.launch.checkpoint import save_checkpoint

    state["config"] = {**state["config"], "hidden": 32}  # settings that rebuild another shape
    bad = save_checkpoint(str(tmp_path / "bad"), state)
    with pytest.raises(LaunchError, match=r"the checkpoint's parameters do not fit the model gcn rebuilt from its "
                                          r"settings \(size mismatch"):
        predict(parts, bad, str(tmp_path / "out"), workers=2, threads_per_worker=1)
    assert not os.path.exists(tmp_path / "out")
