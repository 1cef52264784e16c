"""Collectives that are no-ops in one process and sum or gather across ranks under ``torch.distributed``.

The EMA codebooks are buffers, not parameters, so DDP never averages them: whatever a rank learns from its own
batch stays on that rank until someone reduces it. The quantizers call these helpers so that every rank updates
its codebooks from the statistics of the global batch and ends each step with the same buffers.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    """Number of ranks in the default process group; 1 outside ``torch.distributed``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place, and return it (unchanged in one process)."""
    if world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``[N_r, D]`` rows in rank order: ``[sum N_r, D]`` (``rows`` in one process).

    Ranks may hold different numbers of rows (masked frames differ by batch), so each first learns the others'
    counts, pads to the largest and trims after the gather.
    """
    n_ranks = world_size()
    if n_ranks <= 1:
        return rows
    count = torch.tensor([rows.shape[0]], dtype=torch.int64, device=rows.device)
    counts = [torch.zeros_like(count) for _ in range(n_ranks)]
    dist.all_gather(counts, count)
    sizes = [int(c) for c in counts]
    padded = rows.new_zeros((max(sizes), *rows.shape[1:]))
    padded[: rows.shape[0]] = rows
    gathered = [torch.zeros_like(padded) for _ in range(n_ranks)]
    dist.all_gather(gathered, padded.contiguous())
    return torch.cat([g[:n] for g, n in zip(gathered, sizes, strict=True)])
