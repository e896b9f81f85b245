"""The driver on a local Ray: training, replicas, checkpoints, a killed worker, bad input.

Every Ray test here shares one module-wide Ray session (``ray_session``).
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import time

import pytest
import torch

from distgnn.data import load_planetoid, sbm
from distgnn.launch import LaunchError, RunConfig, launch, latest_checkpoint, load_checkpoint
from distgnn.launch.cli import main as cli_main
from distgnn.models import build_model
from distgnn.partition import partition, reassemble
from distgnn.train import TrainConfig, train_node_classifier

pytestmark = pytest.mark.multiprocess


@pytest.fixture(scope="module")
def small_parts(tmp_path_factory):
    out = tmp_path_factory.mktemp("sbm") / "parts"
    partition(sbm(num_nodes=1500, seed=3), 3, out, method="metis", seed=0)
    return str(out)


def gone(pid: int, timeout: float = 15.0) -> bool:
    """Whether process ``pid`` has exited (a zombie waiting to be reaped counts as exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def _run(parts, **kw):
    kw.setdefault("threads_per_worker", 1)
    kw.setdefault("timeout_s", 60)
    return launch(parts=parts, **kw)


# -- bad input: clear errors before any worker starts --------------------------------------------------
def test_bad_arguments(tmp_path, small_parts):
    with pytest.raises(LaunchError, match="cannot read the manifest"):
        _run(str(tmp_path / "missing"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(LaunchError, match="manifest"):
        _run(str(broken))
    with pytest.raises(LaunchError, match="4 workers but the partition has only 3 parts"):
        _run(small_parts, workers=4)
    with pytest.raises(LaunchError, match="--resume: no checkpoint in"):
        _run(small_parts, checkpoint_dir=str(tmp_path / "none"), resume=True)
    bad = tmp_path / "bad-ckpt"
    bad.mkdir()
    (bad / "checkpoint-000003.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(LaunchError, match="checkpoint-000003.pt: not a readable checkpoint"):
        _run(small_parts, checkpoint_dir=str(bad), resume=True)
    torch.save({"format": "something else"}, bad / "checkpoint-000004.pt")
    with pytest.raises(LaunchError, match="checkpoint-000004.pt: not a distgnn checkpoint"):
        _run(small_parts, checkpoint_dir=str(bad), resume=True)
    with pytest.raises(ValueError, match="resume needs a checkpoint directory"):
        RunConfig(resume=True)
    with pytest.raises(ValueError, match="unknown model 'gcm'"):
        RunConfig(model="gcm")
    with pytest.raises(ValueError, match="workers must be an integer >= 1, got 0"):
        RunConfig(workers=0)
    # the CLI: one line on stderr, exit status 2 (arguments) or 1 (cannot run)
    assert cli_main(["--workers", "0"]) == 2
    assert cli_main(["--parts", str(tmp_path / "missing"), "--quiet"]) == 1


# -- the checkpoint format ---------------------------------------------------------------------------------
def _state(epoch: int = 3) -> dict:
    return {"epoch": epoch, "model": {"w": torch.arange(6.0).reshape(2, 3)}, "optimizer": {"state": {}},
            "config": {"model": "gcn", "hidden": None}, "partition": "ab" * 32}


def test_checkpoint_round_trip_and_header(tmp_path):
    from distgnn.launch.driver import find_checkpoint, save_checkpoint

    path = save_checkpoint(str(tmp_path), _state())
    head, payload = open(path, "rb").read().split(b"\n", 1)
    fields = head.decode().split(" ")
    assert fields[:2] == ["distgnn-checkpoint", "2"] and fields[3] == f"bytes={len(payload)}"
    assert fields[2] == "sha256=" + hashlib.sha256(payload).hexdigest()
    state = load_checkpoint(path)
    assert state["epoch"] == 3 and torch.equal(state["model"]["w"], torch.arange(6.0).reshape(2, 3))
    for epoch in (4, 5):
        save_checkpoint(str(tmp_path), _state(epoch))
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-000004.pt", "checkpoint-000005.pt"]  # the newest two kept
    assert find_checkpoint(str(tmp_path))[0].endswith("checkpoint-000005.pt")


def test_version_1_checkpoints_are_still_read(tmp_path, caplog):
    path = tmp_path / "checkpoint-000002.pt"
    torch.save({"format": "distgnn-checkpoint", "version": 1, **_state(2)}, path)
    assert load_checkpoint(str(path))["epoch"] == 2
    assert "version-1 checkpoint, without a checksum" in caplog.text


def _damage(name):
    def zero(b):
        return b""

    def truncate(b):
        return b[: len(b) - 100]

    def flip(b):
        b = bytearray(b)
        b[len(b) - 200] ^= 0x01
        return bytes(b)

    def header(b):
        return b"distgnn-checkpoint 2 sha256=x\n" + b.split(b"\n", 1)[1]

    def version(b):
        return b.replace(b"distgnn-checkpoint 2 ", b"distgnn-checkpoint 3 ", 1)

    def foreign(b):
        buf = io.BytesIO()
        torch.save({"weights": torch.zeros(2)}, buf)
        return buf.getvalue()

    def text(b):
        return b"epoch=3\n"

    return {"zero": zero, "truncate": truncate, "flip": flip, "header": header, "version": version,
            "foreign": foreign, "text": text}[name]


@pytest.mark.parametrize("damage, match", [
    pytest.param("zero", r"empty \(0 bytes\)", id="zero-bytes"),
    pytest.param("truncate", r"\d+ bytes after the header, it says \d+ \(truncated or appended to\)", id="truncated"),
    pytest.param("flip", r"sha256 mismatch \(changed or damaged after it was written\)", id="bit-flip"),
    pytest.param("header", r"a damaged checkpoint header", id="bad-header"),
    pytest.param("version", r"checkpoint version 3, this distgnn reads 2 \(and 1\)", id="newer-version"),
    pytest.param("foreign", r"not a distgnn checkpoint", id="foreign-torch-file"),
    pytest.param("text", r"not a readable checkpoint \(neither a distgnn checkpoint nor a torch file\)", id="text"),
])
def test_damaged_checkpoints_are_one_line_errors(tmp_path, damage, match):
    from distgnn.launch.driver import find_checkpoint, save_checkpoint

    good = save_checkpoint(str(tmp_path), _state(2))
    path = save_checkpoint(str(tmp_path), _state(3))
    with open(path, "rb") as f:
        data = _damage(damage)(f.read())
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(LaunchError, match=rf"^{path}: {match}$"):
        load_checkpoint(path)
    found, state, skipped = find_checkpoint(str(tmp_path))
    assert found == good and state["epoch"] == 2
    assert [name for name, _ in skipped] == ["checkpoint-000003.pt"] and re.match(match, skipped[0][1])


def test_features_are_required(tmp_path):
    edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]])
    from distgnn.data import GraphData

    partition(GraphData(edge_index=edge_index, num_nodes=3), 1, tmp_path / "p", method="range")
    with pytest.raises(LaunchError, match="no features, label, train_mask column"):
        _run(str(tmp_path / "p"), workers=1)


# -- training, replicas, checkpoints and recovery -------------------------------------------------------
def test_recovers_a_killed_worker_and_resumes_exactly(ray_session, small_parts, tmp_path):
    base = dict(workers=2, epochs=8, checkpoint_every=2, seed=5)
    straight = _run(small_parts, checkpoint_dir=str(tmp_path / "a"), **base)
    assert straight.restarts == 0 and straight.epochs == 8
    assert len(set(straight.digests)) == 1, "replicas must hold bit-identical parameters"
    assert [h["epoch"] for h in straight.history] == list(range(1, 9))
    assert straight.history[-1]["loss"] < straight.history[0]["loss"]

    killed = []

    def kill_once(stats):
        if stats["epoch"] == 5 and not killed:
            killed.append(driver_pids[0][1])
            os.kill(driver_pids[0][1], signal.SIGKILL)

    from distgnn.launch import Driver

    driver = Driver(RunConfig(parts=small_parts, checkpoint_dir=str(tmp_path / "b"), threads_per_worker=1,
                              timeout_s=60, **base), on_epoch=kill_once)
    driver_pids = []
    original = driver._start_group

    def start_group(*args):
        out = original(*args)
        driver_pids.insert(0, list(driver.pids))
        return out

    driver._start_group = start_group
    recovered = driver.run()
    assert killed and recovered.restarts == 1
    assert driver_pids[0] != driver_pids[1], "a new group of workers must have been started"
    assert [h["epoch"] for h in recovered.history] == list(range(1, 9))
    # resumed from the epoch-4 checkpoint with per-epoch RNG: exactly the uninterrupted run
    assert recovered.digests == straight.digests
    for a, b in zip(recovered.history, straight.history):
        assert a["loss"] == b["loss"] and a["val_acc"] == b["val_acc"]
    for pid in killed + driver_pids[0] + driver_pids[1]:  # no worker outlives the run
        assert gone(pid), f"worker process {pid} is still running"

    # --resume: 4 epochs, then on to 8 from the checkpoint
    half = _run(small_parts, checkpoint_dir=str(tmp_path / "c"), **{**base, "epochs": 4})
    assert os.path.basename(latest_checkpoint(str(tmp_path / "c"))) == "checkpoint-000004.pt"
    assert half.digests != straight.digests
    resumed = _run(small_parts, checkpoint_dir=str(tmp_path / "c"), resume=True, **base)
    assert resumed.digests == straight.digests
    assert [h["epoch"] for h in resumed.history] == [5, 6, 7, 8]
    state = load_checkpoint(latest_checkpoint(str(tmp_path / "c")))
    assert state["epoch"] == 8 and state["config"]["seed"] == 5
    # resuming with other model settings is refused
    with pytest.raises(LaunchError, match=r"written with different settings \(hidden\)"):
        _run(small_parts, checkpoint_dir=str(tmp_path / "c"), resume=True, hidden=32, **base)


def test_gives_up_after_max_restarts(ray_session, small_parts, tmp_path):
    from distgnn.launch import Driver

    driver = Driver(RunConfig(parts=small_parts, workers=2, epochs=6, max_restarts=1, threads_per_worker=1,
                              timeout_s=60, checkpoint_dir=str(tmp_path / "k"), checkpoint_every=1))
    driver.on_epoch = lambda stats: os.kill(driver.pids[1], signal.SIGKILL) if stats["epoch"] >= 2 else None
    with pytest.raises(LaunchError, match=r"a worker died .*gave up after 1 restart"):
        driver.run()
    # without checkpoints a lost worker restarts the run from the first epoch
    seen = []
    driver = Driver(RunConfig(parts=small_parts, workers=2, epochs=3, threads_per_worker=1, timeout_s=60))

    def kill_at_2(stats):
        seen.append((driver.attempt, stats["epoch"]))
        if stats["epoch"] == 2 and driver.attempt == 1:
            os.kill(driver.pids[1], signal.SIGKILL)

    driver.on_epoch = kill_at_2
    res = driver.run()
    assert res.restarts == 1 and seen == [(1, 1), (1, 2), (2, 1), (2, 2), (2, 3)]
    assert [h["epoch"] for h in res.history] == [1, 2, 3]


def test_full_graph_training_equals_single_process(ray_session, tmp_path):
    # without dropout, distributed training is single-process training up to the order of sums
    data = load_planetoid("cora", normalize_features=True)
    parts = str(tmp_path / "cora-3")
    partition(data, 3, parts, method="metis", seed=0)
    res = _run(parts, workers=2, epochs=10, seed=7, dropout=0.0, checkpoint_dir=str(tmp_path / "ck"), checkpoint_every=10)
    state = load_checkpoint(latest_checkpoint(str(tmp_path / "ck")))["model"]
    whole, _ = reassemble(parts)  # the same graph in the partition's ids
    torch.manual_seed(7)
    model = build_model("gcn", whole.num_features, whole.num_classes, dropout=0.0)
    ref = train_node_classifier(model, whole, TrainConfig(epochs=10, seed=7))
    for name, want in model.state_dict().items():
        torch.testing.assert_close(state[name], want, rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}")
    assert abs(res.test_acc - ref.test_acc) <= 0.002
    assert abs(res.history[-1]["loss"] - ref.history[-1].loss) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gcn", "gat"])
def test_cora_single_equals_distributed_on_the_command_line_data_path(ray_session, tmp_path, model):
    """``python -m distgnn.train --dataset cora`` and ``distgnn.partition cora`` + ``distgnn.launch``
    read Cora the same way (distgnn.data.load_dataset, the same default transform); over 3 seeds
    the test accuracies agree within 1 point."""
    from distgnn.data import load_dataset
    from distgnn.models import model_builder
    from distgnn.train import train

    data = load_dataset("planetoid:cora")
    parts = str(tmp_path / "cora-4")
    partition(data, 4, parts, method="metis", seed=0)
    lr = 0.005 if model == "gat" else 0.01
    single, distributed = [], []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        single.append(train(model_builder(model), data, TrainConfig(epochs=200, seed=seed, lr=lr)).test_acc)
        res = _run(parts, workers=2, epochs=200, seed=seed, model=model, eval_every=200, run_dir="")
        assert len(set(res.digests)) == 1
        distributed.append(res.test_acc)
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    print(f"Cora {model} test accuracy: single {single} distributed (4 parts, 2 workers) {distributed}")
    assert mean(distributed) > 0.78
    assert abs(mean(distributed) - mean(single)) <= 0.01, (single, distributed)
