"""Codebooks under torch.distributed learn from every rank's batch, not rank 0's alone.

Two gloo ranks, each given half of a batch of latents, must end with the codebook one process learns from the
whole batch (up to float rounding in the sums), and with identical buffers on both ranks.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vqaudio.distributed import all_gather_rows, all_reduce_sum
from vqaudio.quantizers.rvq import ResidualVectorQuantizer, RVQConfig
from vqaudio.quantizers.vq import VectorQuantizer, VQConfig

STEPS = 6


def _batches(steps: int) -> list[torch.Tensor]:
    """Latents [B, D, F] whose clusters move between steps, so the EMA has something to follow."""
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(16, 8, generator=g) * 3
    out = []
    for s in range(steps):
        pick = torch.randint(16, (4 * 40,), generator=g)
        x = centres[pick] + 0.3 * torch.randn(4 * 40, 8, generator=g) + 0.1 * s
        out.append(x.reshape(4, 40, 8).transpose(1, 2).contiguous())
    return out


def _quantizer(kind: str, dead_threshold: float) -> torch.nn.Module:
    vq = VQConfig(dim=8, codebook_size=16, kmeans_iters=5, decay=0.8, dead_threshold=dead_threshold)
    module: torch.nn.Module = (
        VectorQuantizer(vq) if kind == "vq" else ResidualVectorQuantizer(RVQConfig(vq=vq, num_codebooks=2, dropout=0))
    )
    return module.train()


def _train(module: torch.nn.Module, batches: list[torch.Tensor], rank: int, world: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    for x in batches:
        half = x.shape[0] // world
        module(x[rank * half : (rank + 1) * half])
    return {k: v.clone() for k, v in module.state_dict().items()}


def _worker(rank: int, world: int, init: str, kind: str, dead_threshold: float, out: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        state = _train(_quantizer(kind, dead_threshold), _batches(STEPS), rank, world)
        torch.save(state, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def _run_two_ranks(tmp_path: Path, kind: str, dead_threshold: float) -> list[dict[str, torch.Tensor]]:
    init = f"file://{tmp_path / 'rendezvous'}"
    out = str(tmp_path / "state")
    mp.spawn(_worker, args=(2, init, kind, dead_threshold, out), nprocs=2, join=True)
    return [torch.load(f"{out}.{r}") for r in range(2)]


@pytest.mark.parametrize("kind", ["vq", "rvq"])
def test_two_ranks_learn_the_whole_batch_codebook(tmp_path: Path, kind: str) -> None:
    # No dead-code restarts here: their random picks come from different pools in one and two processes.
    ranks = _run_two_ranks(tmp_path, kind, dead_threshold=0.0)
    whole = _train(_quantizer(kind, 0.0), _batches(STEPS), rank=0, world=1)
    for key, value in whole.items():
        for state in ranks:
            torch.testing.assert_close(state[key], value, rtol=1e-5, atol=1e-5, msg=lambda m, k=key: f"{k}: {m}")
    codebooks = [k for k in whole if k.endswith("codebook")]
    assert codebooks
    # The codebooks moved from their k-means start: the EMA did learn something to compare.
    first = _train(_quantizer(kind, 0.0), _batches(1), rank=0, world=1)
    assert any(not torch.allclose(first[k], whole[k]) for k in codebooks)


def test_dead_code_restarts_agree_across_ranks(tmp_path: Path) -> None:
    # A high threshold restarts codes at every step; both ranks must restart them to the same vectors.
    a, b = _run_two_ranks(tmp_path, "vq", dead_threshold=20.0)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_collectives_are_identity_in_one_process() -> None:
    x = torch.randn(5, 3)
    assert all_gather_rows(x) is x
    assert torch.equal(all_reduce_sum(x.clone()), x)
