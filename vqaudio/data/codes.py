"""Training data for models over codes: fixed-length random crops of code sequences held in memory.

Like :class:`~vqaudio.data.dataset.CropDataset`, every item is a pure function of ``(seed, rank, index)``, so
a resumed run replays what an uninterrupted one would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset


@dataclass
class CodeBatch:
    """``codes`` ``[B, K, F]`` (zero-padded crops) and ``lengths`` ``[B]`` (valid frames)."""

    codes: torch.Tensor
    lengths: torch.Tensor


class CodeCropDataset(Dataset[tuple[torch.Tensor, int]]):
    """Random ``frames``-long crops of code sequences ``[K, F_i]``, sequences drawn in proportion to length."""

    def __init__(
        self, sequences: Sequence[torch.Tensor], frames: int, *, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        if not sequences:
            raise ValueError("no code sequences")
        shard = list(sequences[rank::world_size]) if len(sequences) >= 2 * world_size else list(sequences)
        self.sequences = shard
        self.frames = frames
        self.seed = seed
        self.rank = rank
        lengths = np.array([s.shape[-1] for s in shard], dtype=np.float64)
        self.probs = lengths / lengths.sum()

    def __len__(self) -> int:  # an "infinite" dataset; the sampler decides how many items are drawn
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        rng = np.random.default_rng([self.seed, self.rank, index])
        seq = self.sequences[int(rng.choice(len(self.sequences), p=self.probs))]
        n = seq.shape[-1]
        start = int(rng.integers(0, n - self.frames + 1)) if n > self.frames else 0
        crop = seq[:, start : start + self.frames]
        out = torch.zeros(seq.shape[0], self.frames, dtype=torch.long)
        out[:, : crop.shape[1]] = crop
        return out, int(crop.shape[1])


def collate_codes(items: list[tuple[torch.Tensor, int]]) -> CodeBatch:
    return CodeBatch(codes=torch.stack([c for c, _ in items]), lengths=torch.tensor([n for _, n in items]))
