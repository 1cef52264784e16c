"""What a stranger feeds the ``vqaudio`` command: broken files, odd but valid audio, signals.

Every *broken* case must end with exactly one ``error:`` line on stderr, exit code 1, no traceback, and a
pre-existing output (given with ``--force``, so that only the refusal protects it) left byte for byte as it was,
with no temp file beside it. Every *valid* case must succeed with a correct output: mono at the model's rate, as
long as the input's duration at that rate (within one sample), finite samples.

The cases are generated from the tables below; ``test_case_count`` prints how many there are. Most run the tiny
test model (``tests/conftest.py``) through typer's ``CliRunner``; a few run the shipped ``speech-16k`` with
``--beam 1`` and the learned vocoder, and the SIGTERM case runs a real process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import speech_like
from typer.testing import CliRunner, Result

from vqaudio.cli import app
from vqaudio.tokenfile import FORMAT_VERSION, MAGIC, bits_per_code, pack_codes, read_tokens

SR = 16000
SECONDS = 0.3
PRECIOUS = b"a file that was here before, and must still be\n"

runner = CliRunner()


def invoke(*args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def write_wav(
    path: Path, seconds: float = SECONDS, rate: int = SR, channels: int = 1, subtype: str = "PCM_16", **kw: object
) -> Path:
    n = max(1, round(seconds * rate))
    x = np.stack([speech_like(n / rate + 1e-9, rate, f0=110 + 25 * c, seed=c)[:n] for c in range(channels)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, rate, subtype=subtype, **kw)  # type: ignore[arg-type]
    return path


def precious(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(PRECIOUS)
    return path


def craft_vqt(header: dict[str, object] | bytes, codes: np.ndarray, *, version: int = 1) -> bytes:
    """A .vqt by hand from the documented layout, with a valid CRC: what a careless or hostile writer makes."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    size = header["codebook_size"] if isinstance(header, dict) else 64
    assert isinstance(size, int)
    body = MAGIC + struct.pack("<BI", version, len(raw)) + raw + pack_codes(codes, bits_per_code(size))
    return body + struct.pack("<I", zlib.crc32(body))


@dataclass(frozen=True)
class Env:
    """What a case builds on: the folder to write into, the tiny models, and a valid token file of ``model``."""

    root: Path
    model: str
    other_model: str
    tokens: Path

    @property
    def header(self) -> dict[str, object]:
        return read_tokens(self.tokens).header.to_json()

    @property
    def codes(self) -> np.ndarray:
        return read_tokens(self.tokens).codes


# A broken case builds its files under env.root and returns (command line, the file that must stay untouched).
Build = Callable[[Env], tuple[list[object], Path | None]]
BROKEN: dict[str, tuple[Build, str]] = {}


def broken(name: str, match: str) -> Callable[[Build], Build]:
    def add(build: Build) -> Build:
        assert name not in BROKEN
        BROKEN[name] = (build, match)
        return build

    return add


def _audio_cases() -> None:
    """Broken audio, each through tokenize and resynth: the input is bad, the output exists and is --force'd."""

    def empty(env: Env) -> Path:
        (env.root / "empty.wav").write_bytes(b"")
        return env.root / "empty.wav"

    def header_only(env: Env) -> Path:
        full = write_wav(env.root / "full.wav").read_bytes()
        (env.root / "header.wav").write_bytes(full[:44])
        return env.root / "header.wav"

    def zero_frames(env: Env) -> Path:
        sf.write(env.root / "zero.wav", np.zeros((0, 1), np.float32), SR)
        return env.root / "zero.wav"

    def random_bytes(suffix: str) -> Callable[[Env], Path]:
        def make(env: Env) -> Path:
            path = env.root / f"noise{suffix}"
            path.write_bytes(np.random.default_rng(len(suffix)).bytes(4096))
            return path

        return make

    def text_as_wav(env: Env) -> Path:
        (env.root / "notes.wav").write_text("these are not samples\n" * 50)
        return env.root / "notes.wav"

    def non_finite(value: float) -> Callable[[Env], Path]:
        def make(env: Env) -> Path:
            x = speech_like(SECONDS, SR)
            x[len(x) // 2] = value
            path = env.root / "nonfinite.wav"
            sf.write(path, x, SR, subtype="FLOAT")
            return path

        return make

    def folder(env: Env) -> Path:
        (env.root / "a folder.wav").mkdir()
        return env.root / "a folder.wav"

    def missing(env: Env) -> Path:
        return env.root / "not-there.wav"

    inputs: dict[str, tuple[Callable[[Env], Path], str]] = {
        "empty-wav": (empty, "empty"),
        "header-only-wav": (header_only, "no audio frames"),
        "zero-frame-wav": (zero_frames, "no audio frames"),
        "random-bytes-wav": (random_bytes(".wav"), "noise.wav"),
        "random-bytes-flac": (random_bytes(".flac"), "noise.flac"),
        "random-bytes-mp3": (random_bytes(".mp3"), "noise.mp3"),
        "random-bytes-ogg": (random_bytes(".ogg"), "noise.ogg"),
        "text-named-wav": (text_as_wav, "not a recognised audio file"),
        "nan-float-wav": (non_finite(float("nan")), "NaN/Inf"),
        "inf-float-wav": (non_finite(float("inf")), "NaN/Inf"),
        "directory-named-wav": (folder, "directory"),
        "missing-file": (missing, "no such file"),
    }
    for name, (make, match) in inputs.items():

        def tok(env: Env, make: Callable[[Env], Path] = make) -> tuple[list[object], Path | None]:
            out = precious(env.root / "out" / "x.vqt")
            return ["tokenize", make(env), "-o", out, "-m", env.model, "--force"], out

        def res(env: Env, make: Callable[[Env], Path] = make) -> tuple[list[object], Path | None]:
            out = precious(env.root / "out" / "x.wav")
            return ["resynth", make(env), out, "-m", env.model, "--force"], out

        broken(f"tokenize-{name}", match)(tok)
        broken(f"resynth-{name}", match)(res)


_audio_cases()


def _truncated(env: Env) -> Path:
    full = write_wav(env.root / "whole.wav", seconds=1.0).read_bytes()
    (env.root / "half.wav").write_bytes(full[: len(full) // 2])
    return env.root / "half.wav"


@broken("tokenize-truncated-wav-strict", r"half\.wav is truncated: its header declares 16000 samples .* --strict")
def _(env: Env) -> tuple[list[object], Path | None]:
    out = precious(env.root / "x.vqt")
    return ["tokenize", _truncated(env), "-o", out, "-m", env.model, "--force", "--strict"], out


@broken("resynth-truncated-wav-strict", r"truncated: its header declares 16000 samples \(1\.00 s\)")
def _(env: Env) -> tuple[list[object], Path | None]:
    out = precious(env.root / "x.wav")
    return ["resynth", _truncated(env), out, "-m", env.model, "--force", "--strict"], out


@broken("tokenize-empty-folder", "no audio files")
def _(env: Env) -> tuple[list[object], Path | None]:
    (env.root / "corpus").mkdir()
    (env.root / "corpus" / "readme.txt").write_text("no audio here")
    out = precious(env.root / "tokens" / "readme.vqt")
    return ["tokenize", env.root / "corpus", "--out-dir", env.root / "tokens", "-m", env.model, "--force"], out


# --- outputs: the input itself, audio names, folders that cannot be made or written -------------------------


@broken("tokenize-output-is-input", "would overwrite the input")
def _(env: Env) -> tuple[list[object], Path | None]:
    src = write_wav(env.root / "x.wav")
    return ["tokenize", src, "-o", src, "-m", env.model, "--force"], src


@broken("tokenize-output-is-input-other-spelling", "would overwrite the input")
def _(env: Env) -> tuple[list[object], Path | None]:
    src = write_wav(env.root / "x.wav")
    (env.root / "sub").mkdir()
    return ["tokenize", src, "-o", env.root / "sub" / ".." / "x.wav", "-m", env.model, "--force"], src


@broken("tokenize-output-hard-link-to-input", "would overwrite the input")
def _(env: Env) -> tuple[list[object], Path | None]:
    src = write_wav(env.root / "x.wav")
    os.link(src, env.root / "x.vqt")  # what tokenize would write beside it
    return ["tokenize", src, "-m", env.model, "--force"], src


@broken("resynth-output-symlink-to-input", "would overwrite the input")
def _(env: Env) -> tuple[list[object], Path | None]:
    src = write_wav(env.root / "x.wav")
    (env.root / "link.wav").symlink_to(src)
    return ["resynth", src, env.root / "link.wav", "-m", env.model, "--force"], src


@broken("detokenize-output-is-input", "would overwrite the input")
def _(env: Env) -> tuple[list[object], Path | None]:
    return ["detokenize", env.tokens, env.tokens, "-m", env.model, "--force"], env.tokens


@broken("convert-output-is-voice", "would overwrite the input")
def _(env: Env) -> tuple[list[object], Path | None]:
    src, voice = write_wav(env.root / "a.wav"), write_wav(env.root / "voice.wav")
    return ["convert", src, voice, "--voice", voice, "-m", env.model, "--force"], voice


@broken("compress-output-is-input", "would overwrite the input")
def _(env: Env) -> tuple[list[object], Path | None]:
    vqz = precious(env.root / "x.vqz")
    return ["compress", vqz, vqz, "-m", env.model, "--force"], vqz


@broken("generate-over-its-prompt", "would overwrite the input")
def _(env: Env) -> tuple[list[object], Path | None]:
    prompt = write_wav(env.root / "samples" / "sample-01.wav")
    return ["generate", "-o", env.root / "samples", "-n", "2", "--prompt", prompt, "-m", env.model, "--force"], prompt


for _suffix in (".wav", ".flac", ".mp3", ".ogg"):

    @broken(f"tokenize-token-bytes-under-{_suffix[1:]}", "token files are not audio")
    def _(env: Env, suffix: str = _suffix) -> tuple[list[object], Path | None]:
        out = precious(env.root / f"out{suffix}")
        return ["tokenize", write_wav(env.root / "in.wav"), "-o", out, "-m", env.model, "--force"], out


@broken("tokenize-output-folder-under-a-file", "cannot make folder")
def _(env: Env) -> tuple[list[object], Path | None]:
    src = write_wav(env.root / "in.wav")
    return ["tokenize", src, "-o", src / "sub" / "o.vqt", "-m", env.model], src


@broken("tokenize-out-dir-is-a-file", "is a file, not a folder")
def _(env: Env) -> tuple[list[object], Path | None]:
    src, other = write_wav(env.root / "a.wav"), write_wav(env.root / "b.wav")
    return ["tokenize", src, other, "--out-dir", src, "-m", env.model, "--force"], src


@broken("detokenize-output-folder-under-a-file", "cannot")
def _(env: Env) -> tuple[list[object], Path | None]:
    blocker = precious(env.root / "blocker")
    return ["detokenize", env.tokens, blocker / "o.wav", "-m", env.model], blocker


def _read_only(env: Env) -> Path:
    folder = env.root / "read-only"
    precious(folder / "out.vqt")
    precious(folder / "out.wav")
    folder.chmod(0o555)
    return folder


@broken("tokenize-into-unwritable-folder", "Permission denied")
def _(env: Env) -> tuple[list[object], Path | None]:
    out = _read_only(env) / "out.vqt"
    return ["tokenize", write_wav(env.root / "in.wav"), "-o", out, "-m", env.model, "--force"], out


@broken("resynth-into-unwritable-folder", "Permission denied")
def _(env: Env) -> tuple[list[object], Path | None]:
    out = _read_only(env) / "out.wav"
    return ["resynth", write_wav(env.root / "in.wav"), out, "-m", env.model, "--force"], out


# Root may write into any folder, but not into /proc: these two run under every user (on Linux).
@broken("tokenize-into-proc", "cannot write /proc/hostile.vqt")
def _(env: Env) -> tuple[list[object], Path | None]:
    src = write_wav(env.root / "in.wav")
    return ["tokenize", src, "-o", "/proc/hostile.vqt", "-m", env.model, "--force"], src


@broken("resynth-into-proc", "cannot create a file in /proc")
def _(env: Env) -> tuple[list[object], Path | None]:
    src = write_wav(env.root / "in.wav")
    return ["resynth", src, "/proc/hostile.wav", "-m", env.model, "--force"], src


for _beam in ("100000", "65", "0"):

    @broken(f"tokenize-beam-{_beam}", "--beam must be a whole number from 1 to 64")
    def _(env: Env, beam: str = _beam) -> tuple[list[object], Path | None]:
        out = precious(env.root / "x.vqt")
        return ["tokenize", write_wav(env.root / "in.wav"), "-o", out, "-m", env.model, "--beam", beam, "--force"], out


# --- token files -----------------------------------------------------------------------------------------------

# A bad token file, made from a valid one: (file name, bytes), and whether `info` must refuse it too (it reads the
# file but loads no model, so a file that is only wrong for the model passes `info`).
TokenBuild = Callable[[Env], tuple[str, bytes]]


def _token_case(name: str, match: str, *, info: bool, explicit_model: bool = True) -> Callable[[TokenBuild], None]:
    def add(build: TokenBuild) -> None:
        def bad_file(env: Env) -> Path:
            file_name, data = build(env)
            path = env.root / file_name
            path.write_bytes(data)
            return path

        def detok(env: Env) -> tuple[list[object], Path | None]:
            out = precious(env.root / "decoded.wav")
            model = ["-m", env.model] if explicit_model else []
            return ["detokenize", bad_file(env), out, *model, "--force"], out

        broken(f"detokenize-{name}", match)(detok)
        if info:
            broken(f"info-{name}", match)(lambda env: (["info", bad_file(env)], None))

    return add


def _valid(env: Env) -> bytes:
    return env.tokens.read_bytes()


def _header_with(env: Env, **changes: object) -> bytes:
    return craft_vqt({**env.header, **changes}, env.codes)


_token_case("empty", "empty", info=True)(lambda env: ("t.vqt", b""))
_token_case("wrong-magic", "not a vqaudio token file", info=True)(lambda env: ("t.vqt", b"RIFF" + _valid(env)[4:]))
_token_case("future-version", "newer vqaudio .* upgrade", info=True)(
    lambda env: ("t.vqt", craft_vqt(env.header, env.codes, version=FORMAT_VERSION + 1))
)
_token_case("truncated", "truncated", info=True)(lambda env: ("t.vqt", _valid(env)[: len(_valid(env)) // 2]))
_token_case("flipped-payload-byte", "CRC32 mismatch", info=True)(
    lambda env: ("t.vqt", (lambda d: d[:-6] + bytes([d[-6] ^ 0x5A]) + d[-5:])(_valid(env)))
)
_token_case("header-not-json", "not valid UTF-8 JSON", info=True)(
    lambda env: ("t.vqt", craft_vqt(b"{this is not json", env.codes))
)
_token_case("length-claims-a-trillion-samples", "header fields disagree", info=True)(
    lambda env: ("t.vqt", _header_with(env, original_length=10**12))
)
_token_case("frames-beyond-payload", "payload is", info=True)(
    lambda env: (
        "t.vqt",
        _header_with(env, num_frames=int(env.codes.shape[1]) + 100, original_length=(env.codes.shape[1] + 100) * 320),
    )
)
_token_case("codebooks-beyond-payload", "payload is", info=True)(
    lambda env: ("t.vqt", _header_with(env, num_codebooks=int(env.codes.shape[0]) + 1))
)
_token_case("unknown-channel-handling", "upgrade", info=True)(
    lambda env: ("t.vqt", _header_with(env, channel_handling="ambisonic"))
)
_token_case("json-code-out-of-range", "outside 0..63", info=True)(
    lambda env: (
        "t.json",
        json.dumps(
            {"format_version": 1, "header": env.header, "codes": [[999] * env.codes.shape[1]] * env.codes.shape[0]}
        ).encode(),
    )
)
_token_case("txt-negative-code", "negative", info=True)(lambda env: ("t.txt", b"1 2 -3\n4 5 6\n"))
_token_case("codebook-larger-than-the-model", "codebook size 128 but model", info=False)(
    lambda env: ("t.vqt", craft_vqt({**env.header, "codebook_size": 128}, np.full_like(env.codes, 100)))
)
_token_case("another-models-weights", "checksum", info=False)(
    lambda env: ("t.vqt", env.root.joinpath("o.vqt").read_bytes())
)
_token_case("model-id-is-a-folder-path", "not a shipped model .*; pass --model", info=False, explicit_model=False)(
    lambda env: ("t.vqt", _header_with(env, model_id=env.model))
)
_token_case("model-id-unknown-name", "not a shipped model .*; pass --model", info=False, explicit_model=False)(
    lambda env: ("t.vqt", _valid(env))
)


@_token_case("npy-holding-a-pickle", "not a plain .npy", info=True)
def _npy_pickle(env: Env) -> tuple[str, bytes]:
    path = env.root / "pickled.npy"
    np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)  # unpickling it would run code
    return "t.npy", path.read_bytes()


# --- valid but unusual input -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Valid:
    seconds: float = SECONDS
    rate: int = SR
    channels: int = 1
    subtype: str = "PCM_16"
    name: str = "in.wav"
    fmt: str | None = None  # soundfile format, when the suffix does not say
    shipped: bool = False  # run speech-16k (--beam 1, learned vocoder) instead of the tiny model
    frames: int | None = None  # an exact length in samples, instead of seconds


VALID: dict[str, Valid] = {
    **{f"rate-{r}": Valid(rate=r) for r in (8000, 11025, 22050, 44100, 48000, 96000, 192000)},
    **{f"channels-{c}": Valid(channels=c) for c in (1, 2, 6, 8)},
    **{f"wav-{s.lower()}": Valid(subtype=s) for s in ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "PCM_U8")},
    "flac-8-bit": Valid(subtype="PCM_S8", name="in.flac"),
    "flac-24-bit-96k-stereo": Valid(subtype="PCM_24", name="in.flac", rate=96000, channels=2),
    "ogg-vorbis": Valid(subtype="VORBIS", name="in.ogg"),
    "one-sample": Valid(frames=1),
    "one-sample-at-8k": Valid(frames=1, rate=8000),
    "one-frame-exactly": Valid(frames=320),
    "one-frame-and-a-sample": Valid(frames=321),
    "unicode-path": Valid(name="ünïcødé ☃ 音声/ça.wav"),
    "spaces-in-path": Valid(name="a folder with spaces/my recording (1).wav"),
    "shipped-speech-16k-44k-stereo": Valid(rate=44100, channels=2, shipped=True),
    "shipped-speech-16k-8k-24-bit": Valid(rate=8000, subtype="PCM_24", shipped=True),
}


def test_case_count(capsys: pytest.CaptureFixture[str]) -> None:
    """At least 40 generated cases; the number goes to the terminal even when output is captured."""
    total = len(BROKEN) + len(VALID)
    with capsys.disabled():
        print(f"\ntest_hostile: {total} generated cases ({len(BROKEN)} broken, {len(VALID)} valid)")
    assert len(BROKEN) >= 30 and len(VALID) >= 20 and total >= 40


# --- the checks --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tiny_model_dir: Path, other_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Env:
    """The tiny models and a valid token file of each; every case copies what it needs into its own folder."""
    root = tmp_path_factory.mktemp("hostile-base")
    src = write_wav(root / "speech.wav")
    for model, name in ((tiny_model_dir, "t.vqt"), (other_model_dir, "o.vqt")):
        result = invoke("tokenize", src, "-o", root / name, "-m", model)
        assert result.exit_code == 0, result.output
    return Env(root, str(tiny_model_dir), str(other_model_dir), root / "t.vqt")


@pytest.fixture
def env(models: Env, tmp_path: Path) -> Env:
    for name in ("t.vqt", "o.vqt"):
        (tmp_path / name).write_bytes((models.root / name).read_bytes())
    return Env(tmp_path, models.model, models.other_model, tmp_path / "t.vqt")


def _snapshot(path: Path) -> bytes | str:
    return path.read_bytes() if path.is_file() else "folder" if path.is_dir() else "absent"


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_input_is_one_line_error(case: str, env: Env) -> None:
    if "unwritable" in case and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    if "proc" in case and not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    build, match = BROKEN[case]
    args, keep = build(env)
    before = _snapshot(keep) if keep is not None else None
    result = invoke(*args)
    try:
        assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}\n{result.output}"
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.stderr and "Traceback" not in result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert re.search(match, lines[0]), lines[0]
        if keep is not None:
            assert _snapshot(keep) == before, f"{keep} changed"
            assert not [p for p in keep.parent.iterdir() if p.name.endswith(".tmp")], "a temp file was left"
    finally:
        for folder in env.root.rglob("read-only"):
            folder.chmod(0o755)


@pytest.mark.parametrize("case", sorted(VALID))
def test_unusual_valid_input_decodes_to_its_duration(case: str, env: Env) -> None:
    spec = VALID[case]
    src = env.root / spec.name
    frames = spec.frames if spec.frames is not None else round(spec.seconds * spec.rate)
    write_wav(src, frames / spec.rate, spec.rate, spec.channels, spec.subtype)
    assert sf.info(str(src)).frames == frames and sf.info(str(src)).channels == spec.channels
    out = env.root / "out dir ☃" / "decoded.wav"
    model = ["-m", "speech-16k", "--beam", "1", "--vocoder", "learned"] if spec.shipped else ["-m", env.model]
    result = invoke("resynth", src, out, *model)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert result.stderr == "", result.stderr
    data, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == SR and data.shape[1] == 1
    assert abs(data.shape[0] - frames * SR / spec.rate) <= 1, (data.shape[0], frames * SR / spec.rate)
    assert np.isfinite(data).all()
    # The same through a token file; a shipped model's file names it, so detokenize needs no -m.
    tokens = env.root / "tokens" / "in.vqt"
    assert invoke("tokenize", src, "-o", tokens, *model[: 4 if spec.shipped else 2]).exit_code == 0
    again = env.root / "again.wav"
    decoded = invoke("detokenize", tokens, again, *(["--vocoder", "learned"] if spec.shipped else model))
    assert decoded.exit_code == 0, decoded.output
    assert sf.info(str(again)).frames == data.shape[0]


def test_truncated_wav_warns_and_encodes_what_is_there(env: Env) -> None:
    src = _truncated(env)
    readable = sf.info(str(src)).frames  # libsndfile trims the count to what the file holds
    out = env.root / "half.vqt"
    result = invoke("tokenize", src, "-o", out, "-m", env.model)
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"warning: {src} is truncated: its header declares 16000 samples (1.00 s) but only {readable} "
        f"({readable / SR:.2f} s) can be read\n"
    )
    assert read_tokens(out).header.original_length == readable


def test_truncated_wav_warns_once_in_resynth(env: Env) -> None:
    """resynth reads its input twice with a speaker-conditioned model (the encode, then the input's own voice):
    the truncation warning is said once, for either kind of model."""
    from dataclasses import replace

    import torch
    from conftest import tiny_config

    from vqaudio.models import build_codec, save_model
    from vqaudio.models.conditional import SpeakerConfig

    torch.manual_seed(0)
    config = replace(tiny_config(vocoder=False), family="conditional", speaker=SpeakerConfig(16, 1, 8))
    voiced = save_model(env.root / "voiced", "tiny-voiced", config, build_codec(config).eval(), card={})
    src = _truncated(env)
    readable = sf.info(str(src)).frames
    for model in (env.model, voiced):
        result = invoke("resynth", src, env.root / "half-out.wav", "-m", model, "--force")
        assert result.exit_code == 0, result.output
        assert result.stderr == (
            f"warning: {src} is truncated: its header declares 16000 samples (1.00 s) but only {readable} "
            f"({readable / SR:.2f} s) can be read\n"
        ), model


def test_folder_run_goes_on_and_skip_existing_finishes_it(env: Env) -> None:
    corpus, tokens = env.root / "corpus", env.root / "tokens"
    for i in range(3):
        write_wav(corpus / f"good{i}.wav", 0.2 + 0.1 * i)
    (corpus / "bad.wav").write_bytes(b"not audio" * 40)
    (corpus / "empty.flac").write_bytes(b"")
    result = invoke("tokenize", corpus, "--out-dir", tokens, "-m", env.model)
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert lines[0] == f"failed: {corpus / 'bad.wav'}: not a recognised audio file (no valid audio header)"
    assert lines[1] == f"failed: {corpus / 'empty.flac'}: file is empty (0 bytes)"
    assert lines[2].startswith("error: 2 of 5 files failed") and len(lines) == 3
    assert result.stdout.startswith("3 file(s)")
    assert sorted(p.name for p in tokens.iterdir()) == ["good0.vqt", "good1.vqt", "good2.vqt"]
    done = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tokens.iterdir()}

    # Without --force or --skip-existing a rerun refuses before doing anything.
    refused = invoke("tokenize", corpus, "--out-dir", tokens, "-m", env.model)
    assert refused.exit_code == 1 and "--skip-existing" in refused.stderr and len(refused.stderr.splitlines()) == 1

    # Fix the bad files; --skip-existing does only what is left and keeps the rest as they were.
    write_wav(corpus / "bad.wav", 0.4)
    (corpus / "empty.flac").unlink()
    result = invoke("tokenize", corpus, "--out-dir", tokens, "-m", env.model, "--skip-existing")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("1 file(s), 0.40 s") and "3 skipped" in result.stdout
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tokens.iterdir() if p.name in done} == done
    assert read_tokens(tokens / "bad.vqt").header.original_length == round(0.4 * SR)

    # An existing output that is not a finished token file is a failure of that input, not a skip.
    (tokens / "good1.vqt").write_bytes(b"half a token file")
    result = invoke("tokenize", corpus, "--out-dir", tokens, "-m", env.model, "--skip-existing")
    assert result.exit_code == 1 and "good1.vqt exists but is not a token file" in result.stderr
    assert (tokens / "good1.vqt").read_bytes() == b"half a token file"
    result = invoke("tokenize", corpus, "--out-dir", tokens, "-m", env.model, "--skip-existing", "--force")
    assert result.exit_code == 0 and result.stdout.startswith("1 file(s)"), result.output
    assert read_tokens(tokens / "good1.vqt").header.original_length == round(0.3 * SR)


def test_sigterm_removes_the_half_written_output(env: Env, tiny_model_dir: Path) -> None:
    """A real ``vqaudio detokenize`` process, told to stop by SIGTERM in the middle of writing its output, exits
    with code 143 and leaves neither its hidden temp file nor a changed output behind."""
    from dataclasses import replace

    from vqaudio.tokenfile import write_tokens

    tf = read_tokens(env.tokens)
    frames = 50 * 120  # two minutes: four decode windows of 30 s
    codes = np.random.default_rng(0).integers(0, tf.header.codebook_size, size=(tf.codes.shape[0], frames))
    long = env.root / "long.vqt"
    write_tokens(long, codes, replace(tf.header, num_frames=frames, original_length=frames * 320))
    out = precious(env.root / "decoded.wav")
    # Each decoded window is followed by a long pause, so the signal surely arrives while the temp file is open.
    script = textwrap.dedent(
        """
        import sys, time
        import vqaudio.chunking as chunking
        real = chunking.trim_blocks
        def slow(*args, **kwargs):
            for block in real(*args, **kwargs):
                yield block
                time.sleep(60)
        chunking.trim_blocks = slow
        from vqaudio.cli import main
        sys.argv = ["vqaudio", *sys.argv[1:]]
        main()
        """
    )
    args = ["detokenize", long, out, "-m", tiny_model_dir, "--force"]
    env_vars = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)], stderr=subprocess.PIPE, text=True, env=env_vars
    )
    deadline = time.time() + 60
    temps: list[Path] = []
    while time.time() < deadline and proc.poll() is None:
        temps = [p for p in env.root.iterdir() if p.name.startswith(".decoded.wav.") and p.stat().st_size > 44]
        if temps:
            break
        time.sleep(0.05)
    assert temps, f"no temp file appeared: {proc.poll()} {proc.stderr.read() if proc.stderr else ''}"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    assert not [p for p in env.root.iterdir() if p.name.endswith(".tmp")]
    assert out.read_bytes() == PRECIOUS


def test_a_damaged_mp3_is_one_line_in_a_real_process(env: Env) -> None:
    """libmpg123 writes its notes on a damaged stream straight to file descriptor 2, where CliRunner cannot see
    them; a real process shows that only the error line reaches the terminal."""
    noise = env.root / "noise.mp3"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    proc = subprocess.run(
        [sys.executable, "-m", "vqaudio.cli", "tokenize", noise, "-o", env.root / "x.vqt", "-m", env.model],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert proc.returncode == 1
    expected = f"error: {noise}: corrupt or truncated audio file (the decoder could not open it)"
    assert proc.stderr.splitlines() == [expected]
