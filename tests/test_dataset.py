"""Training crops: determinism, level, and speed perturbation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vqaudio.data.dataset import CropDataset
from vqaudio.data.manifest import ManifestEntry
from vqaudio.errors import ConfigError
from vqaudio.training.config import DataConfig, load_config

SR = 16000


def _tone(path: Path, freq: float, seconds: float) -> ManifestEntry:
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)
    return ManifestEntry(path=path, duration=seconds, speaker="s", sample_rate=SR)


def _peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.shape[0])))
    return float(np.argmax(spectrum)) * SR / x.shape[0]


def test_a_fixed_speed_moves_a_tone_by_that_factor(tmp_path: Path) -> None:
    entry = _tone(tmp_path / "a.wav", 1000.0, 3.0)
    segment = 8000
    for factor in (0.9, 1.15):
        crop, n = CropDataset([entry], SR, segment, speed=(factor, factor))[5]
        assert crop.shape == (segment,) and n == segment
        # One FFT bin is 2 Hz here; the tone must land on 1000 * factor, not stay at 1000.
        assert abs(_peak_hz(crop.numpy()) - 1000.0 * factor) <= 4.0


def test_speed_range_is_deterministic_per_index_and_varies(tmp_path: Path) -> None:
    entry = _tone(tmp_path / "a.wav", 500.0, 3.0)
    data = CropDataset([entry], SR, 8000, seed=3, speed=(0.8, 1.2))
    again = CropDataset([entry], SR, 8000, seed=3, speed=(0.8, 1.2))
    for i in range(4):
        assert np.array_equal(data[i][0].numpy(), again[i][0].numpy())
    peaks = {round(_peak_hz(data[i][0].numpy())) for i in range(12)}
    assert len(peaks) > 3 and all(400 - 4 <= p <= 600 + 4 for p in peaks)


def test_no_speed_range_gives_the_unperturbed_crops(tmp_path: Path) -> None:
    # Runs without the option must replay the crops they always drew: the generator's draws are, in order,
    # the file, the crop's start and its gain, with no speed draw between them.
    t = np.arange(2 * SR)
    path = tmp_path / "ramp.wav"
    sf.write(path, (0.5 * np.sin(2 * np.pi * 300.0 * t / SR) * (t + 1) / t.size).astype(np.float32), SR)
    audio = sf.read(path, dtype="float32")[0]
    entries = [ManifestEntry(path=path, duration=2.0, speaker="s", sample_rate=SR)] * 2
    data = CropDataset(entries, SR, 4000, seed=1, speed=(1.0, 1.0))
    for i in range(3):
        rng = np.random.default_rng([1, 0, i])
        rng.choice(2, p=[0.5, 0.5])
        start = int(rng.integers(0, audio.size - 4000 + 1))
        expected = audio[start : start + 4000]
        expected = expected * float(rng.uniform(0.3, 0.99)) / np.abs(expected).max()
        np.testing.assert_allclose(data[i][0].numpy(), expected, rtol=1e-6, atol=1e-7)


def test_a_speed_range_passes_through_the_training_config(tmp_path: Path) -> None:
    config = tmp_path / "train.toml"
    config.write_text('[data]\ntrain = ["x.tsv"]\n')
    assert load_config(config, {"data.speed": [0.8, 1.2]}).data.speed == (0.8, 1.2)
    assert load_config(config).data.speed == (1.0, 1.0)


def test_a_short_file_sped_up_is_shorter_and_zero_padded(tmp_path: Path) -> None:
    entry = _tone(tmp_path / "short.wav", 700.0, 0.25)  # 4000 samples
    crop, n = CropDataset([entry], SR, 8000, speed=(1.25, 1.25))[0]
    assert abs(n - 3200) <= 2
    assert np.all(crop[n:].numpy() == 0) and np.abs(crop[: n - 10].numpy()).max() > 0.2


def test_bad_speed_ranges_are_refused(tmp_path: Path) -> None:
    entry = _tone(tmp_path / "a.wav", 300.0, 1.0)
    with pytest.raises(ValueError, match="speed"):
        CropDataset([entry], SR, 4000, speed=(1.2, 1.1))
    for bad in ((0.1, 1.1), (1.2, 1.0), (1.0, 3.0), (0.9,), 1.1, "fast", (0.9, "a"), (True, 1.0)):
        with pytest.raises(ConfigError, match="data.speed"):
            DataConfig(speed=bad)  # type: ignore[arg-type]
