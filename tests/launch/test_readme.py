"""The README's "Train your own model across workers" example runs as written; --help lists
the tasks and the models."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Train your own model across workers", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_help_lists_tasks_and_models():
    from distgnn.launch.cli import parser
    from distgnn.models import layer_names
    from distgnn.tasks import TASKS

    text = " ".join(parser().format_help().split())
    for name in (*TASKS, "gcn", "sage", "gat", *layer_names(), "package.module:function", "best_val", "--run-dir"):
        assert name in text, name


@pytest.mark.slow
@pytest.mark.multiprocess
def test_readme_example_runs_as_written(tmp_path):
    script = tmp_path / "example.py"
    script.write_text(readme_example())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=400, cwd=tmp_path,
                          env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^epoch 20: loss \d\.\d{3}, val acc \d\.\d{3}$", proc.stdout, re.M), proc.stdout
    assert re.search(r"^test accuracy 0\.\d{3}$", proc.stdout, re.M), proc.stdout
    assert "Token authentication" not in proc.stderr, proc.stderr  # nothing from Ray the user did not ask for
