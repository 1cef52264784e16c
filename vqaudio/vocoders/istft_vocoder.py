"""A learned vocoder: ConvNeXt backbone over mel frames and an inverse-STFT head (after Vocos, Siuzdenko 2023).

The network predicts, for every frame, a log-magnitude and a phase for each bin of a small STFT that shares the
mel hop; the inverse STFT of :mod:`vqaudio.spectral` then overlap-adds them. Working at frame rate instead of
upsampling to sample rate is what makes it run hundreds of times faster than real time on a CPU.

With ``magnitude_prior`` the log-magnitude is predicted as a correction to the mel's pseudo-inverse (what
Griffin-Lim starts from) rather than from nothing: the network then spends its capacity on the phase and on
the detail the mel projection lost, and starts out no worse than that inverse.

With ``phase = "integrated"`` the phase is not predicted frame by frame but integrated over time, as a
phase vocoder does. A sinusoid's STFT phase advances by its frequency times the hop from one frame to the
next; a convolutional network fed a steady mel gives the same output at every frame, so a directly
predicted phase cannot advance, and overlapping frames of a steady harmonic that lies between two bins
cancel. The integrated head predicts each bin's deviation from its centre frequency and a per-frame
offset; the phase is the running sum of bin frequency plus deviation, plus that offset.

With ``consistency_iters`` the head's spectrum is projected a few times onto consistent spectrograms (fast
Griffin-Lim's step, keeping the predicted magnitude) before the inverse STFT. A head's frames are predicted
independently, so where overlapping frames disagree in phase they partly cancel; trained through the
projections, the network learns an output that they turn into frames that agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqaudio.blocks import ChannelLayerNorm, ConvNeXtStack
from vqaudio.errors import ConfigError
from vqaudio.spectral import LOG_EPS, MelConfig, STFTConfig, istft_frames, mel_inverse_on_grid
from vqaudio.vocoders.base import Synthesis, Vocoder
from vqaudio.vocoders.griffin_lim import project_consistent

# Fixed, not configurable: trained weights depend on it, and it is not stored with them.
CONSISTENCY_MOMENTUM = 0.99


@dataclass(frozen=True)
class ISTFTVocoderConfig:
    channels: int = 128
    depth: int = 8
    hidden_mult: int = 3
    kernel_size: int = 7
    n_fft: int = 640  # head STFT size; its hop is the mel hop
    magnitude_prior: bool = False  # predict log-magnitude relative to the mel basis's pseudo-inverse
    phase: str = "direct"  # "direct": a phase per frame; "integrated": frequency deviations summed over time
    # Fast Griffin-Lim projections of the head's spectrum onto consistent ones, inside the network (trained
    # through): overlapping frames then agree with the predicted magnitude instead of partly cancelling.
    consistency_iters: int = 0

    def __post_init__(self) -> None:
        if self.channels < 1 or self.depth < 0 or self.n_fft < 2:
            raise ConfigError("channels, depth and n_fft must be positive")
        k = self.consistency_iters
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= 64:
            raise ConfigError(
                f"vocoder consistency_iters must be an integer in [0, 64], got {self.consistency_iters!r}"
            )
        if self.phase not in ("direct", "integrated"):
            raise ConfigError(f"vocoder phase must be 'direct' or 'integrated', got {self.phase!r}")


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
        n_outputs = 3 if config.phase == "integrated" else 2  # log-magnitude, phase (or deviation and offset)
        self.head = nn.Conv1d(c, n_outputs * self.head_stft.n_freqs, 1)
        if config.phase == "integrated":
            # Start with no deviation: every bin turns at its centre frequency. A random start would put each
            # bin on its own random frequency, and the running sum spreads that error over every later frame.
            n = self.head_stft.n_freqs
            with torch.no_grad():
                self.head.weight[n : 2 * n].zero_()
                assert self.head.bias is not None
                self.head.bias[n : 2 * n].zero_()
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
        # Each consistency projection spreads a frame's content over one more head window either side.
        windows = 1 + self.config.consistency_iters
        return (
            self.config.kernel_size // 2
            + self.backbone.receptive_field
            + windows * (self.config.n_fft // self.hop_length + 1)
        )

    def spectrum(self, log_mel: torch.Tensor, anchor: tuple[int, torch.Tensor] | None = None) -> torch.Tensor:
        """``[B, n_mels, F]`` -> the head's complex STFT ``[B, n_fft // 2 + 1, F]``."""
        return self._spectrum(log_mel, anchor)[0].transpose(1, 2)

    def head_outputs(self, log_mel: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Log-mel ``[B, n_mels, F]`` -> the network's real-valued outputs, each ``[B, K, F]`` float32 (``K`` head
        bins): the log-magnitude (the magnitude prior added, not yet clamped), then the phase (``direct``) or the
        frequency deviation and phase offset (``integrated``). Everything after them (the phase's running sum,
        the consistency projections, the inverse STFT) is complex or global in time; this part is what the
        vocoder's ONNX graph holds (:mod:`vqaudio.runtime.graphs`)."""
        x = (log_mel - self.feature_mean) / self.feature_std
        x = self.backbone(self.norm_in(self.inp(x)))
        # The 1x1 head as a product on frames: its outputs come out frame-major, so the spectrum below is built
        # in the layout the inverse STFT reads, with no transposed copy of a complex tensor on the way.
        frames = F.linear(self.norm_out(x).transpose(1, 2), self.head.weight[:, :, 0], self.head.bias)
        out = frames.float().transpose(1, 2)  # [B, n_outputs * K, F], a view
        parts = out.chunk(3 if self.config.phase == "integrated" else 2, dim=1)
        if not self.config.magnitude_prior:
            return parts
        with torch.autocast(log_mel.device.type, enabled=False):
            prior = torch.matmul(self.prior, torch.exp(log_mel.float()))
        return (parts[0] + torch.log(prior.clamp_min(LOG_EPS)), *parts[1:])

    def _spectrum(
        self, log_mel: torch.Tensor, anchor: tuple[int, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The complex STFT in frame-major layout ``[B, F, K]`` (what the inverse STFT reads) and, for the
        integrated head, the running phase ``[B, K, F]`` inside it."""
        running = None
        if self.config.phase == "integrated":
            log_mag, deviation, offset = self.head_outputs(log_mel)
            running = self._integrate(deviation)
            if anchor is not None:
                frame, value = anchor
                running = torch.remainder(running + (value - running[..., frame])[..., None], 2 * torch.pi)
            phase = running + offset
        else:
            log_mag, phase = self.head_outputs(log_mel)
        # Clamp before exp: an untrained head must not overflow to inf. Real and imaginary parts are computed
        # and interleaved by hand: torch.polar takes several times longer on a CPU.
        mag = torch.exp(log_mag.transpose(1, 2).clamp(max=6.0))
        phase = phase.transpose(1, 2)
        if self.config.consistency_iters:
            angles = torch.view_as_complex(torch.stack([torch.cos(phase), torch.sin(phase)], dim=-1))
            length = log_mel.shape[-1] * self.hop_length
            spec = project_consistent(
                mag, angles, self.head_stft, self.config.consistency_iters, CONSISTENCY_MOMENTUM, length
            )
            return spec, running
        parts = torch.stack([mag * torch.cos(phase), mag * torch.sin(phase)], dim=-1)
        return torch.view_as_complex(parts), running

    def _integrate(self, deviation: torch.Tensor) -> torch.Tensor:
        """Per-frame frequency deviations ``[B, K, F]`` (radians per hop) -> phase ``[B, K, F]``, zero before the
        first frame. Bin ``k`` turns ``2 pi k hop / n_fft`` per hop: that part is exact in integers (an hour of
        frames would lose whole radians in a float32 sum); the deviations are summed in float64."""
        k = torch.arange(self.head_stft.n_freqs, device=deviation.device)[:, None]
        t = torch.arange(1, deviation.shape[-1] + 1, device=deviation.device)
        n = self.head_stft.n_fft
        centre = (k * t * self.hop_length % n).double() * (2 * torch.pi / n)
        drift = torch.cumsum(deviation.double(), dim=-1)
        return torch.remainder(centre + drift, 2 * torch.pi).float()

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``[B, n_mels, F]`` -> ``[B, F * hop]``."""
        return self.synthesize(log_mel).audio

    def synthesize(
        self, log_mel: torch.Tensor, anchor: tuple[int, torch.Tensor] | None = None, probe: int | None = None
    ) -> Synthesis:
        spec, running = self._spectrum(log_mel, anchor)
        audio = istft_frames(spec, self.head_stft, log_mel.shape[-1] * self.hop_length)
        return Synthesis(audio, None if running is None or probe is None else running[..., probe])
