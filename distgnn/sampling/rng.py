"""Counter-based random numbers for sampling: a pure function of a key, no generator state.

A draw is ``mix64(node_key(seed, hop, node) + (draw + 1) * GAMMA)``, where ``mix64`` is the
SplitMix64 finaliser (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
OOPSLA 2014) and ``node_key = mix64(node XOR stream(seed, hop))``. Because the value depends on
nothing but ``(seed, hop, global node id, draw index)``, a node's sample is the same whichever
process draws it, whatever else is in the batch and in whatever order: distributed sampling equals
single-process sampling draw for draw.

torch has no unsigned 64-bit arithmetic on every device, so the integers are int64 holding the
same bit patterns: addition and multiplication wrap modulo 2**64 exactly as unsigned ones do, and
the logical right shift is an arithmetic shift followed by a mask (``>>`` on a negative int64
copies the sign bit).
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["mix64", "mix64_", "stream_key", "node_keys", "draw_bits", "uniform_below", "scale_bound"]

_MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def _signed(v: int) -> int:
    """The int64 holding the bit pattern of the unsigned 64-bit ``v``."""
    v &= _MASK64
    return v - (1 << 64) if v >= 1 << 63 else v


GAMMA, M1, M2 = _signed(_GAMMA), _signed(_M1), _signed(_M2)


def _mix64_int(z: int) -> int:
    """:func:`mix64` on a Python int (unsigned 64-bit in, unsigned out)."""
    z &= _MASK64
    z = ((z ^ (z >> 30)) * _M1) & _MASK64
    z = ((z ^ (z >> 27)) * _M2) & _MASK64
    return z ^ (z >> 31)


def _shr_xor_(z: Tensor, s: int) -> Tensor:
    """``z ^= z >>> s`` in place (logical shift on the int64 bit pattern)."""
    t = z >> s  # arithmetic: the top s bits are copies of the sign bit
    t &= (1 << (64 - s)) - 1  # clear them
    return z.bitwise_xor_(t)


def mix64(z: Tensor) -> Tensor:
    """SplitMix64 finaliser of every element of an int64 tensor (a new tensor, bit-exact)."""
    return mix64_(z.clone())


def mix64_(z: Tensor) -> Tensor:
    """:func:`mix64` in place."""
    _shr_xor_(z, 30)
    z *= M1
    _shr_xor_(z, 27)
    z *= M2
    return _shr_xor_(z, 31)


def stream_key(seed: int, hop: int) -> int:
    """The int64 key of the stream ``(seed, hop)`` (a Python int)."""
    if not isinstance(seed, int) or not isinstance(hop, int):
        raise ValueError(f"seed and hop must be ints, got {type(seed).__name__} and {type(hop).__name__}")
    return _signed(_mix64_int(_mix64_int(seed + _GAMMA) + (hop + 1) * _GAMMA))


def node_keys(nodes: Tensor, seed: int, hop: int) -> Tensor:
    """``[n]`` int64 key of every (global) node id in the stream ``(seed, hop)``."""
    return mix64_(nodes.to(torch.long).bitwise_xor(stream_key(seed, hop)))  # the xor is a new tensor


def draw_bits(keys: Tensor, k: int) -> Tensor:
    """``[k, n]`` int64 random bit patterns: ``[j, i]`` is draw ``j`` of the node with key
    ``keys[i]`` (draw-major, so that one draw of every node is a contiguous row)."""
    steps = torch.arange(1, k + 1, dtype=torch.long, device=keys.device) * GAMMA  # (k,), wraps
    return mix64_(keys.view(1, -1) + steps.view(-1, 1))  # (k, n)


def uniform_below(bits: Tensor, scaled_bound: Tensor) -> Tensor:
    """Integers uniform in ``[0, b)`` from random bit patterns, ``scaled_bound = b * 2**-52``
    (float64, ``b >= 1``, broadcast against ``bits``; see :func:`scale_bound`).

    The low 52 bits make an integer ``r`` uniform in ``[0, 2**52)``; the result is
    ``floor(r * b / 2**52)``, whose deviation from exact uniformity is below ``b / 2**52`` per value
    (under 1e-6 even for a node of a billion in-edges). The float64 product never rounds up to
    ``b``, so no clamp is needed.
    """
    r = (bits & ((1 << 52) - 1)).to(torch.float64)  # (..), in [0, 2**52)
    r *= scaled_bound
    return r.to(torch.long)


def scale_bound(bound: Tensor) -> Tensor:
    """``bound * 2**-52`` as float64, the form :func:`uniform_below` takes."""
    return bound.to(torch.float64).mul_(2.0**-52)
