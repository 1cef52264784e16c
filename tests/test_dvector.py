"""The pretrained-speaker-network reference encoder: its front end, its frozen weights, and a units model using it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch
from conftest import speech_like, tiny_config

from vqaudio.errors import ConfigError
from vqaudio.models.builders import build_codec
from vqaudio.models.conditional import ConditionalVQVAE, DVectorReference, SpeakerConfig
from vqaudio.models.dvector import DVectorEncoder
from vqaudio.models.io import load_model, save_model
from vqaudio.tokenizer import load
from vqaudio.training.config import load_config

SR = 16000
DVECTOR_CONF = Path(__file__).resolve().parents[1] / "recipes" / "librispeech" / "conf" / "units16k_dvector.toml"


def test_front_end_is_resemblyzers_mel() -> None:
    """The mel frames equal librosa's melspectrogram with resemblyzer's settings (after its level rule)."""
    x = speech_like(1.3, SR).astype(np.float32)
    x = x / np.sqrt(np.mean(x**2)) * 10 ** (-30 / 20)  # already at -30 dBFS: the gain is 1
    ours = DVectorEncoder().mel(torch.from_numpy(x)).numpy()
    theirs = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=400, hop_length=160, n_mels=40).T
    assert ours.shape == theirs.shape
    assert np.allclose(ours, theirs, rtol=1e-3, atol=1e-9 + 1e-4 * theirs.max())


def test_embedding_is_unit_length_and_frozen() -> None:
    torch.manual_seed(0)
    enc = DVectorEncoder().train()
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())
    for seconds in (0.4, 1.6, 4.1):  # shorter than one window, one window, several
        e = enc(torch.from_numpy(speech_like(seconds, SR)))
        assert e.shape == (256,) and abs(float(e.norm()) - 1) < 1e-5
    # Louder is not another voice: the level is raised to -30 dBFS before analysis.
    x = torch.from_numpy(speech_like(2.0, SR)) * 0.01
    assert torch.allclose(enc(x), enc(x * 3), atol=1e-4)


def _dvector_units(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    speaker = SpeakerConfig(16, 1, 8, encoder="dvector")
    config = dataclasses.replace(tiny_config(vocoder=False), family="conditional", speaker=speaker)
    model = build_codec(config).eval()
    assert isinstance(model, ConditionalVQVAE) and isinstance(model.decoder.reference, DVectorReference)
    return save_model(tmp_path / "dv", "tiny-dv", config, model)


def test_units_model_with_dvector_reference_round_trips(tmp_path: Path) -> None:
    directory = _dvector_units(tmp_path)
    loaded = load_model(directory)
    assert loaded.codec is not None and isinstance(loaded.codec, ConditionalVQVAE)
    tok = load(directory)
    voice = tok.speaker_embedding(speech_like(2.0, SR, f0=200), SR)
    assert voice.shape == (8,)
    converted = tok.convert(speech_like(1.0, SR), speech_like(2.0, SR, f0=200), SR)
    plain = tok.resynth(speech_like(1.0, SR), SR)
    assert converted.samples.shape == plain.samples.shape and not torch.equal(converted.samples, plain.samples)
    # Batched references: each item alone, padding ignored.
    ref = loaded.codec.decoder.reference
    assert isinstance(ref, DVectorReference)
    a, b = torch.from_numpy(speech_like(1.0, SR)), torch.from_numpy(speech_like(2.0, SR, f0=180))
    batch = torch.zeros(2, 1, b.numel())
    batch[0, 0, : a.numel()], batch[1, 0] = a, b
    together = ref(batch, torch.tensor([a.numel(), b.numel()]))
    assert torch.allclose(together[0], ref(a[None, None])[0], atol=1e-5)


def test_dvector_needs_16k() -> None:
    config = dataclasses.replace(
        tiny_config(vocoder=False), family="conditional", speaker=SpeakerConfig(16, 1, 8, encoder="dvector")
    )
    config = dataclasses.replace(config, mel=dataclasses.replace(config.mel, sample_rate=24000))
    with pytest.raises(ConfigError, match="16000"):
        build_codec(config)
    with pytest.raises(ConfigError, match="learned"):
        SpeakerConfig(encoder="other")


def test_dvector_training_needs_init_from(tmp_path: Path) -> None:
    """Without init_from a d-vector units run would start from a random d-vector network, frozen: refused on load,
    naming the script that makes the model to start from."""
    with pytest.raises(ConfigError, match="init_from.*convert_dvector.py") as exc:
        load_config(DVECTOR_CONF)
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="convert_dvector.py"):
        load_config(DVECTOR_CONF, {"init_from": None})
    cfg = load_config(DVECTOR_CONF, {"init_from": str(tmp_path / "dvec-init")})
    assert cfg.model.speaker.encoder == "dvector" and cfg.init_from == str(tmp_path / "dvec-init")
    # The learned reference encoder trains from scratch as before.
    assert load_config(DVECTOR_CONF, {"model.speaker.encoder": "learned"}).init_from is None
