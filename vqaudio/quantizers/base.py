"""The quantizer interface every codec model depends on."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class QuantizerOutput:
    """Result of a quantizer's forward pass.

    Attributes:
        quantized: ``[B, D, F]`` quantized latents (straight-through: gradients flow to the input).
        codes: ``[B, K, F]`` int64 codebook indices of the ``K`` codebooks used.
        commitment_loss: scalar, ``beta * ||z_e - sg[e]||^2`` summed over codebooks (already weighted).
        codebook_loss: scalar, ``||sg[z_e] - e||^2`` summed over codebooks; zero for EMA codebooks.
        perplexity: ``[K]`` exp of the entropy of code usage in this batch, per codebook.
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commitment_loss: torch.Tensor
    codebook_loss: torch.Tensor
    perplexity: torch.Tensor

    @property
    def loss(self) -> torch.Tensor:
        return self.commitment_loss + self.codebook_loss


class BaseQuantizer(nn.Module, ABC):
    """Maps continuous latents ``[B, D, F]`` to codes ``[B, K, F]`` and back."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Latent dimension ``D``."""

    @property
    @abstractmethod
    def num_codebooks(self) -> int:
        """Largest number of codebooks ``K`` this quantizer can use."""

    @property
    @abstractmethod
    def codebook_size(self) -> int:
        """Entries per codebook."""

    @property
    def frame_stride(self) -> int:
        """Latent frames per code frame (more than 1 when codes are laid out in superframes)."""
        return 1

    @property
    def codebook_strides(self) -> tuple[int, ...]:
        """Per codebook, code frames one of its codes spans (multi-scale codes); empty for one frame rate."""
        return ()

    @property
    def codebook_counts(self) -> tuple[int, ...]:
        """The numbers of codebooks (rows of codes) a prefix can hold: every count from 1 to ``num_codebooks``."""
        return tuple(range(1, self.num_codebooks + 1))

    @abstractmethod
    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, n_codebooks: int | None = None
    ) -> QuantizerOutput:
        """Quantize ``x`` ``[B, D, F]``; ``mask`` ``[B, 1, F]`` excludes padded frames from losses and updates."""

    @abstractmethod
    def encode(
        self, x: torch.Tensor, n_codebooks: int | None = None, *, beam: int = 1, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, D, F]`` -> codes ``[B, K, F]``; ``beam`` > 1 asks for a search wider than greedy, where the
        quantizer has one. ``mask`` ``[B, 1, F]`` marks each item's real frames in a padded batch, for quantizers
        whose codes span several frames (a per-frame quantizer ignores it)."""

    @abstractmethod
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, K, F]`` -> quantized latents ``[B, D, F]``; ``K`` may be fewer than ``num_codebooks``."""
