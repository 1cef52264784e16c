"""A pretrained speaker-verification network as a reference encoder: the voice from thousands of speakers' training.

The network is the GE2E d-vector model that the ``resemblyzer`` package ships (Apache-2.0; three LSTM layers
of 256 over 40-band mel power frames of 25 ms every 10 ms, a linear layer, ReLU and L2 normalisation). Its
weights are converted once into the units model's own weights file (``scripts/convert_dvector.py``), so
nothing is downloaded and ``resemblyzer`` is not needed to run it. It stays frozen: a speaker-conditioned
codec trained on an hour of speech learns voices from a few hundred readers, this network from far more.

As resemblyzer does, a clip is cut into 1.6 s windows every 0.8 s, each window embedded, the embeddings
averaged and L2-normalised; the clip's level is first raised (never lowered) to -30 dBFS. Unlike resemblyzer,
silences are not trimmed by a voice-activity detector (the level normalisation and averaging carry most of
its effect on clean speech).
"""

from __future__ import annotations

import torch
from torch import nn

from vqaudio.spectral import slaney_mel_filterbank

SAMPLE_RATE = 16000
N_MELS = 40
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
WINDOW_FRAMES = 160  # 1.6 s
WINDOW_HOP = 80
HIDDEN = 256
TARGET_DBFS = -30.0


class DVectorEncoder(nn.Module):
    """Audio ``[T]`` at 16 kHz -> d-vector ``[256]`` (unit length, non-negative). Frozen: no parameter trains."""

    mel_basis: torch.Tensor
    window: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, HIDDEN, 3, batch_first=True)
        self.linear = nn.Linear(HIDDEN, HIDDEN)
        basis = slaney_mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS, 0.0, SAMPLE_RATE / 2)  # librosa's defaults
        # Derived from the constants above, not learned: kept out of the weights file.
        self.register_buffer("mel_basis", torch.from_numpy(basis).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> DVectorEncoder:
        return super().train(False)  # pretrained and frozen: always as it was evaluated

    def mel(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[T]`` -> mel power frames ``[F, 40]``, level-normalised as resemblyzer's preprocessing does."""
        rms = audio.float().pow(2).mean().clamp_min(1e-10).sqrt()
        gain = (10 ** (TARGET_DBFS / 20) / rms).clamp_min(1.0)
        spec = torch.stft(
            audio.float() * gain, N_FFT, HOP, window=self.window, center=True, pad_mode="constant", return_complex=True
        )
        return (self.mel_basis @ spec.abs().pow(2)).T

    def windows(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[T]`` -> its analysis windows ``[W, frames, 40]`` (one shorter window if the clip is short)."""
        mel = self.mel(audio)
        if mel.shape[0] < WINDOW_FRAMES:  # a clip shorter than one window is embedded whole
            return mel[None]
        starts = range(0, mel.shape[0] - WINDOW_FRAMES + 1, WINDOW_HOP)
        return torch.stack([mel[s : s + WINDOW_FRAMES] for s in starts])

    @torch.no_grad()
    def embed(self, clips: list[torch.Tensor]) -> torch.Tensor:
        """Clips ``[T_i]`` -> d-vectors ``[len(clips), 256]``. The full-length windows of every clip go through
        the network as one batch (one LSTM call, not one per clip); a clip shorter than a window goes alone."""
        windows = [self.windows(c) for c in clips]
        full = [i for i, w in enumerate(windows) if w.shape[1] == WINDOW_FRAMES]
        per_window: list[torch.Tensor | None] = [None] * len(clips)
        if full:
            batch = torch.cat([windows[i] for i in full])
            embeds = self._embed_windows(batch).split([windows[i].shape[0] for i in full])
            for i, e in zip(full, embeds, strict=True):
                per_window[i] = e
        for i, w in enumerate(windows):
            if per_window[i] is None:
                per_window[i] = self._embed_windows(w)
        means = torch.stack([e.mean(0) for e in per_window if e is not None])
        return means / means.norm(dim=1, keepdim=True).clamp_min(1e-8)

    def _embed_windows(self, windows: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(windows)
        embeds = torch.relu(self.linear(hidden[-1]))
        return embeds / embeds.norm(dim=1, keepdim=True).clamp_min(1e-8)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``[T]`` -> d-vector ``[256]``."""
        return self.embed([audio])[0]
