"""Reconstruction losses. The quantizer losses live in :class:`~vqaudio.quantizers.QuantizerOutput`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vqaudio.spectral import LOG_EPS, MelConfig, STFTConfig, log_mel, stft

# Below this magnitude a bin's phase is taken as undefined: it keeps the unit phasor's gradient finite.
PHASE_EPS = 1e-4


def masked_l1(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean ``|x - y|`` over valid positions; ``mask`` ``[B, 1, T]`` broadcasts over channels."""
    diff = (x - y).abs()
    if mask is None:
        return diff.mean()
    mask = mask.expand_as(diff)
    return (diff * mask).sum() / mask.sum().clamp_min(1.0)


def masked_asymmetric_l1(
    x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None, over: float = 0.0
) -> torch.Tensor:
    """Mean of ``|x - y|`` weighted ``1 + over`` where ``x > y`` and ``1 - over`` where ``x < y``, over valid
    positions; ``over = 0`` is :func:`masked_l1`. Its minimiser is a quantile below the median (0.5 - over / 2)."""
    if not 0.0 <= over < 1.0:  # at 1 or more an undershoot would cost nothing or be rewarded
        raise ValueError(f"over must be in [0, 1), got {over}")
    diff = x - y
    return masked_l1(diff * (1.0 + over * torch.sign(diff)), torch.zeros_like(diff), mask)


def masked_mse(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    diff = (x - y).square()
    if mask is None:
        return diff.mean()
    mask = mask.expand_as(diff)
    return (diff * mask).sum() / mask.sum().clamp_min(1.0)


def loudness_l1(
    log_mel: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, exponent: float = 0.5
) -> torch.Tensor:
    """L1 between log-mels ``[B, n_mels, F]`` compared as compressed magnitudes ``exp(exponent * log_mel)``.

    A log-domain L1 lets a decoder that cannot tell where a peak is predict its median, which sits low:
    decoded spectra come out flatter than speech. Compressed magnitude (``exponent`` 0.5 on a magnitude mel
    is close to the power-0.3 loudness law) weighs an error in a peak more than the same error in a valley,
    as hearing does. Each item's error is divided by its mean compressed magnitude so that loud and quiet
    recordings count alike.
    """
    x = torch.exp(exponent * log_mel)
    y = torch.exp(exponent * target)
    m = torch.ones_like(y[:, :1]) if mask is None else mask.to(y.dtype)
    valid = (m.sum(dim=(1, 2)) * y.shape[1]).clamp_min(1.0)
    scale = (y * m).sum(dim=(1, 2)) / valid
    err = ((x - y).abs() * m).sum(dim=(1, 2)) / valid
    return (err / scale.clamp_min(1e-8)).mean()


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1, averaged over several STFT resolutions (Yamamoto et al. 2020)."""

    def __init__(self, resolutions: Sequence[tuple[int, int]] = ((512, 128), (1024, 256), (256, 64))) -> None:
        super().__init__()
        self.configs = [STFTConfig(n_fft=n, hop_length=h) for n, h in resolutions]

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, T]`` or ``[B, 1, T]`` each; returns a scalar."""
        total = estimate.new_zeros(())
        for cfg in self.configs:
            est = stft(estimate.squeeze(1), cfg).abs()
            ref = stft(target.squeeze(1), cfg).abs()
            sc = torch.linalg.norm(ref - est) / torch.linalg.norm(ref).clamp_min(1e-7)
            mag = F.l1_loss(torch.log(est.clamp_min(LOG_EPS)), torch.log(ref.clamp_min(LOG_EPS)))
            total = total + sc + mag
        return total / len(self.configs)


class MelLoss(nn.Module):
    """L1 between log-mel spectrograms of two waveforms."""

    def __init__(self, config: MelConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(log_mel(estimate.squeeze(1), self.config), log_mel(target.squeeze(1), self.config))


class PhaseLoss(nn.Module):
    """Phase distance between two waveforms' STFTs, after the anti-wrapping losses of APNet (Ai & Ling 2023).

    Magnitude losses leave the phase to be learned only through overlap-add consistency, which is why a
    vocoder trained on them alone sounds rough. This compares the phase itself, on three views: the phase of
    each bin (instantaneous phase), its difference between neighbouring bins (group delay: where in the frame
    the energy sits) and between neighbouring frames (instantaneous frequency). Each term is ``1 - cos`` of
    the angle between unit phasors, so wrapping needs no special case, and is weighted by the target's
    square-root magnitude: in near-silent bins the phase is noise and must not steer the model.
    """

    def __init__(self, config: STFTConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, T]`` or ``[B, 1, T]`` each; returns a scalar in ``[0, 6]`` (three terms, each up to 2)."""
        est = stft(estimate.squeeze(1), self.config)  # [B, K, F]
        ref = stft(target.squeeze(1), self.config).detach()
        u = est / est.abs().clamp_min(PHASE_EPS)
        v = ref / ref.abs().clamp_min(PHASE_EPS)
        w = ref.abs().sqrt()
        total = estimate.new_zeros(())
        for dim in (None, 1, 2):  # the bins themselves, across frequency, across time
            if dim is None:
                du, dv, dw = u, v, w
            else:
                n = u.shape[dim]
                du = u.narrow(dim, 1, n - 1) * u.narrow(dim, 0, n - 1).conj()
                dv = v.narrow(dim, 1, n - 1) * v.narrow(dim, 0, n - 1).conj()
                dw = torch.minimum(w.narrow(dim, 1, n - 1), w.narrow(dim, 0, n - 1))
            agreement = (du * dv.conj()).real
            total = total + ((1.0 - agreement) * dw).sum() / dw.sum().clamp_min(1e-7)
        return total
