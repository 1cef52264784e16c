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

    @abstractmethod
    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, n_codebooks: int | None = None
    ) -> QuantizerOutput:
        """Quantize ``x`` ``[B, D, F]``; ``mask`` ``[B, 1, F]`` excludes padded frames from losses and updates."""

    @abstractmethod
    def encode(self, x: torch.Tensor, n_codebooks: int | None = None, *, beam: int = 1) -> torch.Tensor:
        """``[B, D, F]`` -> codes ``[B, K, F]``; ``beam`` > 1 asks for a search wider than greedy, where the
        quantizer has one."""

    @abstractmethod
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, K, F]`` -> quantized latents ``[B, D, F]``; ``K`` may be fewer than ``num_codebooks``."""
