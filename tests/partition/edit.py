"""Editing a written partition in place, as another tool might (for tests of what the reader accepts)."""
from __future__ import annotations

import hashlib
import json

import pyarrow.parquet as pq


def rewrite_shard(out, rel, fn) -> None:
    """Rewrite one shard with ``fn(table) -> table`` and fix its manifest entry (sha256, size, rows),
    as another tool might: the checksums then agree and only the contents are wrong."""
    path = out / rel
    table = fn(pq.read_table(path))
    pq.write_table(table, path)
    data = path.read_bytes()
    man = json.loads((out / "manifest.json").read_text())
    man["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "rows": table.num_rows}
    (out / "manifest.json").write_text(json.dumps(man))
