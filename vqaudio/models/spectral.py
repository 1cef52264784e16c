"""Spectral VQ-VAE: log-mel frames -> conv encoder -> residual VQ -> conv decoder -> log-mel frames.

Time geometry (defaults: 16 kHz, hop 160, one stride-2 stage)::

    audio  T samples
    mel    F_mel = ceil(T / hop)              100 frames/s
    codes  F = ceil(F_mel / stride) = ceil(T / (hop * stride))   50 frames/s
    decode F * stride mel frames -> a vocoder (Griffin-Lim or learned) -> F * hop * stride samples

Downsampling uses kernel = stride convolutions (non-overlapping blocks) and upsampling the matching transposed
convolutions, so every code frame owns exactly ``stride`` mel frames.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqaudio.blocks import ChannelLayerNorm, ConvNeXtStack, downsample_mask, lengths_to_mask
from vqaudio.errors import ConfigError
from vqaudio.models.base import CodecModel, CodecOutput
from vqaudio.models.content import ContentInput, ContentInputConfig
from vqaudio.quantizers.base import BaseQuantizer
from vqaudio.spectral import LogMel, MelConfig


@dataclass(frozen=True)
class SpectralNetConfig:
    """Encoder/decoder sizes. ``depths[i]`` ConvNeXt blocks run at time resolution ``i`` (0 = mel rate)."""

    channels: int = 256
    hidden_mult: int = 2
    kernel_size: int = 7
    strides: tuple[int, ...] = (2,)
    encoder_depths: tuple[int, ...] = (1, 4)
    decoder_depths: tuple[int, ...] = (2, 6)
    latent_dim: int = 64
    # The decoder may be wider than the encoder: decoding is where a low-bitrate codec needs capacity, and a
    # wider decoder can be trained against a finished encoder's codes (the tokens do not change). 0 = as above.
    decoder_channels: int = 0
    decoder_hidden_mult: int = 0
    # Inference-time post-filter on the decoded log-mel (see SpectralPostFilter); 0 = none. Its per-band
    # centre is fitted to the decoded training audio when the model is released (training.export).
    postfilter: float = 0.0
    postfilter_offset: float = 1.0
    # How much the post-filter deepens what lies below a band's centre (0 = leaves it as is).
    postfilter_below: float = 0.0

    def __post_init__(self) -> None:
        n = len(self.strides) + 1
        if len(self.encoder_depths) != n or len(self.decoder_depths) != n:
            raise ConfigError(f"encoder_depths and decoder_depths need {n} entries (one per resolution)")
        if any(s < 1 for s in self.strides) or self.channels < 1 or self.latent_dim < 1:
            raise ConfigError("strides, channels and latent_dim must be positive")
        if self.decoder_channels < 0 or self.decoder_hidden_mult < 0:
            raise ConfigError("decoder_channels and decoder_hidden_mult must be >= 0 (0 = as the encoder)")
        if self.kernel_size % 2 == 0:
            raise ConfigError("kernel_size must be odd")
        if not 0.0 <= self.postfilter <= 1.0 or not math.isfinite(self.postfilter_offset):
            raise ConfigError("postfilter must be in [0, 1] and postfilter_offset finite")
        if isinstance(self.postfilter_below, bool) or not 0.0 <= self.postfilter_below <= 1.0:
            raise ConfigError("postfilter_below must be in [0, 1]")
        if self.postfilter_below and not self.postfilter:
            raise ConfigError("postfilter_below needs a post-filter (postfilter > 0)")

    @property
    def total_stride(self) -> int:
        return math.prod(self.strides)

    @property
    def decoder_width(self) -> tuple[int, int]:
        """Channels and MLP multiplier of the decoder."""
        return self.decoder_channels or self.channels, self.decoder_hidden_mult or self.hidden_mult


class SpectralEncoder(nn.Module):
    def __init__(self, n_mels: int, cfg: SpectralNetConfig) -> None:
        super().__init__()
        c = cfg.channels
        self.cfg = cfg
        self.inp = nn.Conv1d(n_mels, c, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.norm_in = ChannelLayerNorm(c)
        self.stacks = nn.ModuleList(ConvNeXtStack(c, d, cfg.hidden_mult, cfg.kernel_size) for d in cfg.encoder_depths)
        self.down = nn.ModuleList(nn.Conv1d(c, c, s, stride=s) for s in cfg.strides)
        self.down_norms = nn.ModuleList(ChannelLayerNorm(c) for _ in cfg.strides)
        self.norm_out = ChannelLayerNorm(c)
        self.out = nn.Conv1d(c, cfg.latent_dim, 1)

    def forward(self, mel: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, n_mels, F_mel]``, mask ``[B, 1, F_mel]`` -> latents ``[B, D, F]`` and their mask ``[B, 1, F]``."""
        x = self.norm_in(self.inp(mel * mask)) * mask
        x = self.stacks[0](x, mask)
        for down, norm, stack, s in zip(self.down, self.down_norms, self.stacks[1:], self.cfg.strides, strict=True):
            # Zero-fill to a whole number of blocks, exactly as an unpadded item would be.
            x = F.pad(x, (0, (-x.shape[-1]) % s))
            mask = downsample_mask(mask, s)
            x = norm(down(x)) * mask
            x = stack(x, mask)
        return self.out(self.norm_out(x)) * mask, mask


class SpectralPostFilter(nn.Module):
    """Expands decoded log-mel about each band's usual level, per mel band::

        y = x + strength * relu(x - centre - offset) - below * relu(centre - x)

    A decoder trained with log-domain L1/L2 predicts, where it is unsure, a value between peak and valley,
    so its formants and harmonics come out lower than speech's and its valleys and pauses higher. Lifting what
    stands above a band's usual level, and deepening what lies below it, restores some of that contrast, the
    way a speech codec's post-filter deepens the spectral valleys where coding noise is heard. It moves the
    log-mel away from the original (log-mel L1 rises) while PESQ-WB rises (docs/results.md). Pointwise in
    time, so chunked and streamed decoding give the same result as a whole-file pass.
    """

    centre: torch.Tensor

    def __init__(self, n_mels: int, strength: float, offset: float, below: float = 0.0) -> None:
        super().__init__()
        self.strength = strength
        self.offset = offset
        self.below = below
        # Mean decoded log-mel per band over training speech; set by training.export.fit_postfilter.
        self.register_buffer("centre", torch.zeros(n_mels))

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``[B, n_mels, F]`` -> ``[B, n_mels, F]``."""
        centre = self.centre.to(log_mel.dtype)[:, None]
        out = log_mel + self.strength * torch.relu(log_mel - (centre + self.offset))
        if self.below:
            out = out - self.below * torch.relu(centre - log_mel)
        return out


def is_postfilter_key(key: str) -> bool:
    """Whether a state-dict key (of a codec, or of its decoder) belongs to the post-filter."""
    return key.startswith("postfilter.") or ".postfilter." in key


def load_state_except_postfilter(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """``load_state_dict`` minus the post-filter's state, which is fitted at release and used at inference only,
    so either side may lack it. Any other missing or unexpected key raises ``RuntimeError``."""
    state = {k: v for k, v in state.items() if not is_postfilter_key(k)}
    missing, unexpected = module.load_state_dict(state, strict=False)
    if unexpected or not all(is_postfilter_key(k) for k in missing):
        raise RuntimeError(f"missing {missing}, unexpected {unexpected}")


class SpectralDecoder(nn.Module):
    def __init__(self, n_mels: int, cfg: SpectralNetConfig) -> None:
        super().__init__()
        c, mult = cfg.decoder_width
        self.inp = nn.Conv1d(cfg.latent_dim, c, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.norm_in = ChannelLayerNorm(c)
        depths = list(reversed(cfg.decoder_depths))
        self.stacks = nn.ModuleList(ConvNeXtStack(c, d, mult, cfg.kernel_size) for d in depths)
        self.up = nn.ModuleList(nn.ConvTranspose1d(c, c, s, stride=s) for s in reversed(cfg.strides))
        self.up_norms = nn.ModuleList(ChannelLayerNorm(c) for _ in cfg.strides)
        self.norm_out = ChannelLayerNorm(c)
        self.out = nn.Conv1d(c, n_mels, 1)
        # Part of the decoder's state, so it stays out of the codes checksum: it never changes the codes.
        self.postfilter = (
            SpectralPostFilter(n_mels, cfg.postfilter, cfg.postfilter_offset, cfg.postfilter_below)
            if cfg.postfilter
            else None
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, D, F]`` -> log-mel ``[B, n_mels, F * total_stride]``."""
        x = self.norm_in(self.inp(z))
        x = self.stacks[0](x)
        for up, norm, stack in zip(self.up, self.up_norms, self.stacks[1:], strict=True):
            x = stack(norm(up(x)))
        return self.out(self.norm_out(x))


class SpectralVQVAE(CodecModel):
    """Codec on log-mel frames. ``decode`` returns log-mel; a vocoder turns it into audio."""

    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    family = "spectral"

    def __init__(
        self,
        mel: MelConfig,
        net: SpectralNetConfig,
        quantizer: BaseQuantizer,
        content: ContentInputConfig | None = None,
    ) -> None:
        super().__init__()
        if quantizer.dim != net.latent_dim:
            raise ConfigError(f"quantizer dim {quantizer.dim} != latent_dim {net.latent_dim}")
        self.mel_config = mel
        self.net_config = net
        self.features = LogMel(mel)
        self.content_input = ContentInput(mel, content or ContentInputConfig())
        self.encoder = SpectralEncoder(mel.n_mels, net)
        self.quantizer = quantizer
        self.decoder = SpectralDecoder(mel.n_mels, net)
        # Log-mel of speech sits around -4 with a spread of ~2.5; centring it keeps the first layers well scaled.
        self.register_buffer("feature_mean", torch.tensor(-4.0))
        self.register_buffer("feature_std", torch.tensor(2.5))

    @property
    def sample_rate(self) -> int:
        return self.mel_config.sample_rate

    @property
    def hop_length(self) -> int:
        # A multi-scale quantizer's code frame spans several latent frames (its superframe).
        return self.mel_config.stft.hop_length * self.net_config.total_stride * self.quantizer.frame_stride

    @property
    def n_mels(self) -> int:
        return self.mel_config.n_mels

    def analysis_settings(self) -> dict[str, object]:
        # The mel front end decides the codes as much as the weights do (same weights, other hop: other codes).
        settings = {**super().analysis_settings(), "mel": asdict(self.mel_config)}
        content = self.content_input.config
        # Only when in use, so that models without it keep the codes checksum their token files record.
        return {**settings, "content_input": asdict(content)} if content.active else settings

    @property
    def context_samples(self) -> int:
        # Receptive field of the encoder and of the decoder in mel frames, each side, bounded from above.
        cfg = self.net_config
        half = cfg.kernel_size // 2
        mel_frames = half  # input conv
        scale = 1
        depths = list(cfg.encoder_depths)
        mel_frames += half * depths[0]
        for s, d in zip(cfg.strides, depths[1:], strict=True):
            mel_frames += scale * (s - 1)
            scale *= s
            mel_frames += scale * half * d
        dec = scale * half * (1 + cfg.decoder_depths[-1]) + sum(cfg.decoder_depths[:-1]) * half * scale
        hop = self.mel_config.stft.hop_length
        # The content input's running window widens what the encoder's first frames look at (kept apart from the
        # max: a chunk's context then covers the window in full, whichever side needs more).
        frames = max(mel_frames, dec) + 2 * scale + self.content_input.context_frames
        return frames * hop + self.mel_config.stft.n_fft // 2

    def _mel_and_mask(self, audio: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if audio.dim() == 2:
            audio = audio[:, None]
        hop = self.mel_config.stft.hop_length
        if lengths is None:
            lengths = torch.full((audio.shape[0],), audio.shape[-1], device=audio.device)
        else:
            # Samples past an item's length must not leak into its last frames: zero them, as padding would be.
            audio = audio * lengths_to_mask(lengths, audio.shape[-1])
        # The features stay float32 under autocast: the mel filterbank product would otherwise round them.
        with torch.autocast(audio.device.type, enabled=False):
            mel = self.features(audio.float())
        mel_lengths = torch.clamp((lengths + hop - 1) // hop, min=1)
        return mel, lengths_to_mask(mel_lengths, mel.shape[-1])

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel -> the centred, scaled features the encoder reads."""
        return (mel - self.feature_mean) / self.feature_std

    def encoder_input(self, mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Log-mel ``[B, n_mels, F]`` and its mask ``[B, 1, F]`` -> what the encoder reads."""
        return self.content_input(self.normalize(mel), mask)

    def forward(
        self, audio: torch.Tensor, lengths: torch.Tensor | None = None, n_codebooks: int | None = None
    ) -> CodecOutput:
        """Audio ``[B, 1, T]`` -> reconstructed log-mel ``[B, n_mels, F_mel]`` with its target and mask.

        ``n_codebooks`` fixes the bitrate; by default a training quantizer draws it (quantizer dropout).
        """
        mel, mask = self._mel_and_mask(audio, lengths)
        z, zmask = self.encoder(self.encoder_input(mel, mask), mask)
        q = self.quantizer(z, zmask, n_codebooks)
        recon = self.decoder(q.quantized)[..., : mel.shape[-1]] * self.feature_std + self.feature_mean
        return CodecOutput(reconstruction=recon, target=mel, mask=mask, quantizer=q, latent=z, latent_mask=zmask)

    def latents(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mel, mask = self._mel_and_mask(audio, lengths)
        return self.encoder(self.encoder_input(mel, mask), mask)

    def encode(
        self, audio: torch.Tensor, lengths: torch.Tensor | None = None, n_codebooks: int | None = None, *, beam: int = 1
    ) -> torch.Tensor:
        z, zmask = self.latents(audio, lengths)
        return self.quantizer.encode(z, n_codebooks, beam=beam, mask=zmask)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, K, F]`` -> log-mel ``[B, n_mels, F * hop_length / mel hop]``, before any post-filter."""
        return self.decoder(self.quantizer.decode(codes)) * self.feature_std + self.feature_mean

    @property
    def has_postfilter(self) -> bool:
        return self.decoder.postfilter is not None

    def postfilter(self, decoded: torch.Tensor) -> torch.Tensor:
        """The model's post-filter on decoded log-mel ``[B, n_mels, F]`` (unchanged if it has none)."""
        pf = self.decoder.postfilter
        return decoded if pf is None else pf(decoded)
