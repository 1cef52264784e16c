"""Griffin-Lim as a :class:`~vqaudio.vocoders.base.Vocoder`: mel -> linear magnitude -> phase estimation."""

from __future__ import annotations

import torch

from vqaudio.spectral import MelConfig, mel_to_magnitude
from vqaudio.vocoders.base import Vocoder
from vqaudio.vocoders.griffin_lim import GriffinLimConfig, griffin_lim


class GriffinLimVocoder(Vocoder):
    name = "griffin-lim"
    low_precision_ok = False

    def __init__(
        self, mel: MelConfig, config: GriffinLimConfig = GriffinLimConfig(), mel_inversion_iters: int = 30
    ) -> None:
        super().__init__(mel)
        self.config = config
        self.mel_inversion_iters = mel_inversion_iters

    @property
    def context_frames(self) -> int:
        # Each iteration spreads phase information by one window; chunking is approximate (see docs/cli.md).
        return 2 * self.mel_config.stft.n_fft // self.hop_length + 8

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        mag = mel_to_magnitude(log_mel, self.mel_config, self.mel_inversion_iters)
        return griffin_lim(mag, self.mel_config.stft, self.config, log_mel.shape[-1] * self.hop_length)
