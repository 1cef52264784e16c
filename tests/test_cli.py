"""The ``vqaudio`` command, driven through typer's ``CliRunner`` (and twice through the installed script).

Every failure a user can cause must exit with code 1 and print exactly one line, starting ``error:``, on
stderr, with no traceback; outputs are never overwritten without ``--force``. No model is shipped yet, so
every command that needs one gets ``--model <tiny model directory>``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import speech_like
from typer.main import get_command
from typer.testing import CliRunner, Result

from vqaudio import __version__
from vqaudio.cli import app
from vqaudio.tokenfile import FORMAT_VERSION, load_codes, write_tokens

SR = 16000
HOP = 320
COMMANDS = (
    "tokenize",
    "detokenize",
    "resynth",
    "info",
    "models",
    "train",
    "prepare",
    "export",
    "plot-log",
    "export-prior",
    "export-onnx",
    "compress",
    "decompress",
    "generate",
    "units",
    "convert",
    "compare",
)

runner = CliRunner()


def invoke(*args: object, input: str | None = None) -> Result:
    return runner.invoke(app, [str(a) for a in args], input=input)


def assert_ok(result: Result) -> None:
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
    assert "Traceback" not in result.output


def assert_error(result: Result, match: str | None = None) -> str:
    """Exit 1, one stderr line starting ``error:``, no uncaught exception; returns that line."""
    # A VQAudioError ends in typer.Exit(1) -> SystemExit; any other exception would be a bug (traceback).
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}\n{result.output}"
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    if match is not None:
        assert re.search(match, lines[0]), lines[0]
    return lines[0]


def write_wav(
    path: Path, seconds: float = 0.5, rate: int = SR, channels: int = 1, seed: int = 0, subtype: str = "PCM_16"
) -> Path:
    x = np.stack([speech_like(seconds, rate, f0=120 + 30 * c, seed=seed + c) for c in range(channels)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, rate, subtype=subtype)
    return path


def files_below(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> str:
    return str(tiny_model_dir)


@pytest.fixture(scope="module")
def wave_model(tiny_waveform_dir: Path) -> str:
    return str(tiny_waveform_dir)


@pytest.fixture(scope="module")
def other_model(other_model_dir: Path) -> str:
    return str(other_model_dir)


@pytest.fixture
def tokens(tmp_path: Path, speech_wav: Path, model: str) -> Path:
    """A .vqt of the 1.5 s ``speech_wav`` (75 frames x 4 codebooks)."""
    out = tmp_path / "tokens" / "speech.vqt"
    assert_ok(invoke("tokenize", speech_wav, "-o", out, "--model", model))
    return out


# --- tokenize -------------------------------------------------------------------------------------------------


def test_tokenize_beside_input(speech_wav: Path, model: str) -> None:
    result = invoke("tokenize", speech_wav, "--model", model)
    assert_ok(result)
    out = speech_wav.with_suffix(".vqt")
    tf = load_codes(out)
    assert tf.codes.shape == (4, math.ceil(1.5 * SR / HOP))
    assert tf.header.model_id == "tiny" and tf.header.original_length == 24000
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert re.search(r"1\.50 s -> 75 frames x 4 codebooks at 50 Hz \(1\.20 kbps\)", lines[0]), lines[0]
    assert str(out) in lines[0]


def test_tokenize_output_option(speech_wav: Path, tmp_path: Path, model: str) -> None:
    out = tmp_path / "new" / "folder" / "x.vqt"
    assert_ok(invoke("tokenize", speech_wav, "-o", out, "--model", model))
    assert load_codes(out).codes.shape == (4, 75)
    assert not speech_wav.with_suffix(".vqt").exists()


def test_tokenize_out_dir_several_inputs_with_progress(tmp_path: Path, model: str) -> None:
    inputs = [write_wav(tmp_path / f"in{i}.wav", 0.3 + 0.1 * i, seed=i) for i in range(3)]
    result = invoke("tokenize", *inputs, "--out-dir", tmp_path / "out", "--model", model, "--progress")
    assert_ok(result)
    for i, src in enumerate(inputs):
        tf = load_codes(tmp_path / "out" / f"in{i}.vqt")
        assert tf.header.original_length == sf.info(str(src)).frames
    # The progress bar goes to stderr; stdout stays one clean summary line.
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("3 file(s)"), result.stdout
    assert "frames" in lines[0] and "kbps" in lines[0]
    assert "tokenize" in result.stderr and "3/3 file" in result.stderr
    # Off a terminal the bar is drawn only when asked for.
    result = invoke("tokenize", *inputs, "--out-dir", tmp_path / "quiet", "--model", model)
    assert_ok(result)
    assert result.stderr == ""


def test_tokenize_directory_input(tmp_path: Path, model: str) -> None:
    root = tmp_path / "corpus"
    a = write_wav(root / "a.wav", 0.3)
    b = write_wav(root / "spk" / "b.flac", 0.4, rate=8000)
    (root / "notes.txt").write_text("not audio")
    result = invoke("tokenize", root, "--model", model)
    assert_ok(result)
    assert result.stdout.startswith("2 file(s)")
    assert load_codes(a.with_suffix(".vqt")).header.original_sample_rate == SR
    assert load_codes(b.with_suffix(".vqt")).header.original_sample_rate == 8000
    assert not (root / "notes.vqt").exists()


def test_tokenize_paths_from_stdin(tmp_path: Path, model: str) -> None:
    inputs = [write_wav(tmp_path / f"s{i}.wav", 0.3, seed=i) for i in range(2)]
    result = invoke(
        "tokenize", "-", "--out-dir", tmp_path / "out", "--model", model, input="".join(f"{p}\n" for p in inputs) + "\n"
    )
    assert_ok(result)
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"s0.vqt", "s1.vqt"}


@pytest.mark.parametrize("fmt", ["npy", "txt", "json"])
def test_tokenize_formats(speech_wav: Path, tmp_path: Path, tokens: Path, model: str, fmt: str) -> None:
    assert_ok(invoke("tokenize", speech_wav, "--out-dir", tmp_path / "plain", "--format", fmt, "--model", model))
    out = tmp_path / "plain" / f"speech.{fmt}"
    sidecar = out.with_name(out.name + ".json")
    assert sidecar.exists() == (fmt != "json")
    tf, ref = load_codes(out), load_codes(tokens)
    assert tf.header == ref.header
    np.testing.assert_array_equal(tf.codes, ref.codes)
    if fmt == "txt":
        rows = out.read_text().splitlines()
        assert len(rows) == 4 and all(len(r.split()) == 75 for r in rows)


def test_tokenize_output_suffix_disagrees_with_format(speech_wav: Path, tmp_path: Path, model: str) -> None:
    out = tmp_path / "x.vqt"
    result = invoke("tokenize", speech_wav, "-o", out, "--format", "npy", "--model", model)
    if result.exit_code != 0:
        assert_error(result)
        assert not out.exists()
    else:
        assert_ok(invoke("detokenize", out, tmp_path / "x.wav", "--model", model))


def test_tokenize_n_codebooks(speech_wav: Path, model: str) -> None:
    result = invoke("tokenize", speech_wav, "--n-codebooks", "2", "--model", model)
    assert_ok(result)
    tf = load_codes(speech_wav.with_suffix(".vqt"))
    assert tf.codes.shape == (2, 75) and tf.header.num_codebooks == 2
    assert "x 2 codebooks" in result.stdout and "(0.60 kbps)" in result.stdout


def test_tokenize_and_resynth_beam(speech_wav: Path, tmp_path: Path, model: str) -> None:
    """--beam reaches the search: the tokens equal the library's with that beam, and resynthesis decodes them."""
    import torch

    from vqaudio.tokenizer import load

    assert_ok(invoke("tokenize", speech_wav, "-o", tmp_path / "b.npy", "--beam", "4", "--model", model))
    searched = np.load(tmp_path / "b.npy")
    expected = load(model, beam=4).encode(speech_wav).codes.numpy()
    assert np.array_equal(searched, expected)
    assert not np.array_equal(searched, load(model).encode(speech_wav).codes.numpy())
    assert_ok(invoke("resynth", speech_wav, tmp_path / "b.wav", "--beam", "4", "--model", model))
    wanted = load(model).decode(torch.from_numpy(expected), length=24000).samples[0].numpy()
    written, _ = sf.read(tmp_path / "b.wav", dtype="float32")
    assert np.abs(written - wanted).max() <= 1.0 / 32768 + 1e-6
    for bad in ("0", "-3", "x"):
        result = invoke("tokenize", speech_wav, "--beam", bad, "--model", model)
        assert result.exit_code != 0 and "--beam" in result.output
    assert not speech_wav.with_suffix(".vqt").exists()


def test_tokenize_too_many_codebooks(speech_wav: Path, model: str) -> None:
    assert_error(invoke("tokenize", speech_wav, "-k", "5", "--model", model), "between 1 and 4")
    assert not speech_wav.with_suffix(".vqt").exists()


def test_tokenize_output_with_several_inputs(tmp_path: Path, model: str) -> None:
    inputs = [write_wav(tmp_path / f"in{i}.wav", 0.2) for i in range(2)]
    assert_error(invoke("tokenize", *inputs, "-o", tmp_path / "x.vqt", "--model", model), "--out-dir")
    assert not (tmp_path / "x.vqt").exists()


def test_tokenize_same_output_name_refused(tmp_path: Path, model: str) -> None:
    inputs = [write_wav(tmp_path / d / "x.wav", 0.2) for d in ("a", "b")]
    assert_error(invoke("tokenize", *inputs, "--out-dir", tmp_path / "out", "--model", model), "same output")
    assert not (tmp_path / "out").exists()


def test_tokenize_unknown_model(speech_wav: Path, tmp_path: Path) -> None:
    assert_error(invoke("tokenize", speech_wav, "--model", tmp_path / "no-model"), "no such model")


# --- overwrite refusal ----------------------------------------------------------------------------------------


def test_tokenize_refuses_overwrite(speech_wav: Path, model: str) -> None:
    assert_ok(invoke("tokenize", speech_wav, "--model", model))
    out = speech_wav.with_suffix(".vqt")
    first = out.read_bytes()
    write_wav(speech_wav, 0.7, seed=5)  # the next run would write different tokens
    assert_error(invoke("tokenize", speech_wav, "--model", model), "--force")
    assert out.read_bytes() == first
    assert_ok(invoke("tokenize", speech_wav, "--model", model, "--force"))
    assert out.read_bytes() != first and load_codes(out).header.original_length == round(0.7 * SR)


def test_tokenize_refuses_overwrite_of_sidecar(speech_wav: Path, model: str) -> None:
    sidecar = speech_wav.with_suffix(".npy.json")
    sidecar.write_text("{}")
    assert_error(invoke("tokenize", speech_wav, "--format", "npy", "--model", model), "exists")
    assert sidecar.read_text() == "{}" and not speech_wav.with_suffix(".npy").exists()


def test_resynth_refuses_overwrite(tmp_path: Path, speech_wav: Path, model: str) -> None:
    out = tmp_path / "out.wav"
    assert_ok(invoke("resynth", speech_wav, out, "--model", model))
    first = out.read_bytes()
    other = write_wav(tmp_path / "other.wav", 0.6, seed=3)
    assert_error(invoke("resynth", other, out, "--model", model), "--force")
    assert out.read_bytes() == first
    assert_ok(invoke("resynth", other, out, "--model", model, "--force"))
    assert sf.info(str(out)).frames == round(0.6 * SR)


@pytest.mark.parametrize("force", [False, True])
def test_resynth_refuses_output_equal_to_input(tmp_path: Path, speech_wav: Path, model: str, force: bool) -> None:
    before = speech_wav.read_bytes()
    # The same file under another spelling is still the input.
    same = speech_wav.parent / "sub" / ".." / speech_wav.name
    (speech_wav.parent / "sub").mkdir()
    for output in (speech_wav, same):
        args = ["resynth", speech_wav, output, "--model", model] + (["--force"] if force else [])
        assert_error(invoke(*args), "overwrite the input")
    assert speech_wav.read_bytes() == before


def test_detokenize_refuses_overwrite(tmp_path: Path, tokens: Path, model: str) -> None:
    out = tmp_path / "out.wav"
    assert_ok(invoke("detokenize", tokens, out, "--model", model))
    first = out.read_bytes()
    assert_error(invoke("detokenize", tokens, out, "--model", model, "--vocoder", "griffin-lim"), "--force")
    assert out.read_bytes() == first
    assert_ok(invoke("detokenize", tokens, out, "--model", model, "--vocoder", "griffin-lim", "--force"))
    assert out.read_bytes() != first


@pytest.mark.parametrize("command", ["resynth", "detokenize", "tokenize"])
def test_precision_option(tmp_path: Path, speech_wav: Path, tokens: Path, model: str, command: str) -> None:
    out = tmp_path / ("out.vqt" if command == "tokenize" else "out.wav")
    src = tokens if command == "detokenize" else speech_wav
    extra: list[object] = ["-o", out] if command == "tokenize" else [out]
    for precision in ("float32", "bfloat16"):
        assert_ok(invoke(command, src, *extra, "--model", model, "--precision", precision, "--force"))
        assert out.stat().st_size > 0
    result = invoke(command, src, *extra, "--model", model, "--precision", "fp8", "--force")
    assert result.exit_code != 0 and "Traceback" not in result.output


# --- detokenize -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["vqt", "npy", "txt", "json"])
def test_detokenize_every_format(tmp_path: Path, speech_wav: Path, tokens: Path, model: str, fmt: str) -> None:
    src = tokens
    if fmt != "vqt":
        src = tmp_path / f"speech.{fmt}"
        assert_ok(invoke("tokenize", speech_wav, "-o", src, "--format", fmt, "--model", model))
    out = tmp_path / f"from_{fmt}.wav"
    result = invoke("detokenize", src, out, "--model", model)
    assert_ok(result)
    assert "1.50 s at 16000 Hz" in result.stdout
    audio, rate = sf.read(out, dtype="int16")
    assert rate == SR and audio.shape == (24000,)
    if fmt != "vqt":
        ref = tmp_path / "from_vqt_ref.wav"
        assert_ok(invoke("detokenize", tokens, ref, "--model", model))
        np.testing.assert_array_equal(audio, sf.read(ref, dtype="int16")[0])


def test_detokenize_npy_without_sidecar_needs_model(tmp_path: Path, speech_wav: Path, model: str) -> None:
    src = tmp_path / "bare.npy"
    assert_ok(invoke("tokenize", speech_wav, "-o", src, "--format", "npy", "--model", model))
    src.with_name("bare.npy.json").unlink()
    out = tmp_path / "out.wav"
    assert_error(invoke("detokenize", src, out), "--model")
    assert not out.exists()
    assert_ok(invoke("detokenize", src, out, "--model", model))
    # Without a header the original length is unknown: every frame is decoded.
    assert sf.info(str(out)).frames == 75 * HOP


def test_detokenize_model_named_in_file_must_exist(tmp_path: Path, tokens: Path) -> None:
    # The file names model "tiny", which is neither a directory here nor a shipped model.
    assert_error(invoke("detokenize", tokens, tmp_path / "out.wav"), "tiny")


def test_detokenize_waveform_model_refuses_vocoder(tmp_path: Path, speech_wav: Path, wave_model: str) -> None:
    src = tmp_path / "w.vqt"
    assert_ok(invoke("tokenize", speech_wav, "-o", src, "--model", wave_model))
    assert_error(
        invoke("detokenize", src, tmp_path / "out.wav", "--model", wave_model, "--vocoder", "learned"), "does not apply"
    )
    assert_ok(invoke("detokenize", src, tmp_path / "out.wav", "--model", wave_model))


@pytest.mark.parametrize("kind", ["truncated", "wrong_magic", "future_version", "garbage", "missing", "empty"])
def test_detokenize_bad_token_files(tmp_path: Path, tokens: Path, model: str, kind: str) -> None:
    data = tokens.read_bytes()
    bad = tmp_path / "bad.vqt"
    if kind == "truncated":
        bad.write_bytes(data[: len(data) - 20])
        match = "truncated"
    elif kind == "wrong_magic":
        bad.write_bytes(b"RIFF" + data[4:])
        match = "not a vqaudio token file"
    elif kind == "future_version":
        bad.write_bytes(data[:4] + bytes([FORMAT_VERSION + 1]) + data[5:])
        match = "newer vqaudio"
    elif kind == "garbage":
        bad.write_bytes(np.random.default_rng(0).bytes(500))
        match = "not a vqaudio token file"
    elif kind == "empty":
        bad.write_bytes(b"")
        match = "empty"
    else:
        match = "no such token file"
    out = tmp_path / "out.wav"
    line = assert_error(invoke("detokenize", bad, out, "--model", model), match)
    assert str(bad) in line
    assert not out.exists()


def test_detokenize_tokens_from_another_model(tmp_path: Path, speech_wav: Path, model: str, other_model: str) -> None:
    src = tmp_path / "other.vqt"
    assert_ok(invoke("tokenize", speech_wav, "-o", src, "--model", other_model))
    out = tmp_path / "out.wav"
    assert_error(invoke("detokenize", src, out, "--model", model), "checksum")
    assert not out.exists()


def test_detokenize_tokens_from_another_family(tmp_path: Path, speech_wav: Path, model: str, wave_model: str) -> None:
    src = tmp_path / "wave.vqt"
    assert_ok(invoke("tokenize", speech_wav, "-o", src, "--model", wave_model))
    assert_error(invoke("detokenize", src, tmp_path / "out.wav", "--model", model), "tiny-wave")


def test_detokenize_zero_frames(tmp_path: Path, tokens: Path, model: str) -> None:
    from dataclasses import replace

    header = replace(load_codes(tokens).header, num_frames=0, original_length=0)
    empty = tmp_path / "empty.vqt"
    write_tokens(empty, np.zeros((4, 0), dtype=np.int64), header)
    result = invoke("detokenize", empty, tmp_path / "out.wav", "--model", model)
    if result.exit_code != 0:
        assert_error(result)


# --- resynth --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("vocoder", "k"), [("griffin-lim", None), ("learned", None), ("learned", 1), (None, 1)])
def test_resynth(tmp_path: Path, model: str, vocoder: str | None, k: int | None) -> None:
    src = write_wav(tmp_path / "in.wav", 0.8, rate=44100, channels=2)
    out = tmp_path / "out.wav"
    args: list[object] = ["resynth", src, out, "--model", model]
    if vocoder:
        args += ["--vocoder", vocoder]
    if k:
        args += ["--n-codebooks", k]
    result = invoke(*args)
    assert_ok(result)
    info = sf.info(str(out))
    assert info.samplerate == SR and info.channels == 1
    assert info.frames == round(0.8 * 44100 * SR / 44100)
    assert f"x {k or 4} codebooks" in result.stdout
    assert f"vocoder {vocoder or 'learned'}" in result.stdout
    audio, _ = sf.read(out)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0


def test_resynth_waveform_model(tmp_path: Path, speech_wav: Path, wave_model: str) -> None:
    result = invoke("resynth", speech_wav, tmp_path / "out.flac", "--model", wave_model)
    assert_ok(result)
    assert "vocoder none" in result.stdout
    assert sf.info(str(tmp_path / "out.flac")).frames == 24000
    assert_error(
        invoke("resynth", speech_wav, tmp_path / "o2.wav", "--model", wave_model, "--vocoder", "griffin-lim"),
        "does not apply",
    )


def test_resynth_bad_output_suffix(tmp_path: Path, speech_wav: Path, model: str) -> None:
    assert_error(invoke("resynth", speech_wav, tmp_path / "out.mp3", "--model", model), r"\.mp3")
    assert not (tmp_path / "out.mp3").exists()


# --- bad audio ------------------------------------------------------------------------------------------------


def _bad_audio(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """A bad input of ``kind`` inside ``tmp_path/in`` and the pattern its error message must match."""
    root = tmp_path / "in"
    root.mkdir()
    if kind == "missing":
        return root / "missing.wav", "no such file"
    if kind == "empty":
        (root / "empty.wav").write_bytes(b"")
        return root / "empty.wav", "empty"
    if kind == "no_audio_dir":
        (root / "readme.txt").write_text("nothing to hear")
        return root, "no audio files|is a directory"
    if kind == "text_as_wav":
        (root / "fake.wav").write_text("RIFF? no, just some text pretending to be a wav file\n" * 10)
        return root / "fake.wav", "not a recognised audio file"
    x = speech_like(0.6)
    x[5000:5003] = np.nan
    sf.write(root / "nan.wav", x, SR, subtype="FLOAT")
    return root / "nan.wav", "NaN"


@pytest.mark.parametrize("kind", ["missing", "empty", "no_audio_dir", "text_as_wav", "nan_float"])
@pytest.mark.parametrize("command", ["tokenize", "resynth"])
def test_bad_audio(tmp_path: Path, model: str, command: str, kind: str) -> None:
    src, match = _bad_audio(tmp_path, kind)
    before = files_below(tmp_path)
    if command == "tokenize":
        result = invoke("tokenize", src, "--model", model)
    else:
        result = invoke("resynth", src, tmp_path / "out.wav", "--model", model)
    assert_error(result, match)
    assert files_below(tmp_path) == before  # no output, not even a temporary file


def test_bad_audio_among_good_files(tmp_path: Path, model: str) -> None:
    good = write_wav(tmp_path / "good.wav", 0.3)
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    # The bad file comes first: the run goes past it, writes the good one, and lists the failure at the end.
    result = invoke("tokenize", bad, good, "--out-dir", tmp_path / "out", "--model", model, "--progress")
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    # The progress bar is closed before the failures, so each starts its own line.
    assert "\nfailed: " in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("tokenize: ")]
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"failed: {bad}: not a recognised audio file"), lines[0]
    assert lines[1].startswith("error: 1 of 2 files failed"), lines[1]
    assert result.stdout.startswith("1 file(s)")
    assert load_codes(tmp_path / "out" / "good.vqt").header.original_length == round(0.3 * SR)
    assert not (tmp_path / "out" / "bad.vqt").exists()


# --- info, models, version, help ------------------------------------------------------------------------------


def _key_values(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines())


def test_info_token_file(tokens: Path) -> None:
    result = invoke("info", tokens)
    assert_ok(result)
    d = _key_values(result.stdout)
    assert d["file"] == str(tokens)
    assert d["model_id"] == "tiny" and d["num_codebooks"] == "4" and d["num_frames"] == "75"
    assert d["duration_s"] == "1.5" and d["bitrate_kbps"] == "1.2"


def test_info_model_dir(model: str, tiny_model_dir: Path) -> None:
    result = invoke("info", model)
    assert_ok(result)
    d = _key_values(result.stdout)
    assert d["name"] == "tiny" and d["family"] == "spectral"
    assert d["sample_rate"] == "16000" and d["frame_rate"] == "50.0"
    assert d["bitrates_kbps"] == "[0.3, 0.6, 0.9, 1.2]"
    assert d["vocoders"] == "['learned', 'griffin-lim', 'hybrid']"
    assert d["training_data"] == "none (test model)"


def test_info_missing_target(tmp_path: Path) -> None:
    assert_error(invoke("info", tmp_path / "nothing"), "no such file")


def test_info_bad_token_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.vqt"
    bad.write_bytes(b"VQAT\x01")
    assert_error(invoke("info", bad), "truncated")


def test_models() -> None:
    assert_ok(invoke("models"))
    result = invoke("models", "--json")
    assert_ok(result)
    assert isinstance(json.loads(result.stdout), list)


def test_version() -> None:
    result = invoke("--version")
    assert_ok(result)
    assert result.stdout.strip() == f"vqaudio {__version__}"


def test_every_command_is_covered() -> None:
    assert set(get_command(app).commands) == set(COMMANDS)  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help(command: str | None) -> None:
    result = invoke(*([command] if command else []), "--help")
    assert_ok(result)
    assert "Usage" in result.stdout


# --- prepare --------------------------------------------------------------------------------------------------


def test_prepare_manifest(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    expected = {
        "spk1/a.wav": (0.5, SR),
        "spk1/b.flac": (0.25, 8000),
        "spk2/c.wav": (1.0, 44100),
    }
    for name, (seconds, rate) in expected.items():
        write_wav(root / name, seconds, rate=rate, channels=2 if rate == 44100 else 1)
    (root / "spk2" / "notes.txt").write_text("not audio")
    (root / "spk2" / "broken.wav").write_text("not audio either")
    manifest = tmp_path / "manifest.tsv"
    result = invoke("prepare", root, "-o", manifest)
    assert_ok(result)
    assert result.stdout.startswith("3 files") and "2 speakers" in result.stdout
    with open(manifest, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == ["path", "duration", "speaker", "sample_rate"]
    assert len(rows) == 1 + len(expected)
    for path, duration, speaker, rate_text in rows[1:]:
        seconds, sample_rate = expected[Path(path).relative_to("corpus").as_posix()]
        assert float(duration) == pytest.approx(seconds, abs=1e-3)
        assert int(rate_text) == sample_rate
        assert speaker == Path(path).parent.name
    first = manifest.read_bytes()
    assert_error(invoke("prepare", root, "-o", manifest), "--force")
    assert manifest.read_bytes() == first
    assert_ok(invoke("prepare", root, "-o", manifest, "--force"))


def test_prepare_no_audio(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert_error(invoke("prepare", tmp_path / "empty", "-o", tmp_path / "m.tsv"), "no readable audio")
    assert_error(invoke("prepare", tmp_path / "absent", "-o", tmp_path / "m.tsv"), "no such file")
    assert not (tmp_path / "m.tsv").exists()


# --- the installed console script -----------------------------------------------------------------------------


def _script() -> list[str]:
    """The ``vqaudio`` console script of this interpreter's environment, else ``python -m vqaudio.cli``."""
    beside = Path(sys.executable).parent / "vqaudio"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("vqaudio")
    return [found] if found else [sys.executable, "-m", "vqaudio.cli"]


def _run_script(*args: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([*_script(), *map(str, args)], capture_output=True, text=True, env=env, timeout=120)


def test_console_script_round_trip(tmp_path: Path, wave_model: str) -> None:
    # The waveform model keeps the subprocess cheap (no librosa import for mel filters).
    src = write_wav(tmp_path / "in.wav", 0.6, rate=22050)
    tokenized = _run_script("tokenize", src, "--model", wave_model)
    assert tokenized.returncode == 0, tokenized.stderr
    assert "kbps" in tokenized.stdout
    out = tmp_path / "out.wav"
    decoded = _run_script("detokenize", src.with_suffix(".vqt"), out, "--model", wave_model)
    assert decoded.returncode == 0, decoded.stderr
    info = sf.info(str(out))
    assert info.samplerate == SR and info.frames == round(0.6 * SR)


def test_console_script_bad_input_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.vqt"
    bad.write_bytes(struct.pack("<4sBI", b"VQAT", 1, 10_000))  # header length points past the end
    result = _run_script("info", bad)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0], result.stderr
    assert result.stdout == ""
