"""Tests of vqaudio/reference_codecs.py on a short espeak-ng clip (skipped where the tools are absent)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import soxr

from vqaudio import evaluation as ev
from vqaudio import reference_codecs as rc

RATE = 16000


def _have(*tools: str) -> bool:
    return all(shutil.which(tool) is not None for tool in tools)


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """``[T]`` 2 s of synthetic speech at 16 kHz from espeak-ng."""
    if not _have("espeak-ng"):
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    wav = tmp_path_factory.mktemp("espeak") / "clip.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(wav), "The birch canoe slid on the smooth planks."],
        check=True,
        capture_output=True,
    )
    data, rate = sf.read(str(wav), dtype="float64", always_2d=True)
    x = np.asarray(soxr.resample(data.mean(axis=1), rate, RATE))
    x = x[: 2 * RATE]
    return np.pad(x, (0, 2 * RATE - x.size))


@pytest.mark.parametrize("name", list(rc.REFERENCE_CODECS))
def test_codec_returns_same_length_finite_audio(spoken: np.ndarray, name: str) -> None:
    codec = rc.REFERENCE_CODECS[name]()
    if not _have(*codec.tools):
        pytest.skip(f"{name} needs {', '.join(codec.tools)}")
    decoded = codec(spoken, RATE)
    assert decoded.shape == spoken.shape
    assert np.all(np.isfinite(decoded))
    assert np.max(np.abs(decoded)) > 0.01
    assert codec.name == name
    assert codec.bitrate_kbps > 0


@pytest.mark.parametrize("name", ["codec2-3200", "opus-8"])
def test_codec_keeps_speech_intelligible(spoken: np.ndarray, name: str) -> None:
    codec = rc.REFERENCE_CODECS[name]()
    if not _have(*codec.tools):
        pytest.skip(f"{name} needs {', '.join(codec.tools)}")
    # Codec2 delays its output by about 20 ms; alignment takes that out before STOI compares frames.
    aligned = ev.align_delay(spoken, codec(spoken, RATE), max_delay=800, envelope_window=80)
    assert ev.stoi(aligned.reference, aligned.estimate, RATE) > 0.5


def test_codec_keeps_the_caller_sample_rate(spoken: np.ndarray) -> None:
    codec = rc.REFERENCE_CODECS["opus-8"]()
    if not _have(*codec.tools):
        pytest.skip("opus-tools is not installed")
    x = np.asarray(soxr.resample(spoken, RATE, 22050))
    assert codec(x, 22050).shape == x.shape


def test_missing_tool_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    codec = rc.REFERENCE_CODECS["codec2-3200"]()
    with pytest.raises(rc.MissingToolError, match="apt-get install codec2"):
        codec.check()
    with pytest.raises(rc.MissingToolError, match="apt-get install opus-tools"):
        rc.REFERENCE_CODECS["opus-6"]()(np.zeros(RATE), RATE)
