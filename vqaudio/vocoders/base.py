"""The vocoder interface: log-mel frames -> waveform."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from vqaudio.spectral import MelConfig


class Vocoder(nn.Module, ABC):
    """Turns log-mel ``[B, n_mels, F]`` (framing of :mod:`vqaudio.spectral`) into audio ``[B, F * hop]``."""

    name: str = ""
    # Whether it may run under bfloat16 autocast. Iterative phase estimation (Griffin-Lim) may not: its
    # projections accumulate the rounding.
    low_precision_ok: bool = True

    def __init__(self, mel: MelConfig) -> None:
        super().__init__()
        self.mel_config = mel

    @property
    def sample_rate(self) -> int:
        return self.mel_config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.mel_config.stft.hop_length

    @property
    @abstractmethod
    def context_frames(self) -> int:
        """Mel frames on each side that influence the audio of one frame (for chunked synthesis)."""

    @abstractmethod
    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``[B, n_mels, F]`` -> ``[B, F * hop]``."""
