"""One local Ray session per test module that asks for it, bound to 127.0.0.1."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    from distgnn.launch.driver import start_local_ray

    start_local_ray(4)
    yield ray
    ray.shutdown()
