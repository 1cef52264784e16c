"""Tests for vqaudio.audio: round trips through libsndfile, resampling, and every bad-input path."""

from __future__ import annotations

import ast
import os
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vqaudio import audio as audio_mod
from vqaudio.audio import AudioData, check_samples, load_audio, open_audio_stream, resample, save_audio, to_mono
from vqaudio.errors import AudioError, VQAudioError, VQAudioWarning

# One LSB of each integer subtype, as a read tolerance (plus a little slack for rounding).
_LSB = {"PCM_U8": 2**-7, "PCM_S8": 2**-7, "PCM_16": 2**-15, "PCM_24": 2**-23, "PCM_32": 2**-31}


def _noise(num_channels: int, num_samples: int, seed: int = 0) -> np.ndarray:
    """Deterministic noise, float32 ``[T, C]`` (soundfile layout), inside [-0.9, 0.9]."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.9, 0.9, size=(num_samples, num_channels)).astype(np.float32)


def _sine(freq: float, sample_rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    """A sine as float32 ``[T]``."""
    t = np.arange(int(round(sample_rate * seconds))) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(signal: np.ndarray, sample_rate: int) -> float:
    """Frequency of the largest magnitude bin of a ``[T]`` signal."""
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.shape[-1])))
    return float(np.fft.rfftfreq(signal.shape[-1], 1 / sample_rate)[np.argmax(spectrum)])


def _assert_names_file(exc: pytest.ExceptionInfo[AudioError], path: Path) -> None:
    message = str(exc.value)
    assert str(path) in message
    assert "\n" not in message


# --- round trips -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "subtype", "sample_rate", "channels"),
    [
        (".wav", "PCM_U8", 8000, 1),
        (".wav", "PCM_16", 16000, 2),
        (".wav", "PCM_24", 22050, 1),
        (".wav", "PCM_32", 44100, 2),
        (".wav", "FLOAT", 48000, 6),
        (".wav", "DOUBLE", 11025, 3),
        (".flac", "PCM_S8", 32000, 1),
        (".flac", "PCM_16", 44100, 2),
        (".flac", "PCM_24", 96000, 4),
    ],
)
def test_load_round_trip(tmp_path: Path, suffix: str, subtype: str, sample_rate: int, channels: int) -> None:
    frames = _noise(channels, 2000)
    path = tmp_path / f"x{suffix}"
    sf.write(path, frames, sample_rate, subtype=subtype)

    data = load_audio(path)

    assert isinstance(data, AudioData)
    assert data.samples.dtype == torch.float32
    assert data.samples.shape == (channels, 2000)
    assert data.samples.is_contiguous()
    assert data.sample_rate == sample_rate
    assert data.num_channels == channels
    assert data.num_samples == 2000
    assert data.duration == pytest.approx(2000 / sample_rate)
    tolerance = _LSB.get(subtype, 1e-7) * 1.01
    np.testing.assert_allclose(data.samples.numpy(), frames.T, atol=tolerance, rtol=0)


def test_load_accepts_str_path(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    sf.write(path, _noise(1, 100), 8000)
    assert load_audio(str(path)).num_samples == 100


def test_ogg_round_trip(tmp_path: Path) -> None:
    # Vorbis is lossy: check the length and that the waveform is still the same sine.
    sine = _sine(440.0, 16000, 0.5)
    path = tmp_path / "x.ogg"
    sf.write(path, np.stack([sine, sine], axis=1), 16000)

    data = load_audio(path)

    assert data.samples.shape == (2, sine.shape[0])
    assert data.sample_rate == 16000
    decoded = data.samples[0].numpy()
    assert np.corrcoef(decoded, sine)[0, 1] > 0.99
    assert _peak_hz(decoded, 16000) == pytest.approx(440.0, abs=4.0)


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile < 1.1 cannot read mp3")
def test_mp3_reads(tmp_path: Path) -> None:
    # libsndfile >= 1.1 (here: soundfile.__libsndfile_version__) decodes mp3 through mpg123.
    path = tmp_path / "x.mp3"
    sf.write(path, _sine(1000.0, 16000, 0.5), 16000)

    data = load_audio(path)

    assert data.num_channels == 1
    assert data.sample_rate == 16000
    assert abs(data.num_samples - 8000) <= 1152  # at most one mp3 frame of encoder padding
    assert _peak_hz(data.samples[0].numpy(), 16000) == pytest.approx(1000.0, abs=10.0)


def test_float_wav_keeps_values_beyond_one(tmp_path: Path) -> None:
    path = tmp_path / "loud.wav"
    sf.write(path, np.array([[1.5], [-2.0], [0.25]], dtype=np.float32), 8000, subtype="FLOAT")
    assert load_audio(path).samples[0].tolist() == [1.5, -2.0, 0.25]


# --- mono and resampling -----------------------------------------------------------------------------


def test_mono_downmix_averages_channels(tmp_path: Path) -> None:
    frames = _noise(2, 500)
    path = tmp_path / "stereo.wav"
    sf.write(path, frames, 8000, subtype="FLOAT")

    data = load_audio(path, mono=True)

    assert data.samples.shape == (1, 500)
    np.testing.assert_allclose(data.samples[0].numpy(), frames.mean(axis=1), atol=1e-7)


def test_mono_on_mono_file_is_unchanged(tmp_path: Path) -> None:
    frames = _noise(1, 300)
    path = tmp_path / "mono.wav"
    sf.write(path, frames, 8000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path, mono=True).samples.numpy(), frames.T)


def test_to_mono() -> None:
    samples = torch.tensor([[1.0, 0.0, -1.0], [0.0, 0.0, 1.0], [0.5, 0.3, 0.0]])
    out = to_mono(samples)
    assert out.shape == (1, 3)
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.1, 0.0]]))
    with pytest.raises(ValueError):
        to_mono(torch.zeros(5))


def test_load_resamples_to_requested_rate(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    sf.write(path, _noise(2, 44100), 44100)

    data = load_audio(path, sample_rate=16000, mono=True)

    assert data.sample_rate == 16000
    assert data.samples.shape[0] == 1
    assert abs(data.num_samples - 16000) <= 1
    assert data.samples.dtype == torch.float32


def test_load_same_rate_does_not_resample(tmp_path: Path) -> None:
    frames = _noise(1, 400)
    path = tmp_path / "x.wav"
    sf.write(path, frames, 16000, subtype="FLOAT")
    data = load_audio(path, sample_rate=16000)
    np.testing.assert_array_equal(data.samples.numpy(), frames.T)


@pytest.mark.parametrize(("orig_sr", "target_sr"), [(44100, 16000), (16000, 48000), (48000, 22050)])
def test_resample_length_and_frequency(orig_sr: int, target_sr: int) -> None:
    sine = torch.from_numpy(_sine(1000.0, orig_sr, 1.0))
    samples = torch.stack([sine, -sine])

    out = resample(samples, orig_sr, target_sr)

    assert out.dtype == torch.float32
    assert out.shape[0] == 2
    assert abs(out.shape[1] - target_sr) <= 1
    assert _peak_hz(out[0].numpy(), target_sr) == pytest.approx(1000.0, abs=2.0)
    # Channels are resampled independently and identically.
    torch.testing.assert_close(out[1], -out[0])


def test_resample_equal_rates_is_a_no_op() -> None:
    samples = torch.randn(2, 100, dtype=torch.float64)
    out = resample(samples, 16000, 16000)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, samples.float())


def test_resample_accepts_non_contiguous_and_grad_inputs() -> None:
    samples = torch.randn(300, 2).T.requires_grad_(True)
    out = resample(samples, 24000, 16000)
    assert out.shape == (2, 200)
    assert not out.requires_grad


@pytest.mark.parametrize(("shape", "orig_sr", "target_sr"), [((100,), 8000, 16000), ((1, 100), 0, 16000)])
def test_resample_rejects_bad_arguments(shape: tuple[int, ...], orig_sr: int, target_sr: int) -> None:
    with pytest.raises(ValueError):
        resample(torch.zeros(shape), orig_sr, target_sr)


def test_load_rejects_non_positive_sample_rate(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    sf.write(path, _noise(1, 100), 8000)
    for bad in (0, -16000):
        with pytest.raises(ValueError):
            load_audio(path, sample_rate=bad)


def test_load_too_short_to_resample(tmp_path: Path) -> None:
    path = tmp_path / "one.wav"
    sf.write(path, np.zeros((1, 1), np.float32), 44100)
    with pytest.raises(AudioError, match="too short") as exc:
        load_audio(path, sample_rate=16000)
    _assert_names_file(exc, path)


# --- bad input -------------------------------------------------------------------------------------


def _wav_bytes(tmp_path: Path, num_samples: int = 1000) -> bytes:
    src = tmp_path / "src.wav"
    sf.write(src, _noise(2, num_samples), 8000, subtype="PCM_16")
    return src.read_bytes()


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match="no such file") as exc:
        load_audio(path)
    _assert_names_file(exc, path)


def test_directory(tmp_path: Path) -> None:
    path = tmp_path / "dir.wav"
    path.mkdir()
    with pytest.raises(AudioError, match="directory") as exc:
        load_audio(path)
    _assert_names_file(exc, path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(AudioError, match="empty") as exc:
        load_audio(path)
    _assert_names_file(exc, path)


def test_valid_header_zero_frames(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros((0, 1), np.float32), 8000)
    assert path.stat().st_size > 0
    with pytest.raises(AudioError, match="no audio frames") as exc:
        load_audio(path)
    _assert_names_file(exc, path)


def test_text_renamed_to_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    with pytest.raises(AudioError, match="not a recognised audio file") as exc:
        load_audio(path)
    _assert_names_file(exc, path)


@pytest.mark.parametrize("cut", [4, 12, 20, 30])
def test_wav_truncated_in_header(tmp_path: Path, cut: int) -> None:
    path = tmp_path / f"cut{cut}.wav"
    path.write_bytes(_wav_bytes(tmp_path)[:cut])
    with pytest.raises(AudioError) as exc:
        load_audio(path)
    _assert_names_file(exc, path)


def test_wav_truncated_right_after_header(tmp_path: Path) -> None:
    # The 44-byte header is intact but promises data that is not there: libsndfile reads zero frames.
    path = tmp_path / "cut44.wav"
    path.write_bytes(_wav_bytes(tmp_path)[:44])
    with pytest.raises(AudioError, match="no audio frames") as exc:
        load_audio(path)
    _assert_names_file(exc, path)


def test_wav_truncated_in_data_reads_what_is_there(tmp_path: Path) -> None:
    # Decision: libsndfile reads a data-truncated wav up to the cut, so we accept it (a partial
    # download is still usable audio), with a warning that gives the length its header declares and the
    # length there is. 2 channels x 16 bit = 4 bytes per frame; an odd cut drops the partial frame.
    full = _wav_bytes(tmp_path, num_samples=1000)
    path = tmp_path / "half.wav"
    path.write_bytes(full[: 44 + 4 * 400 + 3])

    with pytest.warns(VQAudioWarning, match=r"half\.wav is truncated: its header declares 1000 samples .* only 400"):
        data = load_audio(path)
    with pytest.warns(VQAudioWarning, match="truncated"):
        stream = open_audio_stream(path)
    assert stream.declared_frames == 1000 and stream.original_frames == 400
    with warnings.catch_warnings():
        warnings.simplefilter("error", VQAudioWarning)  # what the CLI's --strict does
        with pytest.raises(VQAudioWarning, match="truncated"):
            open_audio_stream(path)
        load_audio(tmp_path / "src.wav")  # a whole file says nothing

    assert data.samples.shape == (2, 400)
    np.testing.assert_array_equal(data.samples.numpy(), load_audio(tmp_path / "src.wav").samples[:, :400].numpy())


def test_flac_truncated(tmp_path: Path) -> None:
    src = tmp_path / "src.flac"
    sf.write(src, _noise(2, 4000), 8000)
    path = tmp_path / "half.flac"
    path.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(AudioError, match="corrupt or truncated") as exc:
        load_audio(path)
    _assert_names_file(exc, path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path: Path, bad: float) -> None:
    frames = np.zeros((100, 2), np.float32)
    frames[37, 1] = bad
    path = tmp_path / "bad.wav"
    sf.write(path, frames, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN/Inf") as exc:
        load_audio(path)
    _assert_names_file(exc, path)
    assert "channel 1, sample 37" in str(exc.value)


def test_unsupported_format_suffix(tmp_path: Path) -> None:
    # Bytes of an MP4 'ftyp' box: a real m4a that libsndfile has no decoder for.
    path = tmp_path / "song.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom" + bytes(64))
    with pytest.raises(AudioError, match="unsupported audio format '.m4a'") as exc:
        load_audio(path)
    _assert_names_file(exc, path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.wav"
    sf.write(path, _noise(1, 100), 8000)
    path.chmod(0)
    try:
        with pytest.raises(AudioError) as exc:
            load_audio(path)
        _assert_names_file(exc, path)
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_audio_error_is_a_vqaudio_error() -> None:
    assert issubclass(AudioError, VQAudioError)


def test_check_samples() -> None:
    check_samples(torch.zeros(2, 10), "ok.wav")
    with pytest.raises(AudioError, match=r"^x\.wav: .*zero length"):
        check_samples(torch.zeros(2, 0), "x.wav")
    with pytest.raises(AudioError, match=r"^y\.wav: contains 2 NaN/Inf"):
        check_samples(torch.tensor([[0.0, float("nan"), float("inf")]]), "y.wav")
    # Finite samples whose float32 sum overflows are still accepted; a lone -Inf among them is still caught.
    check_samples(torch.full((1, 8), 3e38), "loud.wav")
    with pytest.raises(AudioError, match=r"contains 1 NaN/Inf sample\(s\), the first at channel 0, sample 3"):
        check_samples(torch.tensor([[3e38, 3e38, 1.0, -float("inf")]]), "z.wav")


def test_no_raw_soundfile_error_escapes(tmp_path: Path) -> None:
    # Random bytes under every suffix libsndfile might try: always AudioError, never LibsndfileError.
    rng = np.random.default_rng(1)
    for suffix in (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".bin"):
        path = tmp_path / f"junk{suffix}"
        path.write_bytes(rng.integers(0, 256, size=4096, dtype=np.uint8).tobytes())
        with pytest.raises(AudioError) as exc:
            load_audio(path)
        _assert_names_file(exc, path)


# --- save_audio -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".WAV"])
@pytest.mark.parametrize("channels", [1, 2])
def test_save_round_trip(tmp_path: Path, suffix: str, channels: int) -> None:
    samples = torch.from_numpy(_noise(channels, 1000).T.copy())
    path = tmp_path / f"out{suffix}"

    save_audio(path, samples, 22050)

    info = sf.info(path)
    assert info.subtype == "PCM_16"
    assert info.format == ("FLAC" if suffix == ".flac" else "WAV")
    data = load_audio(path)
    assert data.sample_rate == 22050
    assert data.samples.shape == (channels, 1000)
    torch.testing.assert_close(data.samples, samples, atol=2**-15 * 1.01, rtol=0)


def test_save_accepts_1d_numpy(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    save_audio(path, np.linspace(-0.5, 0.5, 50, dtype=np.float64), 8000)
    data = load_audio(path)
    assert data.samples.shape == (1, 50)
    np.testing.assert_allclose(data.samples[0].numpy(), np.linspace(-0.5, 0.5, 50), atol=2**-15)


def test_save_clips_before_encoding(tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    save_audio(path, torch.tensor([[1.7, -3.0, 0.5]]), 8000)
    values = load_audio(path).samples[0]
    # Without clipping, 16-bit wraparound would flip the sign of the loud samples.
    assert values[0] == pytest.approx(1.0, abs=2**-14)
    assert values[1] == pytest.approx(-1.0, abs=2**-14)
    assert values[2] == pytest.approx(0.5, abs=2**-15)


def test_save_unsupported_suffix(tmp_path: Path) -> None:
    for name in ("x.mp3", "x.ogg", "noext"):
        path = tmp_path / name
        with pytest.raises(AudioError, match="cannot write") as exc:
            save_audio(path, torch.zeros(1, 10), 8000)
        _assert_names_file(exc, path)
        assert not path.exists()


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "keep.wav"
    path.write_bytes(b"precious")
    with pytest.raises(AudioError, match="--force") as exc:
        save_audio(path, torch.zeros(1, 10), 8000)
    _assert_names_file(exc, path)
    assert path.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["keep.wav"]


def test_save_overwrites_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"old")
    save_audio(path, torch.full((1, 10), 0.25), 8000, overwrite=True)
    assert load_audio(path).num_samples == 10


def test_save_leaves_no_temp_files(tmp_path: Path) -> None:
    save_audio(tmp_path / "a.wav", torch.zeros(2, 100), 8000)
    save_audio(tmp_path / "a.wav", torch.zeros(2, 100), 8000, overwrite=True)
    save_audio(tmp_path / "b.flac", torch.zeros(1, 100), 8000)
    assert sorted(os.listdir(tmp_path)) == ["a.wav", "b.flac"]


def test_failed_write_keeps_existing_file_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"precious")

    def crash_mid_write(self: sf.SoundFile, data: object) -> None:
        # The header is on disk by now; fail as soundfile does when the disk fills up.
        raise sf.LibsndfileError(2, prefix="Error writing: ")

    monkeypatch.setattr(audio_mod.sf.SoundFile, "write", crash_mid_write)
    with pytest.raises(AudioError, match="cannot write audio") as exc:
        save_audio(path, torch.zeros(1, 10), 8000, overwrite=True)
    _assert_names_file(exc, path)
    assert path.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["x.wav"]


def test_save_creates_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "out" / "deeper" / "x.flac"
    save_audio(path, torch.zeros(1, 10), 8000)
    assert load_audio(path).num_samples == 10


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_saved_file_has_ordinary_permissions(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    save_audio(path, torch.zeros(1, 10), 8000)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_save_to_directory(tmp_path: Path) -> None:
    path = tmp_path / "dir.wav"
    path.mkdir()
    with pytest.raises(AudioError, match="directory"):
        save_audio(path, torch.zeros(1, 10), 8000, overwrite=True)


@pytest.mark.parametrize(
    "samples",
    [
        torch.zeros(()),
        torch.zeros(1, 2, 10),
        torch.zeros(0, 10),
        torch.zeros(48000, 2),
        torch.zeros(1, 10).int(),
    ],
)
def test_save_rejects_bad_shapes_and_dtypes(tmp_path: Path, samples: torch.Tensor) -> None:
    with pytest.raises(ValueError):
        save_audio(tmp_path / "x.wav", samples, 8000)
    assert os.listdir(tmp_path) == []


def test_save_rejects_bad_sample_rate(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        save_audio(tmp_path / "x.wav", torch.zeros(1, 10), 0)


@pytest.mark.parametrize("samples", [torch.zeros(1, 0), torch.tensor([[0.0, float("nan")]])])
def test_save_rejects_empty_or_non_finite(tmp_path: Path, samples: torch.Tensor) -> None:
    path = tmp_path / "x.wav"
    with pytest.raises(AudioError) as exc:
        save_audio(path, samples, 8000)
    _assert_names_file(exc, path)
    assert os.listdir(tmp_path) == []


def test_soxr_is_imported_lazily() -> None:
    # Cheaper than a subprocess: no top-level statement of the module may import soxr.
    tree = ast.parse(Path(audio_mod.__file__).read_text())
    for node in tree.body:
        if isinstance(node, ast.Import):
            assert all(alias.name != "soxr" for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.module != "soxr"


@pytest.mark.parametrize(("channels", "subtype", "width"), [(1, "PCM_16", 2), (6, "PCM_24", 3), (2, "FLOAT", 4)])
def test_declared_wav_frames_reads_the_riff_header(tmp_path: Path, channels: int, subtype: str, width: int) -> None:
    """libsndfile trims a cut WAV's frame count to what is there; the RIFF header still says what was meant."""
    import struct

    from vqaudio.audio_checks import declared_wav_frames

    path = tmp_path / "x.wav"
    sf.write(path, _noise(channels, 1000), 8000, subtype=subtype)  # 6 channels: WAVE_FORMAT_EXTENSIBLE
    data = path.read_bytes()
    assert declared_wav_frames(str(path)) == 1000
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) - 400 * channels * width])
    assert declared_wav_frames(str(cut)) == 1000 and sf.info(str(cut)).frames == 600
    # A streamed WAV says nothing about its length, and nothing else is a WAV.
    at = data.index(b"data") + 4
    for placeholder in (0, 0x7FFFF000, 0xFFFFFFFF):
        streamed = tmp_path / "streamed.wav"
        streamed.write_bytes(data[:at] + struct.pack("<I", placeholder) + data[at + 4 :])
        assert declared_wav_frames(str(streamed)) is None
    flac = tmp_path / "x.flac"
    sf.write(flac, _noise(1, 1000), 8000)
    assert declared_wav_frames(str(flac)) is None
    assert declared_wav_frames(str(tmp_path / "missing.wav")) is None
