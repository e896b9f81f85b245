"""``python -m distgnn.launch`` as a user runs it: its own local Ray, output, Ctrl-C."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from tests.launch.test_driver import gone

pytestmark = pytest.mark.multiprocess


def _launch(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "distgnn.launch", "--threads-per-worker", "1", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_no_arguments_trains_on_the_built_in_graph():
    proc = _launch("--epochs", "3")
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    assert "partitioned into 2 parts with METIS" in out
    assert re.search(r"^worker 1: parts 1\.\.1, \d+ nodes, \d+ edges, \d+ halo, cpu \(gloo, 1 threads\)", out, re.M), out
    epochs = re.findall(r"^epoch +(\d+) +loss ([\d.]+) +train acc [\d.]+ +val acc [\d.]+ .* halo ([\d.]+) MB\)$", out, re.M)
    assert [int(e) for e, _, _ in epochs] == [1, 2, 3], out
    assert all(float(mb) > 0 for _, _, mb in epochs), "halo traffic must be reported"
    assert re.search(r"^final: test accuracy 0\.\d{4} \(epoch 3, .*replicas identical$", out, re.M), out


def test_sampled_mode_from_the_command_line():
    proc = _launch("--epochs", "2", "--mode", "sampled", "--fanout", "5,5", "--batch-size", "50", "--cache-mb", "0.5",
                   "--model", "sage")
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    assert "sampled (fan-out 5,5, batch 50)" in out
    lines = re.findall(r"^epoch +(\d+) +loss [\d.]+ .*\((\d+) steps, (\d+) edges/step; .* cache hits (\d+)%", out, re.M)
    assert [int(e) for e, *_ in lines] == [1, 2], out
    # 100 training nodes, 25 per worker and step: at least 2 steps (more when a worker owns more than 50)
    assert all(2 <= int(steps) <= 4 and int(edges) > 0 for _, steps, edges, _ in lines), out
    assert re.search(r"^final: test accuracy 0\.\d{4} \(epoch 2, ", out, re.M), out
    proc = _launch("--fanout", "10,x")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--fanout must be comma-separated integers" in out


def test_layer_stack_best_val_and_run_dir_from_the_command_line(tmp_path):
    import json

    proc = _launch("--epochs", "3", "--model", "chebconv", "--layer-args", '{"K": 2}', "--hidden", "8",
                   "--select", "best_val", "--run-dir", str(tmp_path / "run"))
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    assert out.startswith("model: chebconv, task node-classification, 2 workers, 3 epochs, full-graph"), out
    found = re.search(r"^final: test accuracy 0\.\d{4} \(epoch (\d) of 3, .*replicas identical$", out, re.M)
    assert found, out
    lines = [json.loads(x) for x in (tmp_path / "run" / "epochs.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2, 3]
    best = max(lines, key=lambda x: (x["val_acc"], -x["epoch"]))
    assert int(found.group(1)) == best["epoch"]
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["best_epoch"] == best["epoch"] and result["metrics"]["test_acc"] == best["test_acc"]
    assert "Token authentication" not in out
    proc = _launch("--layer-args", "K=2")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--layer-args must be a JSON object" in out


def test_ctrl_c_stops_every_worker():
    proc = _launch("--epochs", "100000", "--eval-every", "1000")
    pids, lines = [], []
    deadline = time.monotonic() + 120
    for line in proc.stdout:  # wait until training runs
        lines.append(line)
        m = re.match(r"worker \d+: .* pid (\d+),", line)
        if m:
            pids.append(int(m.group(1)))
        if line.startswith("epoch") or time.monotonic() > deadline:
            break
    assert len(pids) == 2, "".join(lines)
    proc.send_signal(signal.SIGINT)
    try:
        rest, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the driver did not exit within 60 s of Ctrl-C")
    assert proc.returncode == 130, "".join(lines) + rest
    assert "interrupted: workers stopped" in rest
    for pid in pids:
        assert gone(pid), f"worker process {pid} outlived the driver"


def test_help_documents_ray_address_and_checkpoint_checks():
    from distgnn.launch.cli import parser

    text = " ".join(parser().format_help().split())
    assert "default: $RAY_ADDRESS when set, as ray.init does; else start a local one, on 127.0.0.1 only" in text
    assert "each carries a sha256 of itself" in text
    assert "a damaged newer one is skipped with a warning" in text
