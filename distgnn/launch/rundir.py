"""The run directory: a run's figures kept as files a user can read back.

- ``config.json``: the run's settings (:meth:`~.config.RunConfig.describe`);
- ``epochs.jsonl``: one JSON object per finished epoch (:meth:`~.stats.EpochStats.to_dict`),
  in epoch order; epochs redone after a restart replace the ones they redo;
- ``result.json``: the final figures, written when the run ends well.

Where: ``--run-dir`` / ``RunConfig.run_dir``; by default the checkpoint directory when there is
one (the files sit beside the checkpoints, so a resumed run continues the same
``epochs.jsonl``), else ``$DISTGNN_RUNS/<UTC timestamp>`` (``./distgnn-runs/...`` when the
variable is unset). ``run_dir=""`` writes nothing.
"""
from __future__ import annotations

import json
import os
import time

__all__ = ["RunLog", "resolve_run_dir"]


def resolve_run_dir(run_dir: str | None, checkpoint_dir: str | None) -> str | None:
    """The directory a run writes to (``None``: none), see the module docstring."""
    if run_dir is not None:
        return run_dir or None
    if checkpoint_dir:
        return checkpoint_dir
    root = os.environ.get("DISTGNN_RUNS") or "distgnn-runs"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path, k = os.path.join(root, stamp), 1
    while os.path.exists(path):
        k += 1
        path = os.path.join(root, f"{stamp}-{k}")
    return path


class RunLog:
    """Writes a run directory (``path=None``: a log that writes nothing)."""

    EPOCHS, RESULT, CONFIG = "epochs.jsonl", "result.json", "config.json"

    def __init__(self, path: str | None):
        self.path = os.path.abspath(path) if path else None

    def start(self, config: dict, first_epoch: int) -> None:
        """Create the directory, write ``config.json`` and keep the epochs before ``first_epoch``."""
        if self.path is None:
            return
        os.makedirs(self.path, exist_ok=True)
        _write_json(os.path.join(self.path, self.CONFIG), config)
        kept = [line for line in self.read_epochs() if line.get("epoch", 0) < first_epoch]
        with open(os.path.join(self.path, self.EPOCHS), "w") as f:
            for line in kept:
                f.write(json.dumps(line) + "\n")

    def read_epochs(self) -> list[dict]:
        """The epochs written so far (lines that do not parse are dropped)."""
        out = []
        if self.path is None:
            return out
        try:
            with open(os.path.join(self.path, self.EPOCHS)) as f:
                for line in f:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        continue
        except OSError:
            pass
        return out

    def epoch(self, stats) -> None:
        if self.path is None:
            return
        with open(os.path.join(self.path, self.EPOCHS), "a") as f:
            f.write(json.dumps(stats.to_dict()) + "\n")

    def finish(self, result: dict) -> None:
        if self.path is not None:
            _write_json(os.path.join(self.path, self.RESULT), result)


def _write_json(path: str, value) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, default=str)
        f.write("\n")
    os.replace(tmp, path)
