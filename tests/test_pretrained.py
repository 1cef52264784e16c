"""The shipped default model: loads offline from the package, checksum-verified, and produces intelligible speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

import vqaudio
from vqaudio.evaluation import mel_distance, stoi

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hello.wav"
# music-24k's 24 kHz log-mel distance on the bright chord below: measured 0.63 (speech-16k: 0.69).
MUSIC_MAX_MEL_DISTANCE = 0.8


@pytest.fixture(scope="module")
def tok() -> vqaudio.Tokenizer:
    return vqaudio.load()  # the default model, with no network access needed


def test_default_model_is_speech_16k_at_1_5_kbps(tok: vqaudio.Tokenizer) -> None:
    assert "speech-16k" in vqaudio.shipped_models()
    assert tok.name == "speech-16k" and tok.sample_rate == 16000 and tok.frame_rate == 50
    assert tok.default_codebooks == 3 and tok.bitrate() == 1500
    assert tok.bitrate(1) == 500 and tok.bitrate(tok.num_codebooks) == 3000
    assert set(tok.vocoders) == {"learned", "griffin-lim", "hybrid"}
    # Named by the card (on training utterances it leads the learned vocoder in PESQ-WB, recipes/librispeech/
    # experiments/log.md, stage 4i), not left to the fallback, which would pick the learned vocoder.
    assert tok.loaded.card.default_vocoder == "hybrid" == tok.default_vocoder
    # Codes come from a beam search by default (docs/results.md scores it against greedy).
    assert tok.loaded.card.default_beam == 8 == tok.default_beam == tok.beam
    assert tok.checksum == vqaudio.load_model(vqaudio.shipped_models()["speech-16k"]).checksum


@pytest.mark.parametrize(("vocoder", "min_stoi"), [("hybrid", 0.7), ("griffin-lim", 0.7), ("learned", 0.7)])
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
    assert all(getattr(loaded.card, field) for field in CARD_FIELDS), f"{name}: card lacks a field"
    assert (path / "README.md").read_text().startswith(f"# {name}")
    assert (path / "model.safetensors").stat().st_size < 25 * 2**20  # a git-friendly size
    tok = vqaudio.Tokenizer(loaded)
    assert 1 <= tok.default_codebooks <= tok.num_codebooks
    assert tok.default_vocoder in tok.vocoders
    assert loaded.card.default_vocoder in (None, *tok.vocoders)
    assert (loaded.card.default_beam or 1) == tok.default_beam


def _bright_chord(seconds: float, rate: int) -> np.ndarray:
    """Three piano-like notes (A4, C#5, E5) with 30 decaying harmonics each: energy up to 20 kHz."""
    t = np.arange(int(seconds * rate)) / rate
    x = np.zeros_like(t)
    for f0 in (440.0, 554.37, 659.25):
        for h in range(1, 31):
            if h * f0 < rate / 2:
                x += np.sin(2 * np.pi * h * f0 * t) * np.exp(-t * (1.5 + 0.3 * h)) / h
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _share_above(x: np.ndarray, rate: int, hz: float) -> float:
    power = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2  # tapered: no leakage from the abrupt ends
    return float(power[np.fft.rfftfreq(x.size, 1 / rate) > hz].sum() / power.sum())


def test_music_model_keeps_what_the_speech_model_drops() -> None:
    """music-24k codes 24 kHz audio with its top octave: on a bright chord its output keeps the faint upper
    harmonics above 9 kHz. speech-16k stops at 8 kHz, so its plain output is further from the original in 24 kHz
    log-mel distance. (Its post-filter, which raises the chord's peaks below 8 kHz, brings it closer on this
    clip: recipes/librispeech/experiments/log.md.)"""
    x = _bright_chord(3.0, 24000)
    music = vqaudio.load("music-24k")
    assert music.sample_rate == 24000 and music.default_codebooks == 4 and music.bitrate() == 2000
    from_music = music.resynth(x, 24000).samples[0].numpy()[: x.size]
    top = _share_above(x, 24000, 9000.0)
    assert top > 1e-5 and _share_above(from_music, 24000, 9000.0) > top / 2
    from_speech = vqaudio.load("speech-16k", postfilter=False).resynth(x, 24000).samples[0].numpy()
    speech_24k = soxr.resample(from_speech, 16000, 24000)[: x.size]
    d_music = mel_distance(x, from_music, 24000)
    d_speech = mel_distance(x, np.pad(speech_24k, (0, x.size - speech_24k.size)), 24000)
    assert d_music < MUSIC_MAX_MEL_DISTANCE and d_music < d_speech


def test_units_model_converts_the_example_to_a_second_voice(tmp_path: Path) -> None:
    """units-16k ships offline: one codebook of units, and `vqaudio convert --voice` on the two example clips."""
    from typer.testing import CliRunner

    from vqaudio.cli import app

    units = vqaudio.load("units-16k")
    assert units.conditional and units.num_codebooks == 1 and units.bitrate() <= 500
    voice = EXAMPLE.parent / "voice2.wav"
    out = tmp_path / "converted.wav"
    result = CliRunner().invoke(app, ["convert", str(EXAMPLE), str(out), "--voice", str(voice), "-m", "units-16k"])
    assert result.exit_code == 0, result.output
    ref, rate = sf.read(EXAMPLE, dtype="float32")
    converted, _ = sf.read(out, dtype="float32")
    assert converted.shape == ref.shape and stoi(ref, converted, rate) > 0.5
    # The voice moves toward the reference: a different embedding gives different audio from the same units.
    own = units.resynth(EXAMPLE).samples[0].numpy()
    assert not np.allclose(own, converted, atol=1e-3)
