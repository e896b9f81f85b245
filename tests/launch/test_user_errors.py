"""An error in the user's model is not a lost worker: it fails the run instead of being retried.

A programming error (TypeError, IndexError, ...) fails at once; a RuntimeError (which torch also
raises for shape mismatches) is retried once, and when the restarted group fails the same way at
the same epoch the run stops, saying the error is deterministic. A worker that really dies is
still replaced (tests/launch/test_faults.py and test_driver.py).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from distgnn.data import sbm
from distgnn.partition import partition

pytestmark = [pytest.mark.multiprocess]


class _FailsAtEpoch(nn.Module):
    """A linear model whose forward raises ``error`` from the third training call on."""

    def __init__(self, in_channels: int, out_channels: int, error: type):
        super().__init__()
        self.lin = nn.Linear(in_channels, out_channels)
        self.error = error
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor, graph) -> torch.Tensor:
        if self.training:
            self.calls += 1  # a buffer: restored from the checkpoint like the parameters
            if int(self.calls) >= 3:
                raise self.error("the model's own bug: mat1 and mat2 shapes cannot be multiplied (7x3 and 5x2)")
        return self.lin(x)


def fails_with_runtime_error(in_channels: int, out_channels: int) -> nn.Module:
    return _FailsAtEpoch(in_channels, out_channels, RuntimeError)


def fails_with_type_error(in_channels: int, out_channels: int) -> nn.Module:
    return _FailsAtEpoch(in_channels, out_channels, TypeError)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    out = tmp_path_factory.mktemp("user-errors") / "parts"
    partition(sbm(num_nodes=200, num_classes=3, avg_degree=4, num_features=6, num_val=30, num_test=30, seed=2),
              2, out, method="metis", seed=0)
    return str(out)


def _driver(parts, model, tmp_path, echo):
    from distgnn.launch import Driver, RunConfig

    cfg = RunConfig(parts=parts, model=model, workers=2, epochs=4, threads_per_worker=1, timeout_s=60,
                    checkpoint_dir=str(tmp_path / "ck"), checkpoint_every=1, max_restarts=3)
    return Driver(cfg, echo=echo)


def test_a_repeating_runtime_error_stops_after_one_restart(ray_session, parts, tmp_path):
    from distgnn.launch import LaunchError

    said = []
    driver = _driver(parts, fails_with_runtime_error, tmp_path, said.append)
    with pytest.raises(LaunchError, match=r"^epoch 3: RuntimeError: the model's own bug: .* \(again after a restart "
                                          r"from the same state: an error in the model, task or data, not a lost "
                                          r"worker\)$"):
        driver.run()
    assert driver.attempt == 2  # one restart (from the epoch-2 checkpoint), not max_restarts
    assert any("resuming from checkpoint-000002.pt" in s for s in said), said


def test_a_programming_error_is_not_retried(ray_session, parts, tmp_path):
    from distgnn.launch import LaunchError

    driver = _driver(parts, fails_with_type_error, tmp_path, None)
    with pytest.raises(LaunchError, match=r"^epoch 3: TypeError in the model or task code: the model's own bug"):
        driver.run()
    assert driver.attempt == 1
