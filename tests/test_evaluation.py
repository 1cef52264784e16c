"""Tests of vqaudio.evaluation on synthetic, speech-like signals made in memory."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from vqaudio import evaluation as ev
from vqaudio.errors import AudioError, ConfigError, VQAudioError

RATE = 16000


def speech_like(seconds: float = 3.0, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """``[T]`` a voiced buzz: 20 harmonics of a 140 Hz pitch with 5 Hz vibrato, gated into 2 Hz 'syllables'.

    PESQ and STOI both look for speech-like activity (energy that comes and goes, harmonic structure);
    a steady tone would be rejected by PESQ's voice activity detection.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    f0 = 140.0 + 15.0 * np.sin(2 * np.pi * 5.0 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 21))
    envelope = np.sqrt(np.clip(np.sin(2 * np.pi * 2.0 * t), 0.0, None))
    return 0.1 * voiced * envelope


def add_noise(x: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    """Add white noise whose energy is ``snr_db`` below that of the zero-mean ``x``."""
    noise = np.random.default_rng(seed).standard_normal(x.size)
    noise -= noise.mean()
    signal_energy = float(np.sum((x - x.mean()) ** 2))
    noise *= math.sqrt(signal_energy / float(np.sum(noise**2)) / 10 ** (snr_db / 10))
    return x + noise


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return speech_like()


def test_si_sdr_of_identical_signals_is_very_high(speech: np.ndarray) -> None:
    assert ev.si_sdr(speech, speech) > 60.0


def test_si_sdr_ignores_scale(speech: np.ndarray) -> None:
    noisy = add_noise(speech, 10.0)
    assert ev.si_sdr(speech, 0.5 * speech) > 60.0
    assert ev.si_sdr(speech, 0.5 * noisy) == pytest.approx(ev.si_sdr(speech, noisy), abs=1e-9)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_si_sdr_matches_known_snr(speech: np.ndarray, snr_db: float) -> None:
    assert ev.si_sdr(speech, add_noise(speech, snr_db)) == pytest.approx(snr_db, abs=0.5)


@pytest.mark.parametrize("shift", [37, -37])
def test_align_delay_recovers_a_known_shift(speech: np.ndarray, shift: int) -> None:
    # shift > 0: the estimate lags (37 samples of silence in front); shift < 0: it starts 37 samples late.
    estimate = np.concatenate([np.zeros(shift), speech]) if shift > 0 else speech[-shift:]
    aligned = ev.align_delay(speech, estimate, max_delay=100)
    assert aligned.delay == shift
    assert aligned.method == "waveform"
    assert aligned.reference.shape == aligned.estimate.shape
    np.testing.assert_allclose(aligned.estimate, aligned.reference)


def test_align_delay_falls_back_to_envelopes_when_waveforms_differ() -> None:
    # Two independent noises under the same syllable gating: the waveforms do not correlate at any lag
    # (as after Griffin-Lim or a parametric coder), but the energy envelopes are the same.
    rng = np.random.default_rng(0)
    t = np.arange(3 * RATE) / RATE
    gate = np.sqrt(np.clip(np.sin(2 * np.pi * 2.0 * t), 0.0, None))
    reference = 0.1 * rng.standard_normal(t.size) * gate
    estimate = np.concatenate([np.zeros(200), 0.1 * rng.standard_normal(t.size) * gate])
    aligned = ev.align_delay(reference, estimate, max_delay=400)
    assert aligned.method == "envelope"
    assert abs(aligned.delay - 200) <= 5


def test_align_delay_refuses_bad_input(speech: np.ndarray) -> None:
    with pytest.raises(ConfigError):
        ev.align_delay(speech, speech, max_delay=-1)
    with pytest.raises(AudioError, match="1-D"):
        ev.align_delay(speech[None], speech, max_delay=10)
    with pytest.raises(AudioError, match="NaN"):
        ev.align_delay(speech, np.full(10, np.nan), max_delay=10)


def test_measures_refuse_unequal_lengths(speech: np.ndarray) -> None:
    with pytest.raises(AudioError, match="align"):
        ev.si_sdr(speech, speech[:-1])


def test_pesq_and_stoi_of_identical_speech_are_high(speech: np.ndarray) -> None:
    assert ev.pesq_wb(speech, speech, RATE) > 4.0
    assert ev.stoi(speech, speech, RATE) > 0.99


def test_pesq_and_stoi_drop_with_noise(speech: np.ndarray) -> None:
    noisy = add_noise(speech, 0.0)
    assert ev.pesq_wb(speech, noisy, RATE) < ev.pesq_wb(speech, speech, RATE) - 1.0
    assert ev.stoi(speech, noisy, RATE) < 0.95


def test_pesq_resamples_other_rates() -> None:
    x = speech_like(rate=22050)
    assert ev.pesq_wb(x, x, 22050) > 4.0


def test_pesq_of_silence_is_nan() -> None:
    silence = np.zeros(RATE)
    assert math.isnan(ev.pesq_wb(silence, silence, RATE))


def test_missing_optional_dependency_names_the_extra(speech: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import pesq` raise ImportError.
    monkeypatch.setitem(sys.modules, "pesq", None)
    with pytest.raises(VQAudioError, match=r"pip install vqaudio\[eval\]"):
        ev.pesq_wb(speech, speech, RATE)


def test_mel_distance_is_zero_for_identical_and_grows_with_noise(speech: np.ndarray) -> None:
    assert ev.mel_distance(speech, speech, RATE) == pytest.approx(0.0, abs=1e-9)
    mild = ev.mel_distance(speech, add_noise(speech, 20.0), RATE)
    strong = ev.mel_distance(speech, add_noise(speech, 0.0), RATE)
    assert 0.0 < mild < strong


def test_score_aligns_before_measuring(speech: np.ndarray) -> None:
    # 10 ms of codec delay must not count as distortion.
    noisy = add_noise(speech, 20.0)
    delayed = np.concatenate([np.zeros(160), noisy])
    scores = ev.score(speech, delayed, RATE)
    assert isinstance(scores, ev.QualityScores)
    assert scores.si_sdr == pytest.approx(20.0, abs=0.5)
    assert scores.stoi > 0.9
    assert scores.pesq_wb == pytest.approx(ev.pesq_wb(speech, noisy, RATE), abs=0.05)
    assert scores.mel_distance > 0.0
