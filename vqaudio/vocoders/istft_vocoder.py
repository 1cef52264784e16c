"""A learned vocoder: ConvNeXt backbone over mel frames and an inverse-STFT head (after Vocos, Siuzdenko 2023).

The network predicts, for every frame, a log-magnitude and a phase for each bin of a small STFT that shares the
mel hop; the inverse STFT of :mod:`vqaudio.spectral` then overlap-adds them. Working at frame rate instead of
upsampling to sample rate is what makes it run hundreds of times faster than real time on a CPU.

With ``magnitude_prior`` the log-magnitude is predicted as a correction to the mel's pseudo-inverse (what
Griffin-Lim starts from) rather than from nothing: the network then spends its capacity on the phase and on
the detail the mel projection lost, and starts out no worse than that inverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vqaudio.blocks import ChannelLayerNorm, ConvNeXtStack
from vqaudio.errors import ConfigError
from vqaudio.spectral import LOG_EPS, MelConfig, STFTConfig, istft, mel_inverse_on_grid
from vqaudio.vocoders.base import Vocoder


@dataclass(frozen=True)
class ISTFTVocoderConfig:
    channels: int = 128
    depth: int = 8
    hidden_mult: int = 3
    kernel_size: int = 7
    n_fft: int = 640  # head STFT size; its hop is the mel hop
    magnitude_prior: bool = False  # predict log-magnitude relative to the mel basis's pseudo-inverse

    def __post_init__(self) -> None:
        if self.channels < 1 or self.depth < 0 or self.n_fft < 2:
            raise ConfigError("channels, depth and n_fft must be positive")


class ISTFTVocoder(Vocoder):
    name = "learned"
    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    prior: torch.Tensor

    def __init__(self, mel: MelConfig, config: ISTFTVocoderConfig) -> None:
        super().__init__(mel)
        self.config = config
        self.head_stft = STFTConfig(n_fft=config.n_fft, hop_length=mel.stft.hop_length)
        c = config.channels
        self.inp = nn.Conv1d(mel.n_mels, c, config.kernel_size, padding=config.kernel_size // 2)
        self.norm_in = ChannelLayerNorm(c)
        self.backbone = ConvNeXtStack(c, config.depth, config.hidden_mult, config.kernel_size)
        self.norm_out = ChannelLayerNorm(c)
        self.head = nn.Conv1d(c, 2 * self.head_stft.n_freqs, 1)
        self.register_buffer("feature_mean", torch.tensor(-4.0))
        self.register_buffer("feature_std", torch.tensor(2.5))
        if config.magnitude_prior:
            # Derived from the mel config, so not stored with the weights.
            self.register_buffer("prior", mel_inverse_on_grid(mel, config.n_fft).clone(), persistent=False)
            with torch.no_grad():  # a zero correction at the start: the output magnitude is the prior's
                self.head.weight[: self.head_stft.n_freqs].zero_()
                assert self.head.bias is not None
                self.head.bias[: self.head_stft.n_freqs].zero_()

    @property
    def context_frames(self) -> int:
        return self.config.kernel_size // 2 + self.backbone.receptive_field + self.config.n_fft // self.hop_length + 1

    def spectrum(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``[B, n_mels, F]`` -> the head's complex STFT ``[B, n_fft // 2 + 1, F]``."""
        x = (log_mel - self.feature_mean) / self.feature_std
        x = self.backbone(self.norm_in(self.inp(x)))
        log_mag, phase = self.head(self.norm_out(x)).float().chunk(2, dim=1)
        if self.config.magnitude_prior:
            with torch.autocast(log_mel.device.type, enabled=False):
                prior = torch.matmul(self.prior, torch.exp(log_mel.float()))
            log_mag = log_mag + torch.log(prior.clamp_min(LOG_EPS))
        # Clamp before exp: an untrained head must not overflow to inf.
        return torch.polar(torch.exp(log_mag.clamp(max=6.0)), phase)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``[B, n_mels, F]`` -> ``[B, F * hop]``."""
        return istft(self.spectrum(log_mel), self.head_stft, log_mel.shape[-1] * self.hop_length)
