"""Shared fixtures: synthetic speech-like audio and tiny models built and saved by the tests themselves."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vqaudio.models import ModelConfig, SpectralNetConfig, WaveformNetConfig, build_codec, build_vocoder, save_model
from vqaudio.quantizers import RVQConfig, VQConfig
from vqaudio.spectral import MelConfig, STFTConfig
from vqaudio.vocoders import ISTFTVocoderConfig

torch.set_num_threads(1)


def speech_like(seconds: float = 1.0, sample_rate: int = 16000, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A voiced, vibrato-modulated harmonic tone with syllable-rate amplitude envelope and a little noise: [T]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    freq = f0 * (1 + 0.05 * np.sin(2 * math.pi * 4 * t))
    phase = 2 * math.pi * np.cumsum(freq) / sample_rate
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = 0.5 * (1 - np.cos(2 * math.pi * 3 * t)) + 0.05
    return (0.2 * x * env + 0.003 * rng.standard_normal(t.shape)).astype(np.float32)


def tiny_config(family: str = "spectral", vocoder: bool = True, phase: str = "direct") -> ModelConfig:
    mel = MelConfig(sample_rate=16000, stft=STFTConfig(n_fft=512, hop_length=160, win_length=400), n_mels=40)
    return ModelConfig(
        family=family,
        mel=mel,
        spectral=SpectralNetConfig(
            channels=32, hidden_mult=2, strides=(2,), encoder_depths=(1, 1), decoder_depths=(1, 1), latent_dim=16
        ),
        waveform=WaveformNetConfig(sample_rate=16000, channels=4, strides=(2, 4, 5, 8), latent_dim=16),
        rvq=RVQConfig(vq=VQConfig(dim=16, codebook_size=64, kmeans_init=False), num_codebooks=4),
        vocoder=ISTFTVocoderConfig(channels=32, depth=2, n_fft=640, phase=phase) if vocoder else None,
    )


def make_model_dir(
    path: Path, family: str = "spectral", name: str = "tiny", seed: int = 0, phase: str = "direct"
) -> Path:
    torch.manual_seed(seed)
    config = tiny_config(family, vocoder=family == "spectral", phase=phase)
    codec = build_codec(config).eval()
    vocoder = build_vocoder(config)
    return save_model(path, name, config, codec, vocoder, card={"training_data": "none (test model)"})


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny spectral codec with a learned vocoder, saved as a model directory."""
    return make_model_dir(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same name and config as ``tiny_model_dir`` but another seed: other weights, other checksum."""
    return make_model_dir(tmp_path_factory.mktemp("other") / "tiny", seed=1)


@pytest.fixture(scope="session")
def tiny_waveform_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("models") / "tiny-wave", family="waveform", name="tiny-wave")


@pytest.fixture
def speech_wav(tmp_path: Path) -> Path:
    import soundfile as sf

    path = tmp_path / "speech.wav"
    sf.write(path, speech_like(1.5), 16000)
    return path
