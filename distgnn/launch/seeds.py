"""Seeds mixed from integers: the same on every machine and in every process."""
from __future__ import annotations

import hashlib

__all__ = ["mix_seed"]


def mix_seed(*values: int) -> int:
    """A 63-bit seed mixed from ``values`` (e.g. seed, epoch, rank): the same on every machine."""
    h = hashlib.blake2b(":".join(str(int(v)) for v in values).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)
