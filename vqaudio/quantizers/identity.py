"""A quantizer that does nothing, so model tests can run without quantization noise."""

from __future__ import annotations

import torch

from vqaudio.quantizers.base import BaseQuantizer, QuantizerOutput


class IdentityQuantizer(BaseQuantizer):
    """Passes latents through. Its "codes" are the continuous latents ``[B, D, F]`` themselves (float)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def num_codebooks(self) -> int:
        return 1

    @property
    def codebook_size(self) -> int:
        return 0

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, n_codebooks: int | None = None
    ) -> QuantizerOutput:
        zero = torch.zeros((), device=x.device)
        return QuantizerOutput(x, x.detach(), zero, zero, torch.ones(1, device=x.device))

    def encode(
        self, x: torch.Tensor, n_codebooks: int | None = None, *, beam: int = 1, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return x

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.float()
