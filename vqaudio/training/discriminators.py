"""Discriminators for optional adversarial training.

For audio (vocoders, waveform codecs): HiFi-GAN's multi-period and a multi-resolution STFT one. For the log-mel
a spectral codec decodes: patch discriminators over the (time, mel band) plane at two time scales, which judge
whether the decoded spectrogram has the fine structure (harmonics, onsets) of real speech, the detail an L1
regression averages away.

All return, per sub-discriminator, the logits map and the intermediate feature maps used by feature matching.
They are sized for CPU training: few channels, few layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from vqaudio.spectral import STFTConfig, stft

DiscOutput = list[tuple[torch.Tensor, list[torch.Tensor]]]


def _conv_stack(x: torch.Tensor, convs: nn.ModuleList, post: nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU conv layers then a linear output conv: flattened logits and every layer's output."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), 0.1)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x.flatten(1), feats


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
        return _conv_stack(x.view(b, c, -1, self.period), self.convs, self.post)


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
        return _conv_stack(torch.log1p(mag).transpose(1, 2).unsqueeze(1), self.convs, self.post)  # [B, 1, F, freq]


class MelPatchDiscriminator(nn.Module):
    """2-D convs over a normalised log-mel ``[B, n_mels, F]`` seen as an image ``[B, 1, n_mels, F]``."""

    def __init__(self, channels: int = 16, time_pool: int = 1) -> None:
        super().__init__()
        self.time_pool = time_pool
        c = channels
        # Halving the mel axis early keeps it cheap; the time axis is kept at full resolution longer because
        # onsets and harmonic continuity are what the regression blurs.
        self.convs = nn.ModuleList(
            [
                weight_norm(nn.Conv2d(1, c, (3, 3), stride=(2, 1), padding=(1, 1))),
                weight_norm(nn.Conv2d(c, 2 * c, (3, 5), stride=(2, 2), padding=(1, 2))),
                weight_norm(nn.Conv2d(2 * c, 2 * c, (3, 5), stride=(2, 1), padding=(1, 2))),
                weight_norm(nn.Conv2d(2 * c, 2 * c, (3, 3), padding=(1, 1))),
            ]
        )
        self.post = weight_norm(nn.Conv2d(2 * c, 1, (3, 3), padding=(1, 1)))

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        y = mel.unsqueeze(1)
        if self.time_pool > 1:
            y = F.avg_pool2d(y, (1, self.time_pool))
        return _conv_stack(y, self.convs, self.post)


class MelDiscriminators(nn.Module):
    """Patch discriminators on log-mel at the frame rate and at half of it."""

    def __init__(self, time_pools: tuple[int, ...] = (1, 2), channels: int = 16) -> None:
        super().__init__()
        self.discs = nn.ModuleList(MelPatchDiscriminator(channels, p) for p in time_pools)

    def forward(self, mel: torch.Tensor) -> DiscOutput:
        return [d(mel) for d in self.discs]


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
