"""Errors raised by the partitioner, the shard reader and the verifier."""
from __future__ import annotations


class PartitionError(ValueError):
    """A partitioning request that cannot be carried out (bad arguments, an existing output, ...).

    The message is one line and names the argument or file at fault.
    """


class VerifyError(PartitionError):
    """A partition on disk that breaks an invariant of the format (see :mod:`.format`).

    The message is one line: the file at fault, then what is wrong with it.
    """
