import json

import pytest
import torch

from distgnn.data import DataError, GraphData, TRANSFORMS, apply_transform, default_transform, load_dataset
from distgnn.partition import PartitionError, load_manifest, reassemble
from distgnn.partition.cli import main as partition_main
from distgnn.partition.format import Manifest


def graph(x):
    return GraphData(torch.tensor([[0, 1], [1, 0]]), x.shape[0], x=x, name="g")


def test_row_normalize_numbers_and_record():
    x = torch.tensor([[1.0, 3.0], [0.0, 0.0], [2.0, -2.0], [0.5, 0.5]])
    out = apply_transform(GraphData(torch.zeros(2, 0, dtype=torch.long), 4, x=x), "row-normalize")
    want = torch.tensor([[0.25, 0.75], [0.0, 0.0], [2.0, -2.0], [0.5, 0.5]])  # non-positive sums unchanged
    assert torch.equal(out.x, want) and out.transforms == ("row-normalize",)
    assert apply_transform(out, "row-normalize") is out  # recorded once, applied once
    d = graph(torch.ones(2, 2))
    assert apply_transform(d, "none") is d and d.transforms == ()
    assert TRANSFORMS == ("none", "row-normalize")


def test_defaults_per_dataset():
    assert [default_transform(s) for s in ("cora", "planetoid:citeseer", "synthetic", "sbm:num_nodes=9", "g.npz")] == [
        "row-normalize", "row-normalize", "none", "none", "none"]
    assert load_dataset("synthetic:300", seed=1).transforms == ()
    assert load_dataset("synthetic:300", transform="row-normalize").transforms == ("row-normalize",)


@pytest.mark.parametrize(
    "call, match",
    [
        pytest.param(lambda: apply_transform(graph(torch.ones(2, 2)), "zscore"),
                     "unknown transform 'zscore'; choose one of none, row-normalize", id="unknown"),
        pytest.param(lambda: apply_transform(GraphData(torch.zeros(2, 0, dtype=torch.long), 3), "row-normalize"),
                     "transform 'row-normalize': 'graph' has no node features", id="no-features"),
        pytest.param(lambda: load_dataset("nope"), "unknown dataset 'nope': use synthetic", id="unknown-dataset"),
        pytest.param(lambda: load_dataset("synthetic:many"), "synthetic:NUM_NODES needs an integer", id="synthetic-n"),
        pytest.param(lambda: load_dataset("synthetic", transform="zscore"), "unknown transform 'zscore'", id="load-unknown"),
        pytest.param(lambda: load_dataset("sbm:bogus=1"), "sbm:bogus=1: .*bogus", id="bad-generator-arg"),
    ],
)
def test_transform_errors(call, match):
    with pytest.raises(DataError, match=match):
        call()


def test_partitioned_cora_has_exactly_the_features_train_uses(tmp_path):
    """`python -m distgnn.partition planetoid:cora` and `python -m distgnn.train --dataset cora`
    preprocess the same way, and the manifest says how."""
    trained = load_dataset("cora")
    out = tmp_path / "cora-2"
    assert partition_main(["planetoid:cora", "--parts", "2", "--out", str(out), "--method", "range", "-q"]) == 0
    assert load_manifest(out).transforms == ("row-normalize",)
    whole, _ = reassemble(out, original_ids=True)
    assert whole.transforms == ("row-normalize",)
    assert torch.equal(whole.x, trained.x) and torch.equal(whole.y, trained.y)
    raw = tmp_path / "cora-raw"
    assert partition_main(["planetoid:cora", "--parts", "2", "--out", str(raw), "--method", "range", "-q",
                           "--transform", "none"]) == 0
    assert load_manifest(raw).transforms == ()
    assert torch.equal(reassemble(raw, original_ids=True)[0].x, load_dataset("cora", transform="none").x)
    assert json.loads((raw / "manifest.json").read_text())["transforms"] == []


def test_manifest_transforms_old_and_malformed(tmp_path):
    out = tmp_path / "g"
    assert partition_main(["sbm:num_nodes=300,num_features=4,num_classes=3,num_val=30,num_test=30", "--parts", "2", "--out", str(out), "--method", "range",
                           "-q", "--transform", "row-normalize"]) == 0
    d = json.loads((out / "manifest.json").read_text())
    assert d["transforms"] == ["row-normalize"]
    del d["transforms"]
    assert Manifest.from_json(json.dumps(d)).transforms == ()  # written before transforms were recorded
    d["transforms"] = "row-normalize"
    with pytest.raises(PartitionError, match="manifest.json: transforms must be a list of transform names"):
        Manifest.from_json(json.dumps(d))
    m = load_manifest(out)
    assert Manifest.from_json(m.to_json()) == m


def test_partition_cli_rejects_unknown_transform(capsys):
    with pytest.raises(SystemExit):
        partition_main(["planetoid:cora", "--parts", "2", "--out", "x", "--transform", "zscore"])
    assert "invalid choice: 'zscore'" in capsys.readouterr().err
