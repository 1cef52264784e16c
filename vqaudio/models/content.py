"""What a spectral codec's encoder reads of the normalized log-mel: as it is, or without the voice's pitch and
long-term spectrum (:class:`ContentInputConfig`), which a speaker-conditioned codec uses so that its units leave
the voice to the decoder. The decoder's target is never changed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from vqaudio.errors import ConfigError
from vqaudio.spectral import MelConfig


@dataclass(frozen=True)
class ContentInputConfig:
    """What the content encoder reads of each log-mel frame (the decoder's target is never changed).

    ``lifter``: keep only the first ``lifter`` DCT coefficients across the bands of each frame (0: all). The
    ripple that a voice's harmonics draw across the low bands has a period of a few bands, so a short lifter
    (20 on 80 bands smooths it away for pitches up to about 300 Hz) hands the encoder the spectral envelope,
    what ASR front ends keep, without the pitch.
    ``mean_seconds``: subtract from each band its mean over a centred window of this many seconds (0: none):
    the long-term spectrum of the recording and of the speaker's vocal tract, not what is being said.
    Both are local (a bounded window), so chunked and batched codes stay equal to whole ones.
    """

    lifter: int = 0
    mean_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.lifter < 0:
            raise ConfigError(f"content lifter must be >= 0, got {self.lifter}")
        if not math.isfinite(self.mean_seconds) or self.mean_seconds < 0:
            raise ConfigError(f"content mean_seconds must be >= 0, got {self.mean_seconds}")

    @property
    def active(self) -> bool:
        return self.lifter > 0 or self.mean_seconds > 0


class ContentInput(nn.Module):
    """Normalized log-mel ``[B, n_mels, F]`` with mask ``[B, 1, F]`` -> what the content encoder reads, same
    shape (see :class:`ContentInputConfig`). Its matrices follow from the config, so they are not saved."""

    projection: torch.Tensor

    def __init__(self, mel: MelConfig, cfg: ContentInputConfig) -> None:
        super().__init__()
        self.config = cfg
        n = mel.n_mels
        if cfg.lifter and cfg.lifter < n:
            # Orthonormal DCT-II rows [lifter, n_mels]; projecting onto them and back keeps the smooth envelope.
            k = torch.arange(cfg.lifter, dtype=torch.float64)[:, None]
            m = torch.arange(n, dtype=torch.float64)[None]
            dct = torch.cos(math.pi / n * (m + 0.5) * k) * math.sqrt(2.0 / n)
            dct[0] /= math.sqrt(2.0)
            projection = (dct.T @ dct).float()
        else:
            projection = torch.eye(n)
        self.register_buffer("projection", projection, persistent=False)
        frames_per_second = mel.sample_rate / mel.stft.hop_length
        self.half_window = round(cfg.mean_seconds * frames_per_second / 2) if cfg.mean_seconds > 0 else 0

    @property
    def context_frames(self) -> int:
        """Input frames each side that one output frame depends on."""
        return self.half_window

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not self.config.active:
            return x
        x = x * mask
        if self.half_window:
            x = (x - self._running_mean(x, mask)) * mask
        if self.config.lifter:
            x = torch.einsum("nm,bmf->bnf", self.projection, x)
        return x

    def _running_mean(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Each band's mean over the valid frames of a centred window ``[B, n_mels, F]``.

        Window sums are differences of running sums, one pass whatever the window (a 201-tap convolution per
        band took a third of the encoder's time). The values are first rounded to multiples of 2^-20 and summed
        as integers, so every window sum is exact: a frame gets the same mean whether its clip is whole,
        chunked or in a padded batch, as a convolution would give it.
        """
        w, steps = self.half_window, 2**20
        frames = x.shape[-1]

        def running(v: torch.Tensor) -> torch.Tensor:
            # [..., F] -> [..., F + 2w + 1]: the sum of v's frames before index i - w, clipped to the clip.
            c = v.cumsum(-1)
            zeros, last = torch.zeros_like(c[..., :1]).expand(*c.shape[:-1], w + 1), c[..., -1:]
            return torch.cat([zeros, c, last.expand(*c.shape[:-1], w)], dim=-1)

        # Window of frame f: frames f - w .. f + w, i.e. running sums at f + 2w + 1 and f.
        sums = running(torch.round(x * steps).to(torch.int64))
        counts = running(mask.to(torch.int64))
        total = sums[..., 2 * w + 1 :] - sums[..., :frames]
        count = (counts[..., 2 * w + 1 :] - counts[..., :frames]).clamp_min(1)
        return (total.to(torch.float64) / steps / count).to(x.dtype)
