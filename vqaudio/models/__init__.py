"""Codec models, their configuration and their files."""

from vqaudio.models.base import CodecModel, CodecOutput
from vqaudio.models.builders import ModelConfig, build_codec, build_quantizer, build_vocoder
from vqaudio.models.io import LoadedModel, load_model, save_model
from vqaudio.models.spectral import SpectralNetConfig, SpectralVQVAE
from vqaudio.models.waveform import WaveformNetConfig, WaveformVQVAE

__all__ = [
    "CodecModel",
    "CodecOutput",
    "LoadedModel",
    "ModelConfig",
    "SpectralNetConfig",
    "SpectralVQVAE",
    "WaveformNetConfig",
    "WaveformVQVAE",
    "build_codec",
    "build_quantizer",
    "build_vocoder",
    "load_model",
    "save_model",
]
