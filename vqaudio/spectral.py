"""STFT, inverse STFT and log-mel features with one explicit framing rule.

Framing rule (used by every spectral model, the vocoders and Griffin-Lim)::

    frames F = ceil(T / hop)

Frame ``f`` is the window centred on the middle of hop block ``f``, i.e. on sample ``f * hop + hop / 2``.
The signal is zero-padded ``L = (n_fft - hop) / 2`` samples on the left and ``L + (F * hop - T)`` on the
right, so that the padded length is ``(F - 1) * hop + n_fft`` and an un-centred STFT yields exactly F frames::

    |<-- L -->|<----------------- T ----------------->|<- F*hop-T ->|<-- L -->|
    [  zeros  |               signal                  |    zeros    |  zeros  ]
    [---- frame 0 (n_fft) ----]
          [---- frame 1 ----]  ...

Zero padding (never reflection) is deliberate: frames of ``x`` equal the first frames of ``x`` followed by
silence, so padding a batch does not change the features of its shorter items.

The inverse (:func:`istft`) overlap-adds and divides by the summed squared window, then trims ``L`` samples on
the left. ``torch.istft`` cannot be used for this: with the edge frames hanging over zero padding the window
envelope there is ~0 and it refuses the input (NOLA check).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vqaudio.errors import ConfigError

LOG_EPS = 1e-5


@dataclass(frozen=True)
class STFTConfig:
    """Short-time Fourier transform geometry.

    Attributes:
        n_fft: FFT size; ``n_fft // 2 + 1`` frequency bins.
        hop_length: samples between frames.
        win_length: Hann window length, centred in the ``n_fft`` frame; defaults to ``n_fft``.
    """

    n_fft: int = 1024
    hop_length: int = 160
    win_length: int | None = None

    def __post_init__(self) -> None:
        if self.n_fft <= 0 or self.hop_length <= 0:
            raise ConfigError(f"n_fft and hop_length must be positive, got {self.n_fft}, {self.hop_length}")
        if self.window_length > self.n_fft:
            raise ConfigError(f"win_length {self.window_length} exceeds n_fft {self.n_fft}")
        if (self.n_fft - self.hop_length) % 2:
            raise ConfigError("n_fft - hop_length must be even so the framing padding is symmetric")
        if self.hop_length > self.window_length:
            raise ConfigError("hop_length larger than the window leaves gaps the inverse cannot fill")

    @property
    def window_length(self) -> int:
        return self.win_length or self.n_fft

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def pad(self) -> int:
        """Left padding ``L`` of the framing rule, in samples."""
        return (self.n_fft - self.hop_length) // 2

    def num_frames(self, num_samples: int) -> int:
        """``ceil(T / hop)``; at least one frame for non-empty input."""
        return max(1, math.ceil(num_samples / self.hop_length))


@dataclass(frozen=True)
class MelConfig:
    """Log-mel feature settings on top of an :class:`STFTConfig`."""

    sample_rate: int = 16000
    stft: STFTConfig = STFTConfig()
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = None

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_mels <= 0:
            raise ConfigError("sample_rate and n_mels must be positive")
        if self.upper_frequency > self.sample_rate / 2 or self.f_min < 0 or self.f_min >= self.upper_frequency:
            raise ConfigError(f"mel range [{self.f_min}, {self.upper_frequency}] Hz is invalid")

    @property
    def upper_frequency(self) -> float:
        return self.f_max if self.f_max is not None else self.sample_rate / 2

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.stft.hop_length


@functools.lru_cache(maxsize=16)
def _window(win_length: int, n_fft: int) -> torch.Tensor:
    """Periodic Hann window of ``win_length`` zero-padded to ``n_fft`` with the window centred.

    Cached tensors are made outside inference mode: one first built under ``torch.inference_mode()`` could
    not later be saved for backward by a training step.
    """
    with torch.inference_mode(False):
        w = torch.hann_window(win_length, periodic=True, dtype=torch.float32)
        left = (n_fft - win_length) // 2
        return F.pad(w, (left, n_fft - win_length - left))


def stft_window(config: STFTConfig) -> torch.Tensor:
    """The window ``[n_fft]`` every frame of ``config`` is multiplied by (see :func:`_window`); a cached tensor."""
    return _window(config.window_length, config.n_fft)


@functools.lru_cache(maxsize=32)
def _inverse_envelope(win_length: int, n_fft: int, hop_length: int, n_frames: int) -> torch.Tensor:
    """``1 / sum_f w^2(t - f hop)`` for the overlap-add of ``n_frames`` frames; 0 where the sum vanishes (only
    inside the padding that is trimmed). Cached: Griffin-Lim calls the inverse STFT dozens of times per clip."""
    with torch.inference_mode(False):  # see _window
        squared = _window(win_length, n_fft).square()
        envelope = _overlap_add(squared.expand(1, n_frames, n_fft), hop_length)[0]
        return torch.where(envelope > 1e-8, 1.0 / envelope.clamp_min(1e-8), torch.zeros_like(envelope))


def stft_frames(audio: torch.Tensor, config: STFTConfig) -> torch.Tensor:
    """Complex STFT in frame-major layout, ``[..., T]`` -> ``[..., F, n_freqs]`` with ``F = ceil(T / hop)``.

    The framing rule: ``L = (n_fft - hop) / 2`` zeros on the left, zeros on the right up to ``F`` whole frames,
    frames taken with ``unfold``, windowed and transformed along the last axis. An iterative algorithm
    (Griffin-Lim) that goes back and forth with :func:`istft_frames` therefore never transposes.
    """
    *lead, t = audio.shape
    n_frames = config.num_frames(t)
    x = F.pad(audio.reshape(-1, t).float(), (config.pad, config.pad + n_frames * config.hop_length - t))
    frames = x.unfold(-1, config.n_fft, config.hop_length) * _window(config.window_length, config.n_fft).to(x.device)
    return torch.fft.rfft(frames, dim=-1).reshape(*lead, n_frames, config.n_freqs)


def stft(audio: torch.Tensor, config: STFTConfig) -> torch.Tensor:
    """Complex STFT following the module's framing rule.

    Args:
        audio: ``[..., T]`` float waveform.
    Returns:
        ``[..., n_freqs, F]`` complex64 with ``F = ceil(T / hop)`` (a transposed view of :func:`stft_frames`).
    """
    return stft_frames(audio, config).transpose(-1, -2)


def _overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """``[B, F, n]`` -> ``[B, (F - 1) * hop + n]``, frame ``f`` added in at sample ``f * hop``.

    Cut into hop-long blocks, block ``j`` of frame ``f`` lands on output block ``f + j``: the sum is
    ``ceil(n / hop)`` shifted adds of whole rows, cheaper on a CPU than ``F.fold``, which first needs the
    frames transposed to ``[B, n, F]``.
    """
    b, n_frames, n = frames.shape
    k = -(-n // hop)
    out = frames.new_zeros(b, n_frames + k - 1, hop)
    # The last block may be shorter than a hop; it is added as it is rather than after zero-padding every
    # frame to k * hop, a copy of the whole frame tensor that Griffin-Lim would make twice per iteration.
    for j in range(k):
        width = min(hop, n - j * hop)
        out[:, j : j + n_frames, :width] += frames[:, :, j * hop : j * hop + width]
    return out.reshape(b, -1)[:, : (n_frames - 1) * hop + n]


def _overlap_added(spec: torch.Tensor, config: STFTConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse STFT before trimming: complex ``[B, F, n_freqs]`` -> the windowed frames ``[B, F, n_fft]`` and
    their weighted overlap-add ``[B, (F - 1) * hop + n_fft]``, padding included. Windowed and weighted in place
    (neither product's gradient needs the value it overwrites)."""
    window = _window(config.window_length, config.n_fft).to(spec.device)
    frames = torch.fft.irfft(spec, n=config.n_fft, dim=-1).mul_(window)
    signal = _overlap_add(frames, config.hop_length)
    inv_envelope = _inverse_envelope(config.window_length, config.n_fft, config.hop_length, spec.shape[-2])
    return frames, signal.mul_(inv_envelope.to(spec.device))


def istft_frames(spec: torch.Tensor, config: STFTConfig, length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`stft_frames`: complex ``[..., F, n_freqs]`` -> ``[..., length]`` float32."""
    *lead, n_frames, n_freqs = spec.shape
    if n_freqs != config.n_freqs:
        raise ValueError(f"expected {config.n_freqs} frequency bins, got {n_freqs}")
    signal = _overlap_added(spec.reshape(-1, n_frames, n_freqs), config)[1]
    length = n_frames * config.hop_length if length is None else length
    signal = signal[:, config.pad : config.pad + length]
    if signal.shape[-1] < length:
        signal = F.pad(signal, (0, length - signal.shape[-1]))
    return signal.reshape(*lead, length)


def reproject_frames(spec: torch.Tensor, config: STFTConfig, length: int) -> torch.Tensor:
    """``stft_frames(istft_frames(spec, config, length), config)``, the round trip of each Griffin-Lim iteration,
    for inference: ``[..., F, n_freqs]`` -> ``[..., F, n_freqs]`` with ``F == config.num_frames(length)``.

    The same operations in the same order, so the same values, with fewer passes over memory: the overlap-added
    signal goes straight into the zero-padded buffer the forward STFT frames (instead of a trimmed copy that is
    padded again), and that framing is windowed into the inverse's frame buffer. Not for autograd (``out=``).
    """
    *lead, n_frames, n_freqs = spec.shape
    if n_freqs != config.n_freqs or config.num_frames(length) != n_frames:
        raise ValueError(f"expected [..., {config.num_frames(length)}, {config.n_freqs}], got {tuple(spec.shape)}")
    frames, signal = _overlap_added(spec.reshape(-1, n_frames, n_freqs), config)
    padded = signal.new_zeros(signal.shape[0], 2 * config.pad + n_frames * config.hop_length)
    kept = min(length, signal.shape[-1] - config.pad)  # what istft_frames keeps; it zero-fills the rest
    padded[:, config.pad : config.pad + kept] = signal[:, config.pad : config.pad + kept]
    window = _window(config.window_length, config.n_fft).to(spec.device)
    torch.mul(padded.unfold(-1, config.n_fft, config.hop_length), window, out=frames)
    return torch.fft.rfft(frames, dim=-1).reshape(*lead, n_frames, n_freqs)


def istft(spec: torch.Tensor, config: STFTConfig, length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`stft` by weighted overlap-add.

    Args:
        spec: ``[..., n_freqs, F]`` complex.
        length: samples to return; defaults to ``F * hop``.
    Returns:
        ``[..., length]`` float32.
    """
    return istft_frames(spec.transpose(-1, -2), config, length)


def _hz_to_slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's auditory mel scale: linear (3 per 200 Hz) below 1 kHz, logarithmic above."""
    mels = hz / (200.0 / 3)
    above = hz >= 1000.0
    mels[above] = 15.0 + np.log(hz[above] / 1000.0) / (np.log(6.4) / 27.0)
    return mels


def _slaney_mel_to_hz(mels: np.ndarray) -> np.ndarray:
    hz = (200.0 / 3) * mels
    above = mels >= 15.0
    hz[above] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels[above] - 15.0))
    return hz


def slaney_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """Triangular filters on Slaney's mel scale, each scaled to unit area (``norm="slaney"``): ``[n_mels, n_fft // 2
    + 1]`` float32. The arithmetic (float64 throughout, one rounding to float32 before the area scaling and one
    after) is librosa's ``filters.mel``, bit for bit (a test compares them), so that codes do not change; computing it
    here spares every command librosa's import, about two seconds of a CLI call's start."""
    fft_hz = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    edges_mel = np.linspace(
        _hz_to_slaney_mel(np.asarray([float(f_min)]))[0], _hz_to_slaney_mel(np.asarray([float(f_max)]))[0], n_mels + 2
    )
    edges = _slaney_mel_to_hz(edges_mel)
    widths = np.diff(edges)
    ramps = np.subtract.outer(edges, fft_hz)
    weights = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float32)
    for i in range(n_mels):
        rising = -ramps[i] / widths[i]
        falling = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, np.newaxis]
    return weights


@functools.lru_cache(maxsize=16)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    basis = slaney_mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max)
    with torch.inference_mode(False):  # see _window
        return torch.from_numpy(basis).float()


def mel_basis(config: MelConfig) -> torch.Tensor:
    """Slaney-normalised mel filterbank ``[n_mels, n_freqs]``."""
    return _mel_basis(config.sample_rate, config.stft.n_fft, config.n_mels, config.f_min, config.upper_frequency)


def fast_modulus(spec: torch.Tensor) -> torch.Tensor:
    """``|spec|`` of a complex tensor as ``sqrt(re^2 + im^2)``, for inference only.

    On a CPU complex ``abs`` takes a careful ``hypot`` per element and costs several times more; the two
    agree to a float32 rounding for any value audio produces. Not for autograd: the square root's gradient
    is infinite where a bin is exactly zero (digital silence), where ``abs`` gives zero.
    """
    parts = torch.view_as_real(spec)
    return (parts[..., 0].square() + parts[..., 1].square()).sqrt_()


def _frames_magnitude(audio: torch.Tensor, config: STFTConfig) -> torch.Tensor:
    """``[..., T]`` -> linear magnitude in frame-major layout ``[..., F, n_freqs]``; ``abs`` under autograd."""
    spec = stft_frames(audio, config)
    if torch.is_grad_enabled() and audio.requires_grad:
        return spec.abs()
    return fast_modulus(spec)


def magnitude(audio: torch.Tensor, config: STFTConfig) -> torch.Tensor:
    """``[..., T]`` -> linear magnitude ``[..., n_freqs, F]``."""
    return _frames_magnitude(audio, config).transpose(-1, -2)


def log_mel(audio: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """``[..., T]`` -> natural-log mel magnitude ``[..., n_mels, F]`` (floor ``LOG_EPS``)."""
    mag = _frames_magnitude(audio, config.stft)
    # Frame-major product, then one transposed copy: contiguous rows on both sides of the matmul.
    mel = torch.matmul(mag, mel_basis(config).to(mag.device).T)
    return torch.log(torch.clamp(mel, min=LOG_EPS)).transpose(-1, -2).contiguous()


@functools.lru_cache(maxsize=16)
def _mel_inverse(config: MelConfig) -> tuple[torch.Tensor, float]:
    """Pseudo-inverse and projected-gradient step of the mel basis; cached because Griffin-Lim decoding calls
    :func:`mel_to_magnitude` once per window and the SVD behind ``pinv`` is the costly part."""
    basis = mel_basis(config)
    with torch.inference_mode(False):  # see _window
        # Step size 1 / L with L the largest eigenvalue of M^T M keeps projected gradient descent stable.
        step = 1.0 / float(torch.linalg.matrix_norm(basis, ord=2) ** 2)
        return torch.linalg.pinv(basis), step


def mel_to_magnitude(log_mel_spec: torch.Tensor, config: MelConfig, iterations: int = 0) -> torch.Tensor:
    """Approximate inverse of the mel projection: log-mel ``[..., n_mels, F]`` -> magnitude ``[..., n_freqs, F]``.

    Uses the non-negative least-squares solution given by the pseudo-inverse clamped at zero, optionally
    refined with a few projected-gradient steps (``iterations``) on ``||M s - m||^2`` subject to ``s >= 0``.
    """
    pinv, step = _mel_inverse(config)
    mel = torch.exp(log_mel_spec.float())
    mag = torch.clamp(torch.matmul(pinv.to(mel.device), mel), min=0.0)
    # Sparse products on a CPU when nothing needs their gradient (the dense loop below stays for autograd):
    # chosen by the input, not the grad mode, so a caller outside inference mode gets the same output.
    if iterations and mel.device.type == "cpu" and not (torch.is_grad_enabled() and log_mel_spec.requires_grad):
        return _refine_sparse(mag, mel, config, iterations, step)
    # The gradient M^T (M s - m) through the thin mel basis, not the n_freqs x n_freqs Gram matrix: about a
    # third of the arithmetic for 80 mels over 513 bins.
    basis = mel_basis(config).to(mel.device)
    for _ in range(iterations):
        mag = torch.clamp(mag - step * torch.matmul(basis.T, torch.matmul(basis, mag) - mel), min=0.0)
    return mag


@functools.lru_cache(maxsize=16)
def _sparse_mel_basis(config: MelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The mel basis and its transpose as sparse CSR matrices: each triangle covers a few bins, so about 2 of
    every 80 entries of a column are non-zero."""
    basis = mel_basis(config)
    with torch.inference_mode(False), warnings.catch_warnings():  # see _window; CSR support is marked beta
        warnings.simplefilter("ignore", UserWarning)
        return basis.to_sparse_csr(), basis.T.contiguous().to_sparse_csr()


def _refine_sparse(
    mag: torch.Tensor, mel: torch.Tensor, config: MelConfig, iterations: int, step: float
) -> torch.Tensor:
    """:func:`mel_to_magnitude`'s projected-gradient steps without autograd, through the sparse basis: the same
    steps, a fortieth of the arithmetic of the dense products (rounding differs in the last bits)."""
    fwd, back = _sparse_mel_basis(config)
    *lead, n_freqs, n_frames = mag.shape
    # One layout for every step: bins (or bands) first, batch and frames flattened after them.
    s = mag.movedim(-2, 0).reshape(n_freqs, -1).contiguous()
    m = mel.movedim(-2, 0).reshape(mel.shape[-2], -1)
    for _ in range(iterations):
        residual = torch.sparse.mm(fwd, s).sub_(m)
        s.sub_(torch.sparse.mm(back, residual).mul_(step)).clamp_(min=0.0)
    return s.reshape(n_freqs, *lead, n_frames).movedim(0, -2).contiguous()


@functools.lru_cache(maxsize=16)
def mel_inverse_on_grid(config: MelConfig, n_fft: int) -> torch.Tensor:
    """``[n_fft // 2 + 1, n_mels]``: the mel basis's pseudo-inverse, read off at the bins of an ``n_fft`` STFT.

    ``matrix @ exp(log_mel)`` is the zero-iteration :func:`mel_to_magnitude`, linearly interpolated along
    frequency onto another STFT's bins (a vocoder head may use a smaller STFT than the features).
    """
    pinv, _ = _mel_inverse(config)
    with torch.inference_mode(False):  # see _window
        # Both grids run from 0 Hz to Nyquist, so aligned corners make each target bin a mix of its two
        # neighbouring source bins.
        return F.interpolate(pinv.T[None], size=n_fft // 2 + 1, mode="linear", align_corners=True)[0].T.contiguous()


class LogMel(torch.nn.Module):
    """Module wrapper of :func:`log_mel` so models can hold their feature extractor."""

    def __init__(self, config: MelConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` or ``[B, 1, T]`` -> ``[B, n_mels, F]``."""
        if audio.dim() == 3:
            audio = audio[:, 0]
        return log_mel(audio, self.config)
