"""The runtime's errors: every message is one line that says why and what to do."""
from __future__ import annotations

__all__ = ["LaunchError", "WorkerLost"]


class LaunchError(RuntimeError):
    """A run that cannot start or cannot go on; the message is one line that says why."""


class WorkerLost(LaunchError):
    """A worker died, a step failed inside a collective, or a step timed out (retried)."""
