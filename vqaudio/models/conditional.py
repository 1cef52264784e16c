"""A speaker-conditioned spectral VQ-VAE: units that carry what was said, a decoder told who says it.

The content encoder and quantizer are the spectral codec's (usually one codebook). The decoder also receives
a global speaker embedding computed by a reference encoder from *another* clip of the same speaker; since
the voice reaches the decoder by that route, the units need not carry it (van den Oord et al. 2017 saw VQ-VAE
codes of speech become speaker-independent this way). Decoding the units of one speaker with the embedding
of another converts the voice.

The reference encoder lives inside the decoder module (``decoder.reference``): it never changes a code, so it
stays out of the codes checksum, like the rest of the decoder. When no reference is given, the decoder uses
``decoder.default_speaker``, the mean embedding of the training speakers, set when the model is released.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vqaudio.blocks import ChannelLayerNorm, ConvNeXtStack
from vqaudio.errors import ConfigError
from vqaudio.models.base import CodecOutput
from vqaudio.models.content import ContentInputConfig
from vqaudio.models.dvector import HIDDEN as DVECTOR_DIM
from vqaudio.models.dvector import SAMPLE_RATE as DVECTOR_RATE
from vqaudio.models.dvector import DVectorEncoder
from vqaudio.models.spectral import SpectralDecoder, SpectralNetConfig, SpectralVQVAE
from vqaudio.quantizers.base import BaseQuantizer
from vqaudio.spectral import MelConfig


@dataclass(frozen=True)
class SpeakerConfig:
    """The reference encoder. ``learned``: a ConvNeXt stack over log-mel, mean-pooled over time to ``dim``
    numbers, trained with the codec. ``dvector``: a pretrained speaker-verification network, frozen
    (:mod:`vqaudio.models.dvector`), its 256 numbers projected to ``dim`` by a trained linear layer."""

    channels: int = 128
    depth: int = 3
    dim: int = 128
    encoder: str = "learned"

    def __post_init__(self) -> None:
        if self.channels < 1 or self.depth < 1 or self.dim < 1:
            raise ConfigError("speaker channels, depth and dim must be >= 1")
        if self.encoder not in ("learned", "dvector"):
            raise ConfigError(f"speaker encoder must be 'learned' or 'dvector', got {self.encoder!r}")


class ReferenceEncoder(nn.Module):
    """Log-mel ``[B, n_mels, F]`` with mask ``[B, 1, F]`` -> speaker embedding ``[B, dim]`` (unit length)."""

    def __init__(self, n_mels: int, cfg: SpeakerConfig) -> None:
        super().__init__()
        self.inp = nn.Conv1d(n_mels, cfg.channels, 5, padding=2)
        self.norm = ChannelLayerNorm(cfg.channels)
        self.stack = ConvNeXtStack(cfg.channels, cfg.depth, 2, 7)
        self.out = nn.Linear(cfg.channels, cfg.dim)

    def forward(self, mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.stack(self.norm(self.inp(mel * mask)) * mask, mask)
        pooled = (x * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)  # [B, C]: the mean over the clip
        return nn.functional.normalize(self.out(pooled), dim=-1)


class DVectorReference(nn.Module):
    """Audio ``[B, 1, T]`` at 16 kHz with lengths ``[B]`` -> speaker embedding ``[B, dim]`` (unit length): the
    frozen d-vector of each clip, then a trained projection."""

    def __init__(self, cfg: SpeakerConfig) -> None:
        super().__init__()
        self.dvector = DVectorEncoder()
        self.proj = nn.Linear(DVECTOR_DIM, cfg.dim)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        ends = [audio.shape[-1]] * audio.shape[0] if lengths is None else [int(n) for n in lengths]
        dvectors = self.dvector.embed([audio[b, 0, :n] for b, n in enumerate(ends)])
        return nn.functional.normalize(self.proj(dvectors), dim=-1)


class ConditionalDecoder(SpectralDecoder):
    """The spectral decoder with the speaker embedding added to its features at every time resolution."""

    default_speaker: torch.Tensor

    def __init__(self, n_mels: int, cfg: SpectralNetConfig, speaker: SpeakerConfig) -> None:
        super().__init__(n_mels, cfg)
        c, _ = cfg.decoder_width
        self.reference: ReferenceEncoder | DVectorReference = (
            DVectorReference(speaker) if speaker.encoder == "dvector" else ReferenceEncoder(n_mels, speaker)
        )
        self.condition = nn.ModuleList(nn.Linear(speaker.dim, c) for _ in range(len(cfg.strides) + 1))
        self.register_buffer("default_speaker", torch.zeros(speaker.dim))

    def forward_with(self, z: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, D, F]`` and speaker ``[B, S]`` -> log-mel ``[B, n_mels, F * total_stride]``."""
        x = self.norm_in(self.inp(z)) + self.condition[0](speaker)[..., None]
        x = self.stacks[0](x)
        for i, (up, norm, stack) in enumerate(zip(self.up, self.up_norms, self.stacks[1:], strict=True)):
            x = stack(norm(up(x)) + self.condition[i + 1](speaker)[..., None])
        return self.out(self.norm_out(x))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.forward_with(z, self.default_speaker.expand(z.shape[0], -1))


class ConditionalVQVAE(SpectralVQVAE):
    """Spectral VQ-VAE whose decoder takes a speaker embedding (see the module docstring)."""

    family = "conditional"

    def __init__(
        self,
        mel: MelConfig,
        net: SpectralNetConfig,
        speaker: SpeakerConfig,
        quantizer: BaseQuantizer,
        content: ContentInputConfig | None = None,
    ) -> None:
        super().__init__(mel, net, quantizer, content)
        if speaker.encoder == "dvector" and mel.sample_rate != DVECTOR_RATE:
            raise ConfigError(f"the d-vector reference encoder needs {DVECTOR_RATE} Hz audio, not {mel.sample_rate}")
        self.speaker_config = speaker
        self.decoder: ConditionalDecoder = ConditionalDecoder(mel.n_mels, net, speaker)

    def speaker_embedding(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Reference audio ``[B, 1, T]`` -> speaker embeddings ``[B, S]``."""
        reference = self.decoder.reference
        if isinstance(reference, DVectorReference):
            return reference(audio, lengths)
        mel, mask = self._mel_and_mask(audio, lengths)
        return reference(self.normalize(mel), mask)

    def forward(
        self,
        audio: torch.Tensor,
        lengths: torch.Tensor | None = None,
        n_codebooks: int | None = None,
        *,
        reference: torch.Tensor | None = None,
        reference_lengths: torch.Tensor | None = None,
        warp: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> CodecOutput:
        """As :meth:`SpectralVQVAE.forward`, the decoder told the voice of ``reference`` ``[B, 1, T_ref]`` (by
        default the model's default speaker). ``warp`` ``[B]`` (training) warps the encoder's input along
        frequency (:func:`warp_mel`) while the target stays as it is: units that must rebuild the true voice
        from a warped one gain nothing from carrying it, so the voice is left to the reference. ``noise``
        ``[B, n_mels]`` (training) adds a stationary noise floor of those log magnitudes to the encoder's input
        (powers add), likewise: the units cannot name a recording by its noise."""
        mel, mask = self._mel_and_mask(audio, lengths)
        content = mel if warp is None else warp_mel(mel, warp)
        if noise is not None:
            content = 0.5 * torch.logaddexp(2 * content, 2 * noise[..., None].to(content.dtype))
        inp = self.encoder_input(content, mask)
        z, zmask = self.encoder(inp, mask)
        q = self.quantizer(z, zmask, n_codebooks)
        speaker = (
            self.decoder.default_speaker.expand(audio.shape[0], -1)
            if reference is None
            else self.speaker_embedding(reference, reference_lengths)
        )
        recon = self.decoder.forward_with(q.quantized, speaker)[..., : mel.shape[-1]]
        recon = recon * self.feature_std + self.feature_mean
        return CodecOutput(reconstruction=recon, target=mel, mask=mask, quantizer=q, latent=z, latent_mask=zmask)

    def decode(self, codes: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        """Codes ``[B, K, F]`` (and speaker ``[B, S]`` or ``[S]``; default: the default speaker) -> log-mel."""
        z = self.quantizer.decode(codes)
        if speaker is None:
            out = self.decoder(z)
        else:
            out = self.decoder.forward_with(z, speaker.to(z.dtype).expand(z.shape[0], -1))
        return out * self.feature_std + self.feature_mean


def warp_mel(mel: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Vocal-tract-length perturbation on log-mel ``[B, n_mels, F]``: band ``m`` of item ``b`` takes the
    value at band ``m * factors[b]`` (linear interpolation, the top band repeated past the end). Factors above 1
    move formants and harmonics down, below 1 up; timing is untouched."""
    n = mel.shape[1]
    pos = (torch.arange(n, dtype=mel.dtype, device=mel.device)[None] * factors[:, None].to(mel.dtype)).clamp(0, n - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=n - 1)
    frac = (pos - lo.to(mel.dtype))[..., None]  # [B, n_mels, 1]
    take = lambda idx: torch.gather(mel, 1, idx[..., None].expand(-1, -1, mel.shape[-1]))  # noqa: E731
    return take(lo) * (1 - frac) + take(hi) * frac
