"""The Python API (``vqaudio.tokenizer``): shapes and metadata of encode/decode, chunked == whole-file,
batched == one at a time, bad inputs, and token files going through save/load/decode.

Every model here is a randomly initialised tiny model saved by ``conftest.make_model_dir``: the properties
under test (framing, chunking, padding, file round trips) do not depend on training.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import make_model_dir, speech_like

import vqaudio.inputs as inputs_module
import vqaudio.precision as precision_module
from vqaudio.audio import AudioStream
from vqaudio.errors import AudioError, ModelError, TokenFileError, VQAudioError
from vqaudio.models.io import load_model, save_model
from vqaudio.tokenfile import FORMATS, TokenFile, load_codes, save_codes
from vqaudio.tokenizer import Encoded, Tokenizer, load

SR = 16000
HOP = 320  # both tiny families: 160-sample STFT hop x stride 2, and waveform strides 2*4*5*8
BIG_WINDOW = 1000.0  # seconds: one window covers every input here, i.e. a whole-file pass

# Chunked Griffin-Lim may differ from a whole-file pass, because its phase estimate is global. With the
# context the tokenizer adds around each window, the differences measured on the tiny model (unclamped
# output, peak amplitude 2-3.3) were: 0.5 s and 0.1 s windows, max |diff| <= 5e-6 and spectral convergence
# <= 5e-7; one-frame windows (the extreme), max |diff| <= 1.3e-4 and spectral convergence <= 4e-6.
# The bounds below keep a wide margin over those; docs/cli.md quotes them.
GL_MAX_ABS_DIFF = 1e-3
GL_SPECTRAL_CONVERGENCE = 1e-4


@pytest.fixture(scope="module")
def spectral(tiny_model_dir: Path) -> Tokenizer:
    return load(tiny_model_dir)


@pytest.fixture(scope="module")
def waveform(tiny_waveform_dir: Path) -> Tokenizer:
    return load(tiny_waveform_dir)


@pytest.fixture(scope="module", params=["spectral", "waveform"])
def family_dir(request: pytest.FixtureRequest) -> Path:
    """The model directory of each family, for tests that build their own Tokenizer (window size)."""
    name = "tiny_model_dir" if request.param == "spectral" else "tiny_waveform_dir"
    return Path(request.getfixturevalue(name))


def _spectral_convergence(reference: torch.Tensor, other: torch.Tensor) -> float:
    """``|| |S(ref)| - |S(other)| ||_F / || |S(ref)| ||_F`` for ``[T]`` signals."""
    window = torch.hann_window(512)
    a = torch.stft(reference, 512, 128, window=window, return_complex=True).abs()
    b = torch.stft(other, 512, 128, window=window, return_complex=True).abs()
    return float((a - b).norm() / a.norm())


def _assert_one_line(exc: pytest.ExceptionInfo[VQAudioError]) -> None:
    message = str(exc.value)
    assert message and "\n" not in message


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the tokenizer read files in ~0.05 s blocks; returns a list that collects each block's size."""
    sizes: list[int] = []
    real_open = inputs_module.open_audio_stream
    real_iter = AudioStream.__iter__

    def counting_iter(self: AudioStream) -> Iterator[torch.Tensor]:
        for block in real_iter(self):
            sizes.append(block.numel())
            yield block

    monkeypatch.setattr(inputs_module, "open_audio_stream", functools.partial(real_open, block_seconds=0.05))
    monkeypatch.setattr(AudioStream, "__iter__", counting_iter)
    return sizes


# --- encode: inputs, rates, channels, metadata ------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_encode_path_array_tensor(spectral: Tokenizer, tmp_path: Path, rate: int, channels: int) -> None:
    x = np.stack([speech_like(0.437, rate, f0=120 + 40 * c, seed=c) for c in range(channels)])  # [C, T]
    path = tmp_path / "in.wav"
    sf.write(path, x.T, rate, subtype="FLOAT")
    length_16k = round(x.shape[1] * SR / rate)
    frames = math.ceil(length_16k / HOP)
    inputs: list[tuple[object, int | None]] = [
        (path, None),
        (str(path), None),
        (x if channels > 1 else x[0], rate),
        (torch.from_numpy(x if channels > 1 else x[0]), rate),
    ]
    results = [spectral.encode(audio, sample_rate) for audio, sample_rate in inputs]  # type: ignore[arg-type]
    for enc in results:
        assert isinstance(enc, Encoded)
        assert enc.codes.shape == (4, frames)
        assert enc.codes.dtype == torch.int64
        assert int(enc.codes.min()) >= 0 and int(enc.codes.max()) < spectral.codebook_size
        assert (enc.num_codebooks, enc.num_frames) == (4, frames)
        assert enc.sample_rate == SR and enc.frame_rate == 50.0
        assert enc.original_length == length_16k
        assert enc.original_sample_rate == rate
        assert enc.original_channels == channels
        assert enc.model_id == "tiny" and enc.model_checksum == spectral.checksum
        assert enc.codebook_size == 64
        assert enc.bitrate == 50.0 * 4 * 6
    # A float wav holds exactly the array, and the streamed read resamples like the one-shot resampler.
    for enc in results[1:]:
        assert torch.equal(enc.codes, results[0].codes)


def test_encode_header_matches_fields(spectral: Tokenizer) -> None:
    enc = spectral.encode(speech_like(0.3, 44100), 44100, n_codebooks=3)
    h = enc.header()
    assert (h.model_id, h.model_checksum, h.sample_rate, h.frame_rate) == ("tiny", spectral.checksum, SR, 50.0)
    assert (h.codebook_size, h.num_codebooks, h.num_frames) == (64, 3, enc.num_frames)
    assert (h.original_length, h.original_sample_rate, h.original_channels) == (round(0.3 * SR), 44100, 1)


@pytest.mark.parametrize("n_samples", [1, 319, 320, 321, 641])
def test_frame_count_at_boundaries(spectral: Tokenizer, waveform: Tokenizer, n_samples: int) -> None:
    x = np.full(n_samples, 0.1, dtype=np.float32)
    for tok in (spectral, waveform):
        enc = tok.encode(x, SR)
        assert enc.num_frames == max(1, math.ceil(n_samples / HOP))
        assert tok.decode(enc).samples.shape == (1, n_samples)


def test_fewer_codebooks_are_a_prefix(spectral: Tokenizer, waveform: Tokenizer) -> None:
    """Residual quantisation: encoding with k codebooks gives the first k rows of the full codes."""
    x = speech_like(0.6)
    for tok in (spectral, waveform):
        full = tok.encode(x, SR).codes
        for k in range(1, 5):
            assert torch.equal(tok.encode(x, SR, n_codebooks=k).codes, full[:k])


# --- decode -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vocoder", ["learned", "griffin-lim", None])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_decode_shape_spectral(spectral: Tokenizer, k: int, vocoder: str | None) -> None:
    enc = spectral.encode(speech_like(0.5, 44100), 44100, n_codebooks=k)
    out = spectral.decode(enc, vocoder=vocoder)
    assert out.sample_rate == SR
    assert out.samples.shape == (1, enc.original_length)
    assert out.samples.dtype == torch.float32
    assert bool(torch.isfinite(out.samples).all()) and float(out.samples.abs().max()) <= 1.0


@pytest.mark.parametrize("k", [1, 4])
def test_decode_shape_waveform(waveform: Tokenizer, k: int) -> None:
    enc = waveform.encode(speech_like(0.5, 8000), 8000, n_codebooks=k)
    out = waveform.decode(enc)
    assert out.sample_rate == SR and out.samples.shape == (1, enc.original_length)


def test_decode_accepts_raw_codes(spectral: Tokenizer) -> None:
    enc = spectral.encode(speech_like(0.5), SR)
    raw = spectral.decode(enc.codes.numpy())
    # Raw codes carry no original length: the output covers every frame.
    assert raw.samples.shape == (1, enc.num_frames * HOP)
    assert torch.equal(raw.samples[:, : enc.original_length], spectral.decode(enc).samples)
    assert spectral.decode(enc.codes, length=100).samples.shape == (1, 100)


def test_vocoders_differ(spectral: Tokenizer) -> None:
    assert spectral.vocoders == ("learned", "griffin-lim", "hybrid")
    assert spectral.default_vocoder == "learned"
    enc = spectral.encode(speech_like(0.5), SR)
    learned = spectral.decode(enc, vocoder="learned").samples
    assert torch.equal(spectral.decode(enc).samples, learned)
    griffin_lim = spectral.decode(enc, vocoder="griffin-lim").samples
    hybrid = spectral.decode(enc, vocoder="hybrid").samples
    assert hybrid.shape == learned.shape and torch.isfinite(hybrid).all()
    assert not torch.allclose(griffin_lim, learned) and not torch.allclose(hybrid, griffin_lim)


def test_unknown_vocoder(spectral: Tokenizer) -> None:
    enc = spectral.encode(speech_like(0.2), SR)
    with pytest.raises(VQAudioError, match="not available") as exc:
        spectral.decode(enc, vocoder="wavenet")
    _assert_one_line(exc)


@pytest.mark.parametrize("vocoder", ["learned", "griffin-lim"])
def test_waveform_model_refuses_vocoder(waveform: Tokenizer, vocoder: str) -> None:
    assert waveform.vocoders == () and waveform.default_vocoder is None
    enc = waveform.encode(speech_like(0.2), SR)
    with pytest.raises(VQAudioError, match="does not apply") as exc:
        waveform.decode(enc, vocoder=vocoder)
    _assert_one_line(exc)


@pytest.mark.parametrize(
    ("codes", "match"),
    [
        (torch.zeros(4, dtype=torch.long), r"\[K, F\]"),
        (torch.zeros(1, 4, 3, dtype=torch.long), r"\[K, F\]"),
        (torch.full((4, 3), 64), r"\[0, 64\)"),
        (-torch.ones(4, 3, dtype=torch.long), r"\[0, 64\)"),
        (torch.zeros(5, 3, dtype=torch.long), "between 1 and 4"),
    ],
)
def test_decode_bad_codes(spectral: Tokenizer, codes: torch.Tensor, match: str) -> None:
    with pytest.raises(VQAudioError, match=match) as exc:
        spectral.decode(codes)
    _assert_one_line(exc)


def test_decode_zero_frames(spectral: Tokenizer) -> None:
    try:
        out = spectral.decode(torch.zeros(4, 0, dtype=torch.long))
    except VQAudioError:
        return
    assert out.samples.shape == (1, 0)


# --- chunked == whole file --------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [4.0, 4.0 + 17 / SR])
@pytest.mark.parametrize("beam", [1, 4])
def test_chunked_codes_equal_whole(family_dir: Path, seconds: float, beam: int) -> None:
    """0.5 s windows (8+ windows, each with its context) give exactly the whole-file codes, with any search."""
    whole = Tokenizer(load_model(family_dir), window_seconds=BIG_WINDOW, beam=beam)
    chunked = Tokenizer(load_model(family_dir), window_seconds=0.5, beam=beam)
    x = speech_like(seconds)
    assert math.ceil(x.size / HOP) >= 8 * chunked.window_frames  # several windows
    a, b = whole.encode(x, SR), chunked.encode(x, SR)
    assert torch.equal(a.codes, b.codes)
    assert a.original_length == b.original_length == x.size
    # A single-frame window is the extreme case: every window is all context.
    tiny = Tokenizer(load_model(family_dir), window_seconds=0.02, beam=beam)
    assert tiny.window_frames == 1
    assert torch.equal(tiny.encode(x[:16000], SR).codes, whole.encode(x[:16000], SR).codes)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_chunked_codes_equal_whole_from_file(
    family_dir: Path, tmp_path: Path, small_blocks: list[int], rate: int
) -> None:
    """A file read in small blocks and encoded in small windows gives the codes of one whole array."""
    x = speech_like(3.3, rate)
    path = tmp_path / "long.wav"
    sf.write(path, x, rate, subtype="FLOAT")
    whole = Tokenizer(load_model(family_dir), window_seconds=BIG_WINDOW)
    chunked = Tokenizer(load_model(family_dir), window_seconds=0.5)
    streamed = chunked.encode(path)
    assert len(small_blocks) > 20  # the file really was read block by block
    reference = whole.encode(x, rate)
    assert torch.equal(streamed.codes, reference.codes)
    assert streamed.original_length == reference.original_length == round(x.size * SR / rate)
    # The whole-window tokenizer reading the same blocks agrees too.
    assert torch.equal(whole.encode(path).codes, reference.codes)


def test_chunked_decode_equals_whole(family_dir: Path) -> None:
    """Learned vocoder (spectral) or the decoder itself (waveform): chunked decode == whole within 1e-4."""
    whole = Tokenizer(load_model(family_dir), window_seconds=BIG_WINDOW)
    enc = whole.encode(speech_like(3.0), SR)
    reference = whole.decode(enc).samples
    for window in (0.5, 0.1):
        chunked = Tokenizer(load_model(family_dir), window_seconds=window)
        out = chunked.decode(enc).samples
        assert out.shape == reference.shape
        assert float((out - reference).abs().max()) <= 1e-4
        blocks = list(chunked.iter_decode(enc.codes))
        assert len(blocks) == math.ceil(enc.num_frames / chunked.window_frames)
        assert all(b.shape == (chunked.window_frames * HOP,) for b in blocks[:-1])


def test_chunked_decode_continues_an_integrated_phase(tmp_path: Path) -> None:
    """A vocoder whose phase is summed over time depends on every earlier frame: each window starts from the
    running phase the previous one reports, so chunked decoding still equals one pass."""
    model_dir = make_model_dir(tmp_path / "tiny", phase="integrated")
    whole = Tokenizer(load_model(model_dir), window_seconds=BIG_WINDOW)
    enc = whole.encode(speech_like(3.0), SR)
    reference = torch.cat(list(whole.iter_decode(enc.codes, "learned")))
    for window in (0.5, 0.1):
        chunked = Tokenizer(load_model(model_dir), window_seconds=window)
        out = torch.cat(list(chunked.iter_decode(enc.codes, "learned")))
        assert out.shape == reference.shape
        assert float((out - reference).abs().max()) <= 1e-4
    # The hybrid back end starts Griffin-Lim from that vocoder's output, so it must carry the phase too; left
    # to restart in each window, its warm start differed from the whole pass by more than the signal's peak.
    reference = torch.cat(list(whole.iter_decode(enc.codes, "hybrid")))
    for window in (0.5, 0.1):
        chunked = Tokenizer(load_model(model_dir), window_seconds=window)
        out = torch.cat(list(chunked.iter_decode(enc.codes, "hybrid")))
        assert out.shape == reference.shape
        assert float((out - reference).abs().max()) <= 1e-2 * float(reference.abs().max())


def test_chunked_griffin_lim_within_bound(tiny_model_dir: Path) -> None:
    """Griffin-Lim is the approximate exception; see GL_MAX_ABS_DIFF for the measured numbers."""
    whole = Tokenizer(load_model(tiny_model_dir), window_seconds=BIG_WINDOW)
    codes = whole.encode(speech_like(2.0, f0=220, seed=3), SR).codes
    # iter_decode is not clamped to [-1, 1], so a clamp cannot hide differences.
    reference = torch.cat(list(whole.iter_decode(codes, "griffin-lim")))
    for window in (0.5, 0.1):
        chunked = Tokenizer(load_model(tiny_model_dir), window_seconds=window)
        out = torch.cat(list(chunked.iter_decode(codes, "griffin-lim")))
        assert out.shape == reference.shape
        assert float((out - reference).abs().max()) <= GL_MAX_ABS_DIFF
        assert _spectral_convergence(reference, out) <= GL_SPECTRAL_CONVERGENCE


# --- batched == one at a time -----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [16000, 44100])
@pytest.mark.parametrize("beam", [1, 4])
def test_batch_equals_single(family_dir: Path, rate: int, beam: int) -> None:
    tok = Tokenizer(load_model(family_dir), beam=beam)
    xs = [torch.from_numpy(speech_like(s, rate, f0=100 + 30 * i, seed=i)) for i, s in enumerate((0.37, 1.21, 0.8))]
    xs[2] = torch.stack([xs[2], 0.5 * xs[2]])  # a stereo item among mono ones
    for k, seconds in ((None, None), (2, None), (None, 1.7)):
        batch = tok.encode_batch(xs, rate, n_codebooks=k, batch_seconds=seconds)  # 1.7: items 0 and 2, then 1
        assert len(batch) == 3
        for x, got in zip(xs, batch, strict=True):
            alone = tok.encode(x, rate, n_codebooks=k)
            assert torch.equal(got.codes, alone.codes)
            assert got.original_length == alone.original_length
            assert got.original_channels == alone.original_channels
            assert got.original_sample_rate == rate


def test_batch_longer_than_window_falls_back(family_dir: Path) -> None:
    whole = Tokenizer(load_model(family_dir), window_seconds=BIG_WINDOW)
    chunked = Tokenizer(load_model(family_dir), window_seconds=0.5)
    xs = [speech_like(s, seed=i) for i, s in enumerate((0.3, 1.7, 1.1))]
    for x, got in zip(xs, chunked.encode_batch(xs, SR), strict=True):  # type: ignore[arg-type]
        assert torch.equal(got.codes, whole.encode(x, SR).codes)


@pytest.mark.parametrize("window_seconds", [BIG_WINDOW, 0.5])
def test_batch_of_paths_encodes_whole_files(
    family_dir: Path, tmp_path: Path, small_blocks: list[int], window_seconds: float
) -> None:
    """Files read in many blocks keep every block: a path in a batch gives the codes of the whole file, for
    files shorter and longer than the encode window, mixed with arrays."""
    tok = Tokenizer(load_model(family_dir), window_seconds=window_seconds)
    items: list[Path | np.ndarray] = []
    for i, seconds in enumerate((0.3, 1.7, 1.1)):
        path = tmp_path / f"item{i}.wav"
        sf.write(path, speech_like(seconds, 22050, seed=i), 22050)
        items.append(path)
    items.insert(1, speech_like(0.6, 22050, seed=9))
    batch = tok.encode_batch(items, 22050)
    assert len(small_blocks) > 10  # the files really were read in many blocks
    for item, got in zip(items, batch, strict=True):
        alone = tok.encode(item, 22050 if isinstance(item, np.ndarray) else None)
        assert got.original_length == alone.original_length
        assert got.codes.shape == alone.codes.shape
        assert torch.equal(got.codes, alone.codes)


def test_batch_empty_list(spectral: Tokenizer) -> None:
    with contextlib.suppress(VQAudioError):
        assert spectral.encode_batch([], SR) == []


# --- bad inputs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("audio", "match"),
    [
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.zeros((2, 0), dtype=np.float32), "empty"),
        (np.full(800, np.nan, dtype=np.float32), "NaN"),
        (np.concatenate([np.zeros(500), [np.inf]]).astype(np.float32), "NaN/Inf"),
        (np.zeros((1, 1, 800), dtype=np.float32), r"\[T\] or \[C, T\]"),
        (torch.zeros(1, 1, 800), r"\[T\] or \[C, T\]"),
    ],
)
def test_bad_arrays(spectral: Tokenizer, audio: np.ndarray | torch.Tensor, match: str) -> None:
    with pytest.raises(VQAudioError, match=match) as exc:
        spectral.encode(audio, SR)
    _assert_one_line(exc)
    # encode_batch prepares every item the same way.
    with pytest.raises(VQAudioError, match=match):
        spectral.encode_batch([torch.as_tensor(audio)], SR)


def test_nan_is_audio_error(spectral: Tokenizer) -> None:
    with pytest.raises(AudioError):
        spectral.encode(np.full(800, np.nan, dtype=np.float32), SR)


def test_array_needs_sample_rate(spectral: Tokenizer) -> None:
    with pytest.raises(VQAudioError, match="sample_rate is required") as exc:
        spectral.encode(speech_like(0.1))
    _assert_one_line(exc)


@pytest.mark.parametrize("rate", [0, -16000])
def test_bad_sample_rate(spectral: Tokenizer, rate: int) -> None:
    with pytest.raises(VQAudioError):
        spectral.encode(speech_like(0.1), rate)


@pytest.mark.parametrize("k", [0, 5])
def test_bad_n_codebooks(spectral: Tokenizer, k: int) -> None:
    with pytest.raises(VQAudioError, match="between 1 and 4") as exc:
        spectral.encode(speech_like(0.1), SR, n_codebooks=k)
    _assert_one_line(exc)


@pytest.mark.parametrize("kind", ["missing", "not_audio", "empty", "directory", "nan"])
def test_bad_files(spectral: Tokenizer, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "bad.wav"
    if kind == "not_audio":
        path.write_text("this is not a wav file\n" * 20)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    elif kind == "nan":
        x = speech_like(0.5)
        x[4000] = np.nan
        sf.write(path, x, SR, subtype="FLOAT")
    with pytest.raises(AudioError) as exc:
        spectral.encode(path)
    _assert_one_line(exc)
    assert str(path) in str(exc.value)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(VQAudioError, match="no such model") as exc:
        load(tmp_path / "nowhere")
    _assert_one_line(exc)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VQAudioError, match="not a vqaudio model directory"):
        load(tmp_path / "empty")


# --- token files ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("k", [4, 2])
def test_token_file_round_trip(spectral: Tokenizer, tmp_path: Path, fmt: str, k: int) -> None:
    enc = spectral.encode(speech_like(0.9, 22050), 22050, n_codebooks=k)
    path = tmp_path / f"codes.{fmt}"
    save_codes(path, enc.codes.numpy(), enc.header(), fmt=fmt)
    tf = load_codes(path)
    assert isinstance(tf, TokenFile)
    assert tf.header == enc.header()
    np.testing.assert_array_equal(tf.codes, enc.codes.numpy())
    for vocoder in ("learned", "griffin-lim"):
        assert torch.equal(spectral.decode(tf, vocoder=vocoder).samples, spectral.decode(enc, vocoder=vocoder).samples)


def test_token_file_round_trip_waveform(waveform: Tokenizer, tmp_path: Path) -> None:
    enc = waveform.encode(speech_like(0.9), SR)
    path = tmp_path / "codes.vqt"
    save_codes(path, enc.codes.numpy(), enc.header(), fmt="vqt")
    assert torch.equal(waveform.decode(load_codes(path)).samples, waveform.decode(enc).samples)


def test_tokens_from_another_model_refused(spectral: Tokenizer, other_model_dir: Path, tmp_path: Path) -> None:
    other = load(other_model_dir)
    assert other.name == spectral.name and other.checksum != spectral.checksum
    enc = other.encode(speech_like(0.5), SR)
    path = tmp_path / "other.vqt"
    save_codes(path, enc.codes.numpy(), enc.header(), fmt="vqt")
    with pytest.raises(TokenFileError, match="checksum") as exc:
        spectral.decode(load_codes(path))
    _assert_one_line(exc)
    with pytest.raises(TokenFileError, match="checksum"):
        spectral.decode(enc)


def _save_variant(src: Path, dst: Path, change: str) -> Path:
    """``src`` saved again with one part of the codec perturbed (``"decoder"``, ``"encoder"``) or the vocoder."""
    loaded = load_model(src)
    assert loaded.codec is not None and loaded.vocoder is not None
    module = loaded.vocoder if change == "vocoder" else getattr(loaded.codec, change)
    with torch.no_grad():
        next(iter(module.parameters())).add_(0.01)
    return save_model(dst, loaded.name, loaded.config, loaded.codec, loaded.vocoder, card=loaded.card)


@pytest.mark.parametrize("change", ["decoder", "vocoder"])
def test_tokens_survive_a_new_decoder_or_vocoder(
    spectral: Tokenizer, tiny_model_dir: Path, tmp_path: Path, change: str
) -> None:
    """Token files name the checksum of what decides the codes, so a release that retrains only the decoder
    or the vocoder (the codes unchanged) decodes files written with the one before it."""
    newer = load(_save_variant(tiny_model_dir, tmp_path / "tiny", change))
    assert newer.checksum != spectral.checksum and newer.codes_checksum == spectral.codes_checksum
    audio = speech_like(0.5)
    enc = spectral.encode(audio, SR)
    assert torch.equal(newer.encode(audio, SR).codes, enc.codes)
    path = tmp_path / "old.vqt"
    save_codes(path, enc.codes.numpy(), enc.header(), fmt="vqt")
    assert load_codes(path).header.codes_checksum == spectral.codes_checksum
    assert newer.decode(load_codes(path)).samples.shape == spectral.decode(enc).samples.shape
    # A file from before codes checksums still needs the very same weights.
    legacy = tmp_path / "legacy.vqt"
    save_codes(legacy, enc.codes.numpy(), replace(enc.header(), codes_checksum=""), fmt="vqt")
    spectral.decode(load_codes(legacy))
    with pytest.raises(TokenFileError, match="checksum"):
        newer.decode(load_codes(legacy))
    # ... unless the newer release's card lists the older weights as making the same codes.
    listed = load_model(tmp_path / "tiny")
    card = replace(listed.card, compatible_checksums=("", spectral.checksum))
    assert listed.codec is not None
    save_model(tmp_path / "listed", listed.name, listed.config, listed.codec, listed.vocoder, card=card)
    accepting = load(tmp_path / "listed")
    assert accepting.compatible_checksums == (spectral.checksum,)
    assert accepting.decode(load_codes(legacy)).samples.shape == spectral.decode(enc).samples.shape
    other = replace(enc.header(), codes_checksum="", model_checksum="f" * 64)
    with pytest.raises(TokenFileError, match="weights differ"):
        accepting.check_compatible(other)


def test_tokens_refused_after_a_new_encoder(spectral: Tokenizer, tiny_model_dir: Path, tmp_path: Path) -> None:
    newer = load(_save_variant(tiny_model_dir, tmp_path / "tiny", "encoder"))
    assert newer.codes_checksum != spectral.codes_checksum
    path = tmp_path / "old.vqt"
    enc = spectral.encode(speech_like(0.5), SR)
    save_codes(path, enc.codes.numpy(), enc.header(), fmt="vqt")
    with pytest.raises(TokenFileError, match="encoder or codebooks differ") as exc:
        newer.decode(load_codes(path))
    _assert_one_line(exc)


def test_vocoder_module_matches_what_decode_uses(spectral: Tokenizer, waveform: Tokenizer) -> None:
    """``Tokenizer.vocoder`` hands out the back end decode runs (to score it alone); a waveform model has none."""
    assert spectral.vocoder().name == spectral.default_vocoder
    assert spectral.vocoder("griffin-lim").name == "griffin-lim"
    with pytest.raises(VQAudioError, match="not available") as exc:
        spectral.vocoder("hifigan")
    _assert_one_line(exc)
    with pytest.raises(VQAudioError, match="decodes audio directly") as exc:
        waveform.vocoder()
    _assert_one_line(exc)


def test_vocode_runs_a_back_end_on_a_mel(spectral: Tokenizer, tiny_model_dir: Path) -> None:
    """``vocode`` is mel -> audio through a named back end, in the arithmetic decode gives it, checked input."""
    from vqaudio.spectral import log_mel

    audio = torch.from_numpy(speech_like(0.5))[None]
    voc = spectral.vocoder("learned")
    mel = log_mel(audio, voc.mel_config)  # [1, n_mels, F]
    # In the decode arithmetic: bfloat16 on a CPU that has it natively (AVX-512 BF16 or AMX), else float32.
    low = spectral.vocoder_dtype("learned") == torch.bfloat16
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=low):
        direct = voc(mel).float()
    assert torch.allclose(spectral.vocode(mel, "learned"), direct, atol=1e-6)
    exact = load(tiny_model_dir, decode_precision="float32") if low else spectral
    with torch.inference_mode():
        assert torch.allclose(exact.vocode(mel, "learned"), voc(mel), atol=1e-6)
    assert spectral.vocode(mel[0]).shape == direct[0].shape  # unbatched in, unbatched out
    assert spectral.vocoder_dtype("griffin-lim") == torch.float32  # never bfloat16, whatever the CPU
    for bad, match in ((mel[:, :-1], "expected log-mel"), (mel[..., :0], "expected log-mel"), (mel * np.nan, "NaN")):
        with pytest.raises(VQAudioError, match=match) as exc:
            spectral.vocode(bad)
        _assert_one_line(exc)


def test_tokens_from_another_family_refused(spectral: Tokenizer, waveform: Tokenizer) -> None:
    enc = waveform.encode(speech_like(0.5), SR)
    with pytest.raises(TokenFileError, match="tiny-wave") as exc:
        spectral.decode(enc)
    _assert_one_line(exc)


def test_decode_to_file_streams_the_same_audio(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Writing window by window gives the samples decode() returns (up to 16-bit rounding), trimmed alike."""
    tok = Tokenizer(load_model(tiny_model_dir), window_seconds=0.5)
    enc = tok.encode(speech_like(2.3), 16000)
    seconds = tok.decode_to_file(enc, tmp_path / "out.wav", vocoder="learned")
    written, rate = sf.read(tmp_path / "out.wav", dtype="float32")
    expected = tok.decode(enc, vocoder="learned").samples[0].numpy()
    assert rate == 16000 and seconds == pytest.approx(enc.original_length / 16000)
    assert written.shape == expected.shape == (enc.original_length,)
    assert np.abs(written - expected).max() <= 1.0 / 32768 + 1e-6
    with pytest.raises(AudioError, match="--force"):
        tok.decode_to_file(enc, tmp_path / "out.wav")


def test_decode_to_file_returns_the_seconds_it_wrote(spectral: Tokenizer, tmp_path: Path) -> None:
    """Codes that claim more audio than they make (an Encoded is not checked like a token file's header) write
    what the codes make, and the seconds returned are those of the samples in the file."""
    enc = spectral.encode(speech_like(0.5), SR)
    made = enc.num_frames * HOP
    for length in (enc.original_length, made + HOP, None):
        codes = enc.codes if length is None else replace(enc, original_length=length)
        path = tmp_path / f"{length}.wav"
        seconds = spectral.decode_to_file(codes, path)
        frames = sf.info(path).frames
        assert frames == min(made, length or made) and seconds == frames / SR, length


def test_model_card_chooses_the_default_vocoder(tmp_path: Path) -> None:
    import json

    d = make_model_dir(tmp_path / "m")
    assert load(d).default_vocoder == "learned"
    meta = json.loads((d / "config.json").read_text())
    meta["card"]["default_vocoder"] = "griffin-lim"
    (d / "config.json").write_text(json.dumps(meta))
    assert load(d).default_vocoder == "griffin-lim"


def test_model_card_sets_the_default_beam(tmp_path: Path) -> None:
    import json

    d = make_model_dir(tmp_path / "m")
    x = speech_like(1.0)
    greedy = load(d)
    assert greedy.default_beam == greedy.beam == 1
    meta = json.loads((d / "config.json").read_text())
    meta["card"]["default_beam"] = 8
    (d / "config.json").write_text(json.dumps(meta))
    tok = load(d)
    assert tok.default_beam == tok.beam == 8
    codes = tok.encode(x, SR).codes
    with torch.inference_mode():
        direct = tok.model.encode(torch.from_numpy(x)[None, None], n_codebooks=tok.default_codebooks, beam=8)[0]
    assert torch.equal(codes, direct)
    assert not torch.equal(codes, greedy.encode(x, SR).codes)  # the search found other codes somewhere
    assert torch.equal(load(d, beam=1).encode(x, SR).codes, greedy.encode(x, SR).codes)
    for bad in (0, -2, "8", True, 2.5):  # the card is validated on load: a bad default is an error, not ignored
        meta["card"]["default_beam"] = bad
        (d / "config.json").write_text(json.dumps(meta))
        with pytest.raises(ModelError, match="default_beam"):
            load(d)


@pytest.mark.parametrize("beam", [0, -1, True, 2.0])
def test_bad_beam_is_refused(tiny_model_dir: Path, beam: object) -> None:
    with pytest.raises(VQAudioError, match="--beam") as exc:
        load(tiny_model_dir, beam=beam)  # type: ignore[arg-type]
    _assert_one_line(exc)


def test_model_card_sets_the_default_bitrate(tmp_path: Path) -> None:
    import json

    d = make_model_dir(tmp_path / "m")
    meta = json.loads((d / "config.json").read_text())
    meta["card"]["default_codebooks"] = 2
    (d / "config.json").write_text(json.dumps(meta))
    tok = load(d)
    enc = tok.encode(speech_like(0.5), 16000)
    assert tok.default_codebooks == 2 and enc.num_codebooks == 2
    assert tok.bitrate() == tok.bitrate(2) < tok.bitrate(tok.num_codebooks)
    assert tok.encode(speech_like(0.5), 16000, n_codebooks=4).num_codebooks == 4


# --- arithmetic precision ---------------------------------------------------------------------------------


def test_resolve_precision() -> None:
    assert precision_module.resolve_precision("float32") == torch.float32
    assert precision_module.resolve_precision("bfloat16") == torch.bfloat16
    native = precision_module.native_bfloat16()
    assert precision_module.resolve_precision("auto") == (torch.bfloat16 if native else torch.float32)
    with pytest.raises(VQAudioError, match="precision must be one of") as exc:
        precision_module.resolve_precision("fp8")
    _assert_one_line(exc)


def test_default_precisions(tiny_model_dir: Path) -> None:
    tok = load(tiny_model_dir)
    assert tok.encode_dtype == torch.float32
    assert tok.decode_dtype == precision_module.resolve_precision("auto")


def test_bfloat16_decode_is_close_to_float32(family_dir: Path) -> None:
    full = load(family_dir, decode_precision="float32")
    fast = load(family_dir, decode_precision="bfloat16")
    x = speech_like(0.6, SR)
    enc = full.encode(x, SR)
    vocoders = full.vocoders or (None,)
    for vocoder in vocoders:
        a = full.decode(enc, vocoder=vocoder).samples
        b = fast.decode(enc, vocoder=vocoder).samples
        assert a.shape == b.shape and b.dtype == torch.float32
        assert not torch.equal(a, b)  # the bfloat16 path really ran
        # Magnitudes, not waveforms: Griffin-Lim may settle on another phase from a slightly different mel, and
        # its iterations amplify the difference (measured here: 0.008 learned, 0.057 Griffin-Lim).
        bound = 0.15 if vocoder == "griffin-lim" else 0.05
        assert _spectral_convergence(a[0], b[0]) < bound


def test_bfloat16_encode_codes_are_valid(family_dir: Path) -> None:
    full = load(family_dir)
    fast = load(family_dir, encode_precision="bfloat16")
    x = speech_like(0.6, SR)
    a, b = full.encode(x, SR).codes, fast.encode(x, SR).codes
    assert a.shape == b.shape and b.dtype == a.dtype
    assert int(b.min()) >= 0 and int(b.max()) < fast.codebook_size
    # A batch takes the same arithmetic as one file: its codes equal the single bfloat16 codes.
    assert torch.equal(fast.encode_batch([x, x[: SR // 2]], SR)[0].codes, b)


def test_quantizer_searches_in_float32_under_autocast(spectral: Tokenizer) -> None:
    """Autocast would run the distance products in bfloat16 and pick other codes; the quantizer opts out."""
    rvq = spectral.model.quantizer
    z = torch.randn(2, rvq.dim, 200, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = rvq.encode(z)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = rvq.encode(z)
            decoded = rvq.decode(got)
    assert torch.equal(got, expected)
    assert decoded.dtype == torch.float32


def test_iter_encode_streams_the_codes_of_a_whole_pass(family_dir: Path) -> None:
    """Blocks of any size in, codes out window by window, before the stream ends; together they are encode's."""
    tok = Tokenizer(load_model(family_dir), window_seconds=0.3)
    x = torch.from_numpy(speech_like(1.9, seed=3))
    sizes = [1, 500, 3333, 160, 7000, 12000, x.numel()]
    blocks, start = [], 0
    for size in sizes:
        blocks.append(x[start : start + size])
        start += size
    fed: list[int] = []

    def feed() -> Iterator[torch.Tensor]:
        for b in blocks:
            fed.append(b.numel())
            yield b

    pieces = []
    for piece in tok.iter_encode(feed(), n_codebooks=2):
        pieces.append((piece, sum(fed)))
    assert torch.equal(torch.cat([p for p, _ in pieces], dim=1), tok.encode(x, SR, n_codebooks=2).codes)
    assert pieces[0][1] < x.numel()  # the first codes came out before the audio had all arrived
    assert tok.encode_lookahead > 0
    assert tok.decode_lookahead() >= tok.encode_lookahead  # a back end adds its context to the codec's


def test_stream_decoder_takes_codes_as_they_arrive(family_dir: Path) -> None:
    """Codes pushed in blocks of any size give, window by window, the audio of iter_decode; the first audio comes
    out before the last codes are in."""
    tok = Tokenizer(load_model(family_dir), window_seconds=0.2)
    codes = tok.encode(speech_like(1.9, seed=5), SR).codes
    reference = torch.cat(list(tok.iter_decode(codes)))
    decoder = tok.stream_decoder()
    pieces, pushed = [], 0
    for size in (1, 7, 2, 13, 30, codes.shape[1]):
        block = codes[:, pushed : pushed + size]
        pushed += block.shape[1]
        if block.shape[1]:
            pieces += [(audio, pushed) for audio in decoder.push(block)]
    pieces += [(audio, pushed) for audio in decoder.finish()]
    assert torch.equal(torch.cat([a for a, _ in pieces]), reference)
    assert pieces[0][1] < codes.shape[1]
    assert decoder.lookahead_frames * tok.model.hop_length == tok.decode_lookahead()


def test_stream_decoder_continues_an_integrated_phase(tmp_path: Path) -> None:
    """A window left pending by one push is decoded by the next, with the running phase carried across."""
    tok = Tokenizer(load_model(make_model_dir(tmp_path / "tiny", phase="integrated")), window_seconds=0.1)
    codes = tok.encode(speech_like(1.2), SR).codes
    reference = torch.cat(list(tok.iter_decode(codes, "hybrid")))
    decoder = tok.stream_decoder("hybrid")
    for start in range(0, codes.shape[1], 4):
        decoder.push(codes[:, start : start + 4])  # iterators left unconsumed: nothing is lost
    assert torch.equal(torch.cat(list(decoder.finish())), reference)


def test_stream_decoder_refuses_misuse(spectral: Tokenizer) -> None:
    codes = spectral.encode(speech_like(0.5), SR).codes
    decoder = spectral.stream_decoder()
    with pytest.raises(VQAudioError, match="no code frames") as exc:
        decoder.finish()
    _assert_one_line(exc)
    list(decoder.push(codes))
    with pytest.raises(VQAudioError, match="codebooks"):
        decoder.push(codes[:1])
    with pytest.raises(VQAudioError, match=r"lie in \[0"):
        spectral.stream_decoder().push(codes + spectral.codebook_size)
    list(decoder.finish())
    with pytest.raises(VQAudioError, match="finished"):
        decoder.push(codes)


def test_streaming_generators_leave_inference_mode_between_items(tiny_model_dir: Path) -> None:
    """A caller that interleaves a streaming generator with its own autograd code gets autograd back between
    items: each item is computed in inference mode, which is off again when it is yielded."""
    tok = Tokenizer(load_model(tiny_model_dir), window_seconds=0.1)
    x = torch.from_numpy(speech_like(1.0))
    codes = tok.encode(x, SR).codes
    seen: list[bool] = []

    def blocks() -> Iterator[torch.Tensor]:
        seen.append(torch.is_inference_mode_enabled())  # the caller's block source runs in its own mode
        yield x

    generators = {
        "iter_encode": tok.iter_encode(blocks()),
        "iter_decode": tok.iter_decode(codes),
        "push": tok.stream_decoder().push(codes),
    }
    for name, generator in generators.items():
        next(generator)
        assert not torch.is_inference_mode_enabled(), name
        weight = torch.ones(3, requires_grad=True)
        assert (weight * 2).requires_grad, name
        generator.close()
    assert seen == [False]


def test_stream_decoder_takes_numpy_codes(spectral: Tokenizer) -> None:
    """Codes as a numpy integer array (what a token file's ``codes`` is) decode like the same codes as a tensor;
    a float array is refused in one line, not with an AttributeError."""
    codes = spectral.encode(speech_like(0.5), SR).codes
    reference = torch.cat(list(spectral.iter_decode(codes)))
    for dtype in (np.int16, np.int32, np.int64, np.uint16):
        decoder = spectral.stream_decoder()
        audio = list(decoder.push(codes.numpy().astype(dtype))) + list(decoder.finish())
        assert torch.equal(torch.cat(audio), reference), dtype
    with pytest.raises(VQAudioError, match="integers") as exc:
        spectral.stream_decoder().push(codes.numpy().astype(np.float32))
    _assert_one_line(exc)
