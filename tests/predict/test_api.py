"""distgnn.predict's refusals (each before any worker starts, one line) and its output format:
columns per task, atomic output directories (nothing that looks complete after a failure)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from distgnn.data import GraphData, sbm
from distgnn.launch.checkpoint import save_checkpoint
from distgnn.launch.config import RunConfig
from distgnn.launch.driver import _model_settings
from distgnn.models import model_builder
from distgnn.partition import partition
from distgnn.partition.errors import PartitionError
from distgnn.partition.reader import manifest_digest
from distgnn.partition.storage import open_fs
from distgnn.predict import PredictError, predict
from distgnn.predict.cli import main
from distgnn.predict.writer import MANIFEST, PredictionOutput, columns_for, prediction_columns, write_part


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict-api")
    data = sbm(num_nodes=120, num_classes=3, num_features=5, num_val=20, num_test=20, seed=0)
    parts = str(root / "parts")
    partition(data, 2, parts, method="random", seed=0)
    torch.manual_seed(0)
    net = model_builder("gcn")(5, 3)
    state = {"epoch": 1, "model": net.state_dict(), "config": _model_settings(RunConfig(model="gcn", parts=parts)),
             "partition": manifest_digest(parts), "channels": [5, 3]}
    ckdir = str(root / "ck")
    path = save_checkpoint(ckdir, dict(state))
    return {"root": root, "data": data, "parts": parts, "state": state, "ckdir": ckdir, "ckpt": path}


def _ckpt(setup, name: str, **changes) -> str:
    state = {**setup["state"], **changes}
    state = {k: v for k, v in state.items() if v is not None}
    return save_checkpoint(str(setup["root"] / name), state)


def test_checkpoint_errors(setup, tmp_path):
    p = setup["parts"]
    with pytest.raises(PredictError, match=r"--checkpoint .*nowhere: no such file or directory"):
        predict(p, str(tmp_path / "nowhere"), str(tmp_path / "out"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(PredictError, match=r"--checkpoint .*empty: no usable checkpoint \(no checkpoint-\*.pt file\)"):
        predict(p, str(tmp_path / "empty"), str(tmp_path / "out"))
    bad = tmp_path / "bad.pt"
    data = bytearray(open(setup["ckpt"], "rb").read())
    data[-10] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(PredictError, match=r"--checkpoint .*bad.pt: sha256 mismatch"):
        predict(p, str(bad), str(tmp_path / "out"))
    with pytest.raises(PredictError, match="holds no model settings"):
        predict(p, _ckpt(setup, "noconfig", config=None), str(tmp_path / "out"))
    with pytest.raises(PredictError, match="holds no model parameters"):
        predict(p, _ckpt(setup, "nomodel", model=None), str(tmp_path / "out"))
    unknown = {**setup["state"]["config"], "model": "no_such_module:build"}
    with pytest.raises(PredictError, match=r"its model 'no_such_module:build' .* cannot be rebuilt here .*pass model="):
        predict(p, _ckpt(setup, "unknown", config=unknown), str(tmp_path / "out"))
    link = {**setup["state"]["config"], "task": "link-prediction"}
    with pytest.raises(PredictError, match=r"a link-prediction model, and --parts .* has no edge split"):
        predict(p, _ckpt(setup, "link", config=link), str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out")


def test_partition_errors(setup, tmp_path):
    other = str(tmp_path / "other")
    partition(sbm(num_nodes=100, num_classes=3, num_features=5, num_val=20, num_test=20, seed=5), 2, other,
              method="random")
    with pytest.raises(PredictError, match=r"written for another partition \(manifest sha256 .*predict on the "
                                           r"partition it was trained on"):
        predict(other, setup["ckpt"], str(tmp_path / "out"))
    with pytest.raises(PredictError, match=r"--parts .*: cannot read the manifest"):
        predict(str(tmp_path / "missing"), setup["ckpt"], str(tmp_path / "out"))
    bare = str(tmp_path / "bare")
    partition(GraphData(edge_index=torch.tensor([[0, 1, 2], [1, 2, 0]]), num_nodes=3), 1, bare, method="range")
    with pytest.raises(PredictError, match="has no features column; inference needs node features"):
        predict(bare, _ckpt(setup, "bare", partition=None), str(tmp_path / "out"))
    with pytest.raises(PredictError, match="--parts is required: no partition beside"):
        predict(None, setup["ckpt"], str(tmp_path / "out"))
    with pytest.raises(PredictError, match="--workers: 3 workers but the partition has only 2 parts"):
        predict(setup["parts"], setup["ckpt"], str(tmp_path / "out"), workers=3)


def test_option_and_output_errors(setup, tmp_path):
    p, c = setup["parts"], setup["ckpt"]
    with pytest.raises(PredictError, match="--embeddings must be a layer step >= 1, got 0"):
        predict(p, c, str(tmp_path / "out"), embeddings=0)
    with pytest.raises(PredictError, match=r"--batch-nodes must be an integer >= 0 \(0: whole parts\), got -1"):
        predict(p, c, str(tmp_path / "out"), batch_nodes=-1)
    with pytest.raises(PredictError, match="--checkpoint is required"):
        predict(p, None, str(tmp_path / "out"))
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(PredictError, match=r"--out .*taken: exists and is not empty \(pass --overwrite"):
        predict(p, c, str(out))
    with pytest.raises(PredictError, match="refusing to overwrite a directory that is not a distgnn prediction output"):
        predict(p, c, str(out), overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(PredictError, match="exists and is a file, not a directory"):
        predict(p, c, str(tmp_path / "file"))
    assert (out / "notes.txt").read_text() == "mine"


def test_cli_reports_errors_in_one_line(setup, tmp_path, capsys):
    code = main(["--parts", setup["parts"], "--checkpoint", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: --checkpoint") and err.count("\n") == 1
    assert main(["--parts", setup["parts"], "--checkpoint", setup["ckpt"], "--out", str(tmp_path / "o"),
                 "--embeddings", "0"]) == 2


@pytest.mark.parametrize("task,c,expect", [
    ("node-classification", 3, ["id", "class", "probabilities"]),
    ("multi-label", 3, ["id", "probabilities", "predicted"]),
    ("node-regression", 1, ["id", "value"]),
    ("node-regression", 2, ["id", "value"]),
    ("my-task", 2, ["id", "output"]),
])
def test_columns_per_task_round_trip(tmp_path, task, c, expect):
    import pyarrow.parquet as pq

    out = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 4.0, 0.0]])[:, :c]  # (2, C)
    emb = torch.arange(8, dtype=torch.float32).reshape(2, 4)
    cols = columns_for(task, c, 4)
    assert [x["name"] for x in cols] == expect + ["embedding"]
    write_part(str(tmp_path), 3, cols, prediction_columns(task, out, np.array([10, 7]), emb))
    t = pq.read_table(str(tmp_path / "part-00003.parquet"))
    assert t.column_names == expect + ["embedding"] and t.column("id").to_pylist() == [10, 7]
    assert t.column("embedding").to_pylist() == emb.tolist()
    if task == "node-classification":
        assert t.column("class").to_pylist() == [0, 1]
        np.testing.assert_allclose(np.stack(t.column("probabilities").to_numpy(zero_copy_only=False)),
                                   torch.softmax(out, -1).numpy(), rtol=1e-6)
    elif task == "multi-label":
        assert t.column("predicted").to_pylist() == (out > 0).tolist()
        np.testing.assert_allclose(np.stack(t.column("probabilities").to_numpy(zero_copy_only=False)),
                                   torch.sigmoid(out).numpy(), rtol=1e-6)
    elif task == "node-regression" and c == 1:
        assert t.column("value").to_pylist() == [2.0, -3.0]
    elif task == "node-regression":
        assert t.column("value").to_pylist() == out.tolist()
    else:
        assert t.column("output").to_pylist() == out.tolist()


def _finished(directory: str) -> None:
    with open(os.path.join(directory, MANIFEST), "w") as f:
        json.dump({"format": "distgnn-predictions"}, f)


def test_a_failed_write_leaves_nothing_that_looks_complete(tmp_path):
    fs, target = open_fs(str(tmp_path / "out"))
    with pytest.raises(RuntimeError, match="disk full"):
        with PredictionOutput(fs, target) as tmp:
            (open(os.path.join(tmp, "part-00000.parquet"), "w")).write("half")
            raise RuntimeError("disk full")
    assert os.listdir(tmp_path) == []
    out = PredictionOutput(fs, target)
    with out as tmp:  # a first, finished output
        _finished(tmp)
        open(os.path.join(tmp, "part-00000.parquet"), "w").write("old")
        out.commit()
    with pytest.raises(PartitionError, match="exists and is not empty"):
        PredictionOutput(fs, target)
    replaced = PredictionOutput(fs, target, overwrite=True)
    with pytest.raises(RuntimeError, match="killed"):
        with replaced as tmp:
            open(os.path.join(tmp, "part-00000.parquet"), "w").write("new")
            raise RuntimeError("killed")
    assert sorted(os.listdir(tmp_path)) == ["out"]  # the old output untouched, no temporary left
    assert open(tmp_path / "out" / "part-00000.parquet").read() == "old"
    replaced = PredictionOutput(fs, target, overwrite=True)
    with replaced as tmp:
        _finished(tmp)
        open(os.path.join(tmp, "part-00000.parquet"), "w").write("new")
        replaced.commit()
    assert open(tmp_path / "out" / "part-00000.parquet").read() == "new" and os.listdir(tmp_path) == ["out"]
