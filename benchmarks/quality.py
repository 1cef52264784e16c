"""Score vqaudio models side by side with reference codecs on a list of speech files.

    python benchmarks/quality.py --list ../shared/data/speech/dev.list --root ../shared/data \\
        --out docs/results.md --systems codec2-3200 opus-6 griffin-lim-true-mel vqaudio:speech-16k@3+learned

Every file is read, downmixed and resampled to ``--rate`` (16 kHz unless told; a 24 kHz music model is
scored at 24 kHz); each system encodes and decodes it; the result is delay-aligned and scored with
:func:`vqaudio.evaluation.score`. The table gives the mean of each measure over files (NaN-aware) and the
speed of the system call as a multiple of real time.

Systems:
    codec2-3200, codec2-1200, codec2-700C, opus-6, opus-8   Debian command-line codecs
    griffin-lim-true-mel       Griffin-Lim from the original's own mel spectrogram: the ceiling of a
                               perfect mel codec followed by a Griffin-Lim back end
    vqaudio:<model>[@K][+vocoder][%precision][~beamN][~plain][^ort[-int8=GRAPH+...]]   a vqaudio model with
                               K codebooks, the named vocoder and the decoder arithmetic (auto, float32 or
                               bfloat16; default auto, as the CLI); ~beamN searches codes with a beam of N (as
                               --beam N; default: the model's); ~plain skips the model's post-filter (as
                               --no-postfilter); ^ort runs the networks in onnxruntime (as --runtime onnxruntime,
                               graphs from the cache) and ^ort-int8=decoder+encoder runs those graphs as int8 (any
                               of encoder, decoder, vocoder; as --int8), e.g. to score each path in one run:
                               vqaudio:speech-16k vqaudio:speech-16k^ort vqaudio:speech-16k^ort-int8=decoder
                               vqaudio:speech-16k^ort-int8=encoder+decoder+vocoder
    vocoder:<model>[+vocoder]  a vqaudio model's back end alone (default: the model's default one) on the
                               original's own mel, as the model analyses it: how far the back end by itself
                               is from the original, with no codec in front of it

Files whose ``lossy_origin`` is set in a ``manifest.tsv`` beside or above them were decoded from MP3 or
Vorbis, so they already carry coding artefacts; they are excluded.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
import torch

from vqaudio.errors import VQAudioError
from vqaudio.evaluation import QualityScores, score
from vqaudio.reference_codecs import REFERENCE_CODECS, MissingToolError, ReferenceCodec

RATE = 16000  # default scoring rate; PESQ-WB itself always works on a 16 kHz copy
GRIFFIN_LIM = "griffin-lim-true-mel"
DEFAULT_SYSTEMS = [*REFERENCE_CODECS, GRIFFIN_LIM]
_VOCODER_SYSTEM = re.compile(r"^vocoder:(?P<model>[^+]+)(?:\+(?P<vocoder>.+))?$")
_VQAUDIO_SYSTEM = re.compile(
    r"^vqaudio:(?P<model>[^@+%~^]+)(?:@(?P<k>\d+))?(?:\+(?P<vocoder>[^%~^]+))?(?:%(?P<precision>auto|float32|bfloat16))?"
    r"(?:~beam(?P<beam>[1-9]\d*))?(?P<plain>~plain)?(?P<ort>\^ort(?:-int8=(?P<int8>[a-z]+(?:\+[a-z]+)*))?)?$"
)

# Mel analysis for the Griffin-Lim ceiling: 80 bands, 40 ms window, 10 ms hop (640 and 160 samples at 16 kHz).
_GL_N_MELS = 80
_GL_WINDOW_S = 0.040
_GL_HOP_S = 0.010
_GL_ITERATIONS = 32

Transform = Callable[[np.ndarray], np.ndarray]
"""A system as the benchmark sees it: ``[T]`` float at the scoring rate in, ``[T]`` float at that rate out."""


@dataclass(frozen=True)
class System:
    """One row of the table: a name, a nominal bitrate (kbit/s, NaN when it has none) and the transform."""

    name: str
    bitrate_kbps: float
    run: Transform


@dataclass(frozen=True)
class FileResult:
    """The scores of one system on one file."""

    system: str
    file: str
    audio_seconds: float
    wall_seconds: float
    pesq_wb: float
    stoi: float
    si_sdr: float
    mel_distance: float


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _griffin_lim_true_mel(rate: int) -> Transform:
    """``[T]`` -> ``[T]``: magnitude mel of the original, then 32 Griffin-Lim iterations back to audio."""
    n_fft, hop = round(_GL_WINDOW_S * rate), round(_GL_HOP_S * rate)

    def run(x: np.ndarray) -> np.ndarray:
        import librosa

        mel = librosa.feature.melspectrogram(
            y=x, sr=rate, n_fft=n_fft, hop_length=hop, win_length=n_fft, n_mels=_GL_N_MELS, power=1.0
        )
        # Same as librosa.feature.inverse.mel_to_audio, split in two so Griffin-Lim's random initial phase
        # can be seeded and the row is reproducible.
        magnitude = librosa.feature.inverse.mel_to_stft(mel, sr=rate, n_fft=n_fft, power=1.0)
        y = librosa.griffinlim(
            magnitude,
            n_iter=_GL_ITERATIONS,
            hop_length=hop,
            win_length=n_fft,
            n_fft=n_fft,
            length=x.size,
            random_state=0,
        )
        return np.asarray(y, dtype=np.float32)

    return run


def _vqaudio_system(spec: str, rate: int = RATE) -> System:
    """Build a ``vqaudio:<model>[@K][+vocoder]`` system; vqaudio's model API is imported only here."""
    match = _VQAUDIO_SYSTEM.match(spec)
    if match is None:
        raise VQAudioError(
            f"{spec}: expected vqaudio:<model>[@K][+vocoder][%precision][~beamN][~plain][^ort[-int8=GRAPH+...]], "
            "e.g. vqaudio:speech-16k@3+learned or vqaudio:speech-16k^ort-int8=decoder+encoder"
        )
    import vqaudio
    from vqaudio.runtime.sessions import OnnxOptions

    int8 = tuple(match["int8"].split("+")) if match["int8"] else ()
    tokenizer = vqaudio.load(  # type: ignore[attr-defined]
        match["model"],
        decode_precision=match["precision"] or "auto",
        postfilter=match["plain"] is None,
        beam=int(match["beam"]) if match["beam"] else None,
        runtime="onnxruntime" if match["ort"] else "torch",
        onnx=OnnxOptions(int8=int8) if match["ort"] else None,
    )
    options: dict[str, Any] = {}
    if match["k"] is not None:
        options["n_codebooks"] = int(match["k"])
    if match["vocoder"] is not None:
        options["vocoder"] = match["vocoder"]
    bitrate = tokenizer.bitrate(options["n_codebooks"]) if "n_codebooks" in options else tokenizer.bitrate()

    @torch.inference_mode()
    def run(x: np.ndarray) -> np.ndarray:
        out = tokenizer.resynth(torch.from_numpy(x.astype(np.float32))[None], rate, **options)
        y = out.samples.float().mean(dim=0).numpy().astype(np.float64)  # [C, T] -> [T]
        if out.sample_rate != rate:
            y = soxr.resample(y, out.sample_rate, rate)
        return _fit_length(np.asarray(y, dtype=np.float32), x.size)

    return System(name=spec, bitrate_kbps=float(bitrate) / 1000.0, run=run)


def _vocoder_system(spec: str, rate: int = RATE) -> System:
    """Build a ``vocoder:<model>[+vocoder]`` system: the original's log-mel straight into the back end."""
    match = _VOCODER_SYSTEM.match(spec)
    if match is None:
        raise VQAudioError(f"{spec}: expected vocoder:<model>[+vocoder], e.g. vocoder:speech-16k+learned")
    import vqaudio
    from vqaudio.spectral import log_mel

    tok = vqaudio.load(match["model"])  # type: ignore[attr-defined]
    mel_config = tok.vocoder(match["vocoder"]).mel_config
    model_rate = mel_config.sample_rate

    def run(x: np.ndarray) -> np.ndarray:
        y = x if model_rate == rate else soxr.resample(x, rate, model_rate)
        audio = torch.from_numpy(np.asarray(y, dtype=np.float32))[None]
        out = tok.vocode(log_mel(audio, mel_config), match["vocoder"])[0].numpy().astype(np.float64)
        if model_rate != rate:
            out = soxr.resample(out, model_rate, rate)
        return _fit_length(np.asarray(out, dtype=np.float32), x.size)

    # The mel it starts from is not coded, so the row has no bitrate (like the Griffin-Lim ceiling).
    return System(name=spec, bitrate_kbps=math.nan, run=run)


def _fit_length(x: np.ndarray, length: int) -> np.ndarray:
    return x[:length] if x.size >= length else np.pad(x, (0, length - x.size))


def _at_rate(codec: ReferenceCodec, rate: int) -> Transform:
    def run(x: np.ndarray) -> np.ndarray:
        return codec(x, rate)

    return run


def build_systems(names: Iterable[str], rate: int = RATE) -> list[System]:
    """Turn system names into runnable systems, skipping (with a warning) those that cannot run here."""
    systems: list[System] = []
    for name in names:
        if name in REFERENCE_CODECS:
            codec = REFERENCE_CODECS[name]()
            try:
                codec.check()
            except MissingToolError as exc:
                _warn(f"skipping {name}: {exc}")
                continue
            systems.append(System(name=name, bitrate_kbps=codec.bitrate_kbps, run=_at_rate(codec, rate)))
        elif name == GRIFFIN_LIM:
            # A mel codec would spend bits on the mel; the ceiling itself has no bitrate.
            systems.append(System(name=name, bitrate_kbps=math.nan, run=_griffin_lim_true_mel(rate)))
        elif name.startswith(("vqaudio:", "vocoder:")):
            build = _vqaudio_system if name.startswith("vqaudio:") else _vocoder_system
            try:
                systems.append(build(name, rate))
            except (ImportError, AttributeError, VQAudioError) as exc:
                _warn(f"skipping {name}: {exc}")
        else:
            patterns = ["vqaudio:<model>[@K][+vocoder][%precision][~beamN][~plain][^ort]", "vocoder:<model>[+vocoder]"]
            known = ", ".join([*DEFAULT_SYSTEMS, *patterns])
            raise VQAudioError(f"unknown system {name!r}; known: {known}")
    return systems


def _lossy_paths(manifest: Path) -> set[Path]:
    """Files that a ``manifest.tsv`` marks with a non-empty ``lossy_origin``, as resolved paths."""
    with manifest.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return {
        (manifest.parent / row["path"]).resolve()
        for row in rows
        if (row.get("lossy_origin") or "").strip() and row.get("path")
    }


def read_list(list_path: Path, root: Path) -> tuple[list[Path], list[Path]]:
    """Read a file list (one path relative to ``root`` per line) and split off files of lossy origin.

    Returns the files to score and the files excluded as lossy, both in list order.
    """
    root = root.resolve()
    manifests: dict[Path, set[Path]] = {}
    keep: list[Path] = []
    lossy: list[Path] = []
    for line in list_path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = (root / line).resolve()
        is_lossy = False
        # Look for manifest.tsv in the file's folder and every folder above it up to the root.
        for folder in path.parents:
            manifest = folder / "manifest.tsv"
            if manifest not in manifests:
                manifests[manifest] = _lossy_paths(manifest) if manifest.is_file() else set()
            is_lossy = is_lossy or path in manifests[manifest]
            if folder == root or not folder.is_relative_to(root):
                break
        (lossy if is_lossy else keep).append(path)
    return keep, lossy


def load_mono(path: Path, rate: int = RATE) -> np.ndarray:
    """Read an audio file as float ``[T]`` at ``rate``: channels averaged, resampled with soxr."""
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise VQAudioError(f"{path}: cannot read audio ({exc})") from exc
    x = data.mean(axis=1)
    if file_rate != rate:
        x = soxr.resample(x, file_rate, rate)
    return np.asarray(x, dtype=np.float32)


def evaluate(systems: Sequence[System], files: Sequence[Path], root: Path, rate: int = RATE) -> list[FileResult]:
    """Run every system on every file and score it; a system that fails on a file is warned about."""
    results: list[FileResult] = []
    for i, path in enumerate(files, 1):
        x = load_mono(path, rate)
        label = str(path.relative_to(root.resolve())) if path.is_relative_to(root.resolve()) else str(path)
        print(f"[{i}/{len(files)}] {label} ({x.size / rate:.1f} s)", file=sys.stderr)
        for system in systems:
            start = time.perf_counter()
            try:
                y = system.run(x)
            except VQAudioError as exc:
                _warn(f"{system.name} failed on {label}: {exc}")
                continue
            wall = time.perf_counter() - start
            scores: QualityScores = score(x, y, rate)
            results.append(
                FileResult(
                    system=system.name,
                    file=label,
                    audio_seconds=x.size / rate,
                    wall_seconds=wall,
                    **asdict(scores),
                )
            )
    return results


@dataclass(frozen=True)
class SystemSummary:
    """One table row: NaN-aware means over files, and speed as total audio time over total wall time."""

    system: str
    bitrate_kbps: float
    pesq_wb: float
    stoi: float
    si_sdr: float
    mel_distance: float
    x_real_time: float
    n_files: int


def _nanmean(values: list[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.mean(arr[~np.isnan(arr)])) if np.any(~np.isnan(arr)) else math.nan


def summarise(systems: Sequence[System], results: Sequence[FileResult]) -> list[SystemSummary]:
    rows: list[SystemSummary] = []
    for system in systems:
        mine = [r for r in results if r.system == system.name]
        wall = sum(r.wall_seconds for r in mine)
        rows.append(
            SystemSummary(
                system=system.name,
                bitrate_kbps=system.bitrate_kbps,
                pesq_wb=_nanmean([r.pesq_wb for r in mine]),
                stoi=_nanmean([r.stoi for r in mine]),
                si_sdr=_nanmean([r.si_sdr for r in mine]),
                mel_distance=_nanmean([r.mel_distance for r in mine]),
                # Totals rather than a mean of ratios, so a one-second clip does not weigh like a long one.
                x_real_time=sum(r.audio_seconds for r in mine) / wall if wall > 0 else math.nan,
                n_files=len(mine),
            )
        )
    return rows


def _fmt(value: float, digits: int) -> str:
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def markdown_table(rows: Sequence[SystemSummary]) -> str:
    lines = [
        "| system | bitrate (kbps) | PESQ-WB | STOI | SI-SDR (dB) | log-mel L1 | x real-time | n files |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        cells = [
            f"`{r.system}`",
            _fmt(r.bitrate_kbps, 2),
            _fmt(r.pesq_wb, 2),
            _fmt(r.stoi, 3),
            _fmt(r.si_sdr, 1),
            _fmt(r.mel_distance, 3),
            _fmt(r.x_real_time, 1),
            str(r.n_files),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_report(table: str, command: str, date: str, n_files: int, lossy: Sequence[Path]) -> str:
    note = (
        f"Files of lossy origin (decoded from MP3/Vorbis, per `lossy_origin` in manifest.tsv) are excluded: "
        f"{len(lossy)} excluded, {n_files} scored."
    )
    return (
        "## Quality\n\n"
        f"Produced by `{command}` on {date}.\n\n"
        f"{note} Each system's output is delay-aligned (up to ±50 ms) before scoring; scores are means over "
        f"files, ignoring NaN; x real-time is total audio duration over total wall time of the system call "
        f"(encode + decode, torch limited to 2 threads). SI-SDR means something only for systems that keep "
        f"the waveform (Opus, a waveform decoder): parametric coders and Griffin-Lim rebuild the phase and "
        f"score far below 0 dB whatever they sound like.\n\n"
        f"{table}\n"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", type=Path, required=True, help="file list, one path relative to --root a line")
    parser.add_argument("--root", type=Path, required=True, help="folder the listed paths are relative to")
    parser.add_argument("--out", type=Path, required=True, help="markdown file to write the table to")
    parser.add_argument("--systems", nargs="+", default=DEFAULT_SYSTEMS, help="systems to score, in table order")
    parser.add_argument("--rate", type=int, default=RATE, help="scoring sample rate in Hz (default 16000)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N files")
    parser.add_argument("--json", type=Path, default=None, help="also dump per-file scores to this JSON file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python " + shlex.join(sys.argv if argv is None else ["benchmarks/quality.py", *argv])
    torch.set_num_threads(2)
    try:
        files, lossy = read_list(args.list, args.root)
        for path in lossy:
            _warn(f"excluding {path}: lossy origin")
        if args.limit is not None:
            files = files[: args.limit]
        systems = build_systems(args.systems, args.rate)
        if not systems:
            raise VQAudioError("no system can run here; see the warnings above")
        results = evaluate(systems, files, args.root, args.rate)
    except (VQAudioError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    rows = summarise(systems, results)
    table = markdown_table(rows)
    date = dt.date.today().isoformat()
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Keep what a writer put above the generated section (a title, what the file is about); replace the rest.
    preface = ""
    if args.out.is_file():
        previous = args.out.read_text(encoding="utf-8")
        preface = previous[: max(0, previous.find("## Quality"))]
    args.out.write_text(preface + render_report(table, command, date, len(files), lossy), encoding="utf-8")
    if args.json is not None:
        dump = {
            "command": command,
            "date": date,
            "excluded_lossy": [str(p) for p in lossy],
            "summary": [asdict(r) for r in rows],
            "per_file": [asdict(r) for r in results],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        # NaN is not JSON; null keeps the file readable by strict parsers.
        args.json.write_text(json.dumps(_nan_to_none(dump), indent=2) + "\n", encoding="utf-8")
    return 0


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
