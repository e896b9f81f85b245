"""Progress reporting without a dependency: the library reports stages, the CLI draws bars.

A ``progress`` argument is any callable ``progress(stage, total=None, unit="edges")`` returning an
object with ``update(n)`` and ``close()`` (a ``tqdm`` bar fits). Library code never draws.
"""
from __future__ import annotations

from typing import Protocol


class Bar(Protocol):
    def update(self, n: int = 1) -> object: ...

    def close(self) -> None: ...


class Progress(Protocol):
    def __call__(self, stage: str, total: int | None = None, unit: str = "edges") -> Bar: ...


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def no_progress(stage: str, total: int | None = None, unit: str = "edges") -> Bar:
    """The default ``progress``: reports nothing."""
    return _NullBar()
