"""The shipped default model: loads offline from the package, checksum-verified, and produces intelligible speech."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

import vqaudio
from vqaudio.evaluation import stoi

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hello.wav"


@pytest.fixture(scope="module")
def tok() -> vqaudio.Tokenizer:
    return vqaudio.load()  # the default model, with no network access needed


def test_default_model_is_speech_16k_at_1_5_kbps(tok: vqaudio.Tokenizer) -> None:
    assert "speech-16k" in vqaudio.shipped_models()
    assert tok.name == "speech-16k" and tok.sample_rate == 16000 and tok.frame_rate == 50
    assert tok.default_codebooks == 3 and tok.bitrate() == 1500
    assert tok.bitrate(1) == 500 and tok.bitrate(tok.num_codebooks) == 3000
    assert set(tok.vocoders) == {"learned", "griffin-lim"}
    assert tok.checksum == vqaudio.load_model(vqaudio.shipped_models()["speech-16k"]).checksum


@pytest.mark.parametrize(("vocoder", "min_stoi"), [("griffin-lim", 0.7), ("learned", 0.7)])
def test_example_clip_stays_intelligible(tok: vqaudio.Tokenizer, vocoder: str, min_stoi: float) -> None:
    """STOI of the resynthesized example against the original (measured 0.79 with Griffin-Lim at 1.5 kbps)."""
    ref, rate = sf.read(EXAMPLE, dtype="float32")
    out = tok.resynth(EXAMPLE, vocoder=vocoder).samples[0].numpy()
    assert rate == 16000 and out.shape == ref.shape
    assert stoi(ref, out, 16000) > min_stoi


CARD_FIELDS = ("description", "training_data", "training_time", "results", "license")


@pytest.mark.parametrize("name", sorted(vqaudio.shipped_models()))
def test_every_shipped_model_is_complete(name: str) -> None:
    """Weights verified against their checksum, a model card with what the project promises, sane defaults."""
    path = vqaudio.shipped_models()[name]
    loaded = vqaudio.load_model(path)  # verifies the sha256 recorded in config.json
    assert loaded.codec is not None and loaded.name == name
    assert all(loaded.card.get(field) for field in CARD_FIELDS), f"{name}: card lacks a field"
    assert (path / "README.md").read_text().startswith(f"# {name}")
    assert (path / "model.safetensors").stat().st_size < 25 * 2**20  # a git-friendly size
    tok = vqaudio.Tokenizer(loaded)
    assert 1 <= tok.default_codebooks <= tok.num_codebooks
    assert tok.default_vocoder in tok.vocoders
