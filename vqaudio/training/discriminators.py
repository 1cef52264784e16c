"""Discriminators for optional adversarial training (HiFi-GAN's multi-period, and a multi-resolution STFT one).

Both return, per sub-discriminator, the logits map and the intermediate feature maps used by feature matching.
They are sized for CPU training: few channels, few layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from vqaudio.spectral import STFTConfig, stft

DiscOutput = list[tuple[torch.Tensor, list[torch.Tensor]]]


class PeriodDiscriminator(nn.Module):
    """Folds audio ``[B, 1, T]`` into ``[B, 1, T / p, p]`` and runs 2-D convs along time."""

    def __init__(self, period: int, channels: int = 16) -> None:
        super().__init__()
        self.period = period
        chans = [1, channels, channels * 4, channels * 8]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(chans[i], chans[i + 1], (5, 1), (3, 1), padding=(2, 0))) for i in range(3)
        )
        self.post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        x = F.pad(x, (0, (-t) % self.period), mode="reflect" if t > self.period else "constant")
        x = x.view(b, c, -1, self.period)
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
            feats.append(x)
        x = self.post(x)
        feats.append(x)
        return x.flatten(1), feats


class ResolutionDiscriminator(nn.Module):
    """2-D convs over a log-magnitude spectrogram at one STFT resolution."""

    def __init__(self, n_fft: int, hop: int, channels: int = 16) -> None:
        super().__init__()
        self.stft = STFTConfig(n_fft=n_fft, hop_length=hop)
        self.convs = nn.ModuleList(
            [
                # Striding the first layer in frequency as well quarters the cost of the dearest discriminator.
                weight_norm(nn.Conv2d(1, channels, (3, 9), stride=(1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))),
            ]
        )
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        mag = stft(x.squeeze(1), self.stft).abs()
        y = torch.log1p(mag).transpose(1, 2).unsqueeze(1)  # [B, 1, F, freq]
        feats = []
        for conv in self.convs:
            y = F.leaky_relu(conv(y), 0.1)
            feats.append(y)
        y = self.post(y)
        feats.append(y)
        return y.flatten(1), feats


class Discriminators(nn.Module):
    def __init__(
        self,
        periods: tuple[int, ...] = (2, 3, 5, 7, 11),
        resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (256, 64)),
    ) -> None:
        super().__init__()
        self.discs = nn.ModuleList(
            [PeriodDiscriminator(p) for p in periods] + [ResolutionDiscriminator(n, h) for n, h in resolutions]
        )

    def forward(self, x: torch.Tensor) -> DiscOutput:
        return [d(x) for d in self.discs]


def discriminator_loss(real: DiscOutput, fake: DiscOutput) -> torch.Tensor:
    """Least-squares GAN loss for the discriminators."""
    return sum(
        ((1 - r).square().mean() + f.square().mean() for (r, _), (f, _) in zip(real, fake, strict=True)),
        torch.zeros(()),
    )


def generator_losses(real: DiscOutput, fake: DiscOutput) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares adversarial loss and L1 feature matching for the generator."""
    adv = sum(((1 - f).square().mean() for f, _ in fake), torch.zeros(()))
    fm = torch.zeros(())
    for (_, rf), (_, ff) in zip(real, fake, strict=True):
        for a, b in zip(rf, ff, strict=True):
            fm = fm + F.l1_loss(b, a.detach())
    return adv, fm / len(fake)
