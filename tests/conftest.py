"""Shared fixtures: one local Ray session per test module that asks for it (bound to 127.0.0.1), and run
directories of runs that name none in a temporary place."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    from distgnn.launch.driver import start_local_ray

    start_local_ray(4)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session", autouse=True)
def runs_dir(tmp_path_factory):
    """Run directories of runs that name none go to a temporary directory, not ./distgnn-runs."""
    import os

    path = str(tmp_path_factory.mktemp("distgnn-runs"))
    before = os.environ.get("DISTGNN_RUNS")
    os.environ["DISTGNN_RUNS"] = path  # subprocesses (the CLI tests) inherit it
    yield path
    if before is None:
        os.environ.pop("DISTGNN_RUNS", None)
    else:
        os.environ["DISTGNN_RUNS"] = before
