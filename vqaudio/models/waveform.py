"""Waveform VQ-VAE: strided conv encoder on raw audio, residual VQ, transposed-conv decoder.

Each encoder stage is a residual unit followed by a convolution of kernel ``2 * stride`` and stride ``stride``;
the decoder mirrors it with transposed convolutions trimmed back to ``stride`` times their input length.
With strides (2, 4, 5, 8) one code frame covers 320 samples (50 Hz at 16 kHz). An optional LSTM in the
bottleneck adds long context (the "sequence" variant).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqaudio.blocks import ResidualUnit, downsample_mask, lengths_to_mask
from vqaudio.errors import ConfigError
from vqaudio.models.base import CodecModel, CodecOutput
from vqaudio.quantizers.base import BaseQuantizer


@dataclass(frozen=True)
class WaveformNetConfig:
    sample_rate: int = 16000
    channels: int = 32  # first stage; doubles at every downsampling
    strides: tuple[int, ...] = (2, 4, 5, 8)
    latent_dim: int = 64
    lstm: bool = False

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.channels < 1 or self.latent_dim < 1 or not self.strides:
            raise ConfigError("sample_rate, channels, latent_dim must be positive and strides non-empty")
        if any(s < 1 for s in self.strides):
            raise ConfigError("strides must be >= 1")

    @property
    def hop_length(self) -> int:
        return math.prod(self.strides)


class WaveformEncoder(nn.Module):
    def __init__(self, cfg: WaveformNetConfig) -> None:
        super().__init__()
        c = cfg.channels
        self.inp = nn.Conv1d(1, c, 7, padding=3)
        self.res = nn.ModuleList()
        self.down = nn.ModuleList()
        for s in cfg.strides:
            self.res.append(ResidualUnit(c, 7, 1))
            self.down.append(nn.Conv1d(c, 2 * c, 2 * s, stride=s, padding=s // 2 + s % 2))
            c *= 2
        self.lstm = nn.LSTM(c, c, num_layers=2, batch_first=True) if cfg.lstm else None
        self.out = nn.Conv1d(c, cfg.latent_dim, 3, padding=1)
        self.strides = cfg.strides

    def forward(self, audio: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, 1, T]`` (T a multiple of the hop) -> ``[B, D, T / hop]`` and its mask."""
        x = self.inp(audio * mask) * mask
        for res, down, s in zip(self.res, self.down, self.strides, strict=True):
            x = res(x, mask)
            mask = downsample_mask(mask, s)
            x = F.elu(down(x))[..., : mask.shape[-1]] * mask
        if self.lstm is not None:
            y, _ = self.lstm(x.transpose(1, 2))
            x = (x + y.transpose(1, 2)) * mask
        return self.out(x) * mask, mask


class WaveformDecoder(nn.Module):
    def __init__(self, cfg: WaveformNetConfig) -> None:
        super().__init__()
        c = cfg.channels * 2 ** len(cfg.strides)
        self.inp = nn.Conv1d(cfg.latent_dim, c, 7, padding=3)
        self.lstm = nn.LSTM(c, c, num_layers=2, batch_first=True) if cfg.lstm else None
        self.up = nn.ModuleList()
        self.res = nn.ModuleList()
        for s in reversed(cfg.strides):
            self.up.append(nn.ConvTranspose1d(c, c // 2, 2 * s, stride=s, padding=s // 2 + s % 2))
            c //= 2
            self.res.append(ResidualUnit(c, 7, 1))
        self.out = nn.Conv1d(c, 1, 7, padding=3)
        self.strides = tuple(reversed(cfg.strides))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, D, F]`` -> ``[B, 1, F * hop]``."""
        x = self.inp(z)
        if self.lstm is not None:
            y, _ = self.lstm(x.transpose(1, 2))
            x = x + y.transpose(1, 2)
        for up, res, s in zip(self.up, self.res, self.strides, strict=True):
            n = x.shape[-1] * s
            x = F.elu(up(x))
            x = res(_fit(x, n))
        return torch.tanh(self.out(x))


def _fit(x: torch.Tensor, n: int) -> torch.Tensor:
    """Trim or zero-pad the time axis to ``n`` frames."""
    return x[..., :n] if x.shape[-1] >= n else F.pad(x, (0, n - x.shape[-1]))


class WaveformVQVAE(CodecModel):
    family = "waveform"

    def __init__(self, net: WaveformNetConfig, quantizer: BaseQuantizer) -> None:
        super().__init__()
        if quantizer.dim != net.latent_dim:
            raise ConfigError(f"quantizer dim {quantizer.dim} != latent_dim {net.latent_dim}")
        self.net_config = net
        self.encoder = WaveformEncoder(net)
        self.quantizer = quantizer
        self.decoder = WaveformDecoder(net)

    @property
    def sample_rate(self) -> int:
        return self.net_config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.net_config.hop_length

    @property
    def context_samples(self) -> int:
        if self.net_config.lstm:
            # A recurrent bottleneck sees the whole past: chunking cannot be exact, only bounded.
            return 4 * self.sample_rate
        # Each stage: residual unit (3 taps each side) and a 2s kernel, all scaled by the stage's input hop.
        scale, total = 1, 3
        for s in self.net_config.strides:
            total += scale * (3 + 2 * s)
            scale *= s
        return total + scale * 4 + 3 * scale

    def _pad(self, audio: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if audio.dim() == 2:
            audio = audio[:, None]
        t = audio.shape[-1]
        if lengths is None:
            lengths = torch.full((audio.shape[0],), t, device=audio.device)
        audio = F.pad(audio, (0, self.num_frames(t) * self.hop_length - t))
        return audio, lengths_to_mask(lengths, audio.shape[-1])

    def forward(
        self, audio: torch.Tensor, lengths: torch.Tensor | None = None, n_codebooks: int | None = None
    ) -> CodecOutput:
        x, mask = self._pad(audio, lengths)
        z, zmask = self.encoder(x, mask)
        q = self.quantizer(z, zmask, n_codebooks)
        return CodecOutput(
            reconstruction=self.decoder(q.quantized) * mask,
            target=x,
            mask=mask,
            quantizer=q,
            latent=z,
            latent_mask=zmask,
        )

    def latents(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x, mask = self._pad(audio, lengths)
        return self.encoder(x, mask)

    def encode(
        self, audio: torch.Tensor, lengths: torch.Tensor | None = None, n_codebooks: int | None = None, *, beam: int = 1
    ) -> torch.Tensor:
        z, _ = self.latents(audio, lengths)
        return self.quantizer.encode(z, n_codebooks, beam=beam)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, K, F]`` -> audio ``[B, 1, F * hop]``."""
        return self.decoder(self.quantizer.decode(codes))
