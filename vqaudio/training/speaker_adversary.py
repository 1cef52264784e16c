"""A speaker classifier that a units model's encoder learns to defeat (domain-adversarial training).

A speaker-conditioned decoder lets the units leave the voice out, but nothing makes them: the units of
``units-16k`` still name the reader about as well as speech-16k's first codebook does. Here a small classifier
learns to name the training speaker of a crop from its quantized units (the codebook vectors the decoder
reads, ``[B, D, F]``), while the encoder is pushed, through the quantizer's straight-through gradient, to make
the classifier's answer uniform over the speakers (Ganin & Lempitsky 2015's domain-adversarial training, with
a bounded "confuse" target rather than a reversed gradient, as in adversarial speaker-invariant training for
recognition). The classifier pools over time, so it judges what a stretch of units says about its speaker,
which is what a unit histogram gives away.

Training only: the classifier is never exported with the model.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class SpeakerAdversary(nn.Module):
    """Quantized latents ``[B, D, F]`` and mask ``[B, 1, F]`` -> speaker logits ``[B, num_speakers]``."""

    def __init__(self, dim: int, num_speakers: int, channels: int = 256) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(dim, channels, 5, padding=2),
            nn.GELU(),
            nn.Conv1d(channels, channels, 5, padding=2),
            nn.GELU(),
        )
        self.out = nn.Linear(channels, num_speakers)

    def forward(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.convs(z * mask) * mask
        pooled = h.sum(-1) / mask.sum(-1).clamp_min(1.0)  # [B, C]: the mean over the crop's frames
        return self.out(pooled)


def confusion_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``logits`` ``[B, N]`` against the uniform distribution: smallest (``log N``) when the
    classifier cannot tell the speakers apart, and bounded below, unlike a reversed classification loss."""
    return -F.log_softmax(logits, dim=-1).mean()


def average_gradients(module: nn.Module) -> None:
    """Under torchrun, average the classifier's gradients over ranks, as DDP would: every rank then takes the
    same step and the copies stay equal."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= dist.get_world_size()
