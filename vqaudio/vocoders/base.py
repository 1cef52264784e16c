"""The vocoder interface: log-mel frames -> waveform."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn

from vqaudio.spectral import MelConfig


@dataclass
class Synthesis:
    """Audio of one chunk, and what the next chunk needs to continue it seamlessly.

    ``phase`` is the running phase ``[B, K]`` at the requested frame for back ends whose phase is summed over
    time (the integrated head of :class:`~vqaudio.vocoders.istft_vocoder.ISTFTVocoder`); None for back ends
    whose output depends only on nearby frames.
    """

    audio: torch.Tensor  # [B, F * hop]
    phase: torch.Tensor | None = None


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

    def synthesize(
        self, log_mel: torch.Tensor, anchor: tuple[int, torch.Tensor] | None = None, probe: int | None = None
    ) -> Synthesis:
        """Chunked synthesis. ``anchor`` = (frame, running phase ``[B, K]``) makes this chunk's running phase
        at that frame equal the one a previous chunk reported; ``probe`` asks for the running phase at a
        frame, to anchor the next chunk. Back ends with only local context ignore both."""
        return Synthesis(self(log_mel))
