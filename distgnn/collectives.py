"""Small ``torch.distributed`` building blocks shared by the runtime and the distributed sampler.

Parts own contiguous global id ranges (``starts [K + 1]``: part ``p`` owns ``[starts[p],
starts[p + 1])``). Every exchange here is ``dist.all_to_all_single`` with uneven splits and is
collective: every rank of ``group`` calls it, also with nothing to send. On gloo the tensors are
CPU tensors, on NCCL CUDA tensors.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["owner_of", "all_to_all_rows", "exchange_ids", "exchange_lists"]


def owner_of(ids: Tensor, starts: Tensor) -> Tensor:
    """``[n]`` the part owning each global id (``starts`` on the device of ``ids``)."""
    return torch.searchsorted(starts, ids, right=True) - 1


def all_to_all_rows(send: Tensor, send_counts: list[int], recv_counts: list[int], group=None) -> Tensor:
    """Rows ``send [S, *]`` (``send_counts[q]`` of them to rank ``q``) -> received rows ``[R, *]``."""
    recv = send.new_empty((sum(recv_counts),) + tuple(send.shape[1:]))
    dist.all_to_all_single(
        recv, send.contiguous(), output_split_sizes=recv_counts, input_split_sizes=send_counts, group=group
    )
    return recv


def exchange_ids(grouped: Tensor, counts: Tensor, group=None) -> tuple[Tensor, list[int]]:
    """Send ``grouped`` (rows grouped by destination, ``counts [W]`` int64 per rank); return the
    rows received (grouped by sender) and how many came from each rank. Two collectives."""
    got = torch.empty_like(counts)
    dist.all_to_all_single(got, counts, group=group)
    recv_counts = got.tolist()
    return all_to_all_rows(grouped, counts.tolist(), recv_counts, group), recv_counts


def exchange_lists(lists: Sequence[Tensor], group=None, device: torch.device | str = "cpu") -> list[Tensor]:
    """Send ``lists[q]`` (int64 ``[k_q]``) to every rank ``q``; return, on the CPU, what each
    rank sent us. The exchange runs on ``device``."""
    counts = torch.tensor([int(t.numel()) for t in lists], dtype=torch.long, device=device)
    send = torch.cat([t.to(device=device, dtype=torch.long).reshape(-1) for t in lists]) if lists else counts[:0]
    recv, recv_counts = exchange_ids(send, counts, group)
    return [chunk.cpu() for chunk in torch.split(recv, recv_counts)]
