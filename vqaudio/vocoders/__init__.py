"""Back ends that turn decoded spectrograms into audio."""

from vqaudio.vocoders.base import Vocoder
from vqaudio.vocoders.griffin_lim import GriffinLimConfig, griffin_lim, spectral_convergence
from vqaudio.vocoders.griffin_lim_vocoder import GriffinLimVocoder, WarmStartGriffinLim
from vqaudio.vocoders.istft_vocoder import ISTFTVocoder, ISTFTVocoderConfig

__all__ = [
    "GriffinLimConfig",
    "GriffinLimVocoder",
    "ISTFTVocoder",
    "ISTFTVocoderConfig",
    "Vocoder",
    "WarmStartGriffinLim",
    "griffin_lim",
    "spectral_convergence",
]
