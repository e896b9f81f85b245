"""The runtime's errors: every message is one line that says why and what to do."""
from __future__ import annotations

__all__ = ["LaunchError", "WorkerLost"]


class LaunchError(RuntimeError):
    """A run that cannot start or cannot go on; the message is one line that says why."""


class WorkerLost(LaunchError):
    """A worker died, a step failed inside a collective, or a step timed out (retried).

    ``signature``: what failed, without the run's incidental details (``None`` for a dead worker
    or a timeout); the driver gives up when a restarted group fails with the same signature at
    the same epoch again: an error that repeats is a bug in the model or the data, not a lost
    worker."""

    def __init__(self, message: str, signature: str | None = None):
        super().__init__(message)
        self.signature = signature
