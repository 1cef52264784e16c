"""The one place that turns a :class:`ModelConfig` into modules."""

from __future__ import annotations

from dataclasses import dataclass

from vqaudio.errors import ConfigError
from vqaudio.models.base import CodecModel
from vqaudio.models.conditional import ConditionalVQVAE, SpeakerConfig
from vqaudio.models.content import ContentInputConfig
from vqaudio.models.spectral import SpectralNetConfig, SpectralVQVAE
from vqaudio.models.waveform import WaveformNetConfig, WaveformVQVAE
from vqaudio.quantizers.base import BaseQuantizer
from vqaudio.quantizers.identity import IdentityQuantizer
from vqaudio.quantizers.multiscale import MultiScaleConfig, MultiScaleQuantizer
from vqaudio.quantizers.rvq import ResidualVectorQuantizer, RVQConfig
from vqaudio.spectral import MelConfig
from vqaudio.vocoders.base import Vocoder
from vqaudio.vocoders.griffin_lim_vocoder import GriffinLimVocoder, WarmStartGriffinLim
from vqaudio.vocoders.istft_vocoder import ISTFTVocoder, ISTFTVocoderConfig

# Back ends by name, in the order a model without a card default prefers them.
BACK_ENDS = ("learned", "griffin-lim", "hybrid")

FAMILIES = ("spectral", "waveform", "conditional")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a codec (and its learned vocoder) from scratch.

    ``family`` picks which of ``spectral`` / ``waveform`` is used; ``quantizer`` is ``rvq`` (residual VQ, every
    codebook at the code frame rate), ``multiscale`` (a residual VQ whose codebooks have their own frame rates:
    ``vqaudio.quantizers.multiscale``; spectral family only) or ``none`` (an identity quantizer, tests only).
    """

    family: str = "spectral"
    mel: MelConfig = MelConfig()
    spectral: SpectralNetConfig = SpectralNetConfig()
    waveform: WaveformNetConfig = WaveformNetConfig()
    rvq: RVQConfig = RVQConfig()
    multiscale: MultiScaleConfig = MultiScaleConfig()
    quantizer: str = "rvq"
    vocoder: ISTFTVocoderConfig | None = None
    # family "conditional" only: the reference encoder whose speaker embedding the decoder is given.
    speaker: SpeakerConfig = SpeakerConfig()
    # family "conditional" only: what the content encoder reads of the log-mel (pitch and long-term spectrum out).
    content: ContentInputConfig = ContentInputConfig()

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        if self.quantizer not in ("rvq", "multiscale", "none"):
            raise ConfigError(f"quantizer must be 'rvq', 'multiscale' or 'none', got {self.quantizer!r}")
        latent = self.waveform.latent_dim if self.family == "waveform" else self.spectral.latent_dim
        if self.quantizer == "rvq" and self.rvq.vq.dim != latent:
            raise ConfigError(f"rvq.vq.dim ({self.rvq.vq.dim}) must equal the {self.family} latent_dim ({latent})")
        if self.quantizer == "multiscale":
            if self.family != "spectral":
                raise ConfigError(f"quantizer 'multiscale' needs family 'spectral', got {self.family!r}")
            if self.multiscale.vq.dim != latent:
                raise ConfigError(f"multiscale.vq.dim ({self.multiscale.vq.dim}) must equal latent_dim ({latent})")
        if self.content.active and self.family != "conditional":
            raise ConfigError(f"model.content needs family 'conditional', got {self.family!r}")
        if self.family == "waveform" and self.waveform.sample_rate != self.mel.sample_rate:
            raise ConfigError("waveform.sample_rate must equal mel.sample_rate (the mel config drives the losses)")

    @property
    def sample_rate(self) -> int:
        return self.mel.sample_rate


def build_quantizer(config: ModelConfig) -> BaseQuantizer:
    if config.quantizer == "none":
        dim = config.waveform.latent_dim if config.family == "waveform" else config.spectral.latent_dim
        return IdentityQuantizer(dim)
    if config.quantizer == "multiscale":
        return MultiScaleQuantizer(config.multiscale)
    return ResidualVectorQuantizer(config.rvq)


def build_codec(config: ModelConfig) -> CodecModel:
    quantizer = build_quantizer(config)
    if config.family == "spectral":
        return SpectralVQVAE(config.mel, config.spectral, quantizer)
    if config.family == "conditional":
        return ConditionalVQVAE(config.mel, config.spectral, config.speaker, quantizer, config.content)
    return WaveformVQVAE(config.waveform, quantizer)


def build_vocoder(config: ModelConfig) -> ISTFTVocoder | None:
    if config.vocoder is None:
        return None
    return ISTFTVocoder(config.mel, config.vocoder)


def build_back_ends(codec: CodecModel, vocoder: ISTFTVocoder | None) -> dict[str, Vocoder]:
    """The back ends that turn ``codec``'s decoded log-mel into audio, by name (in :data:`BACK_ENDS` order):
    the learned vocoder if shipped, Griffin-Lim from zero phase, and Griffin-Lim started from the learned
    vocoder's phase (``hybrid``: the same weights, nothing more to ship). Empty for a waveform codec."""
    back_ends: dict[str, Vocoder] = {}
    if vocoder is not None:
        back_ends["learned"] = vocoder
    if isinstance(codec, SpectralVQVAE):
        back_ends["griffin-lim"] = GriffinLimVocoder(codec.mel_config).eval()
        if vocoder is not None:
            back_ends["hybrid"] = WarmStartGriffinLim(codec.mel_config, vocoder).eval()
    return back_ends
