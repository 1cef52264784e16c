"""Audio manifests: a TSV of ``path, duration, speaker, sample_rate`` rows, and the scanners that write them.

Paths in a manifest are stored relative to the manifest's folder when they lie below it, absolute otherwise.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vqaudio.atomic import write_atomic
from vqaudio.errors import VQAudioError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".opus")
COLUMNS = ("path", "duration", "speaker", "sample_rate")


@dataclass(frozen=True)
class ManifestEntry:
    path: Path
    duration: float  # seconds
    speaker: str
    sample_rate: int


def _speaker_of(path: Path, root: Path) -> str:
    """LibriSpeech layout ``<subset>/<speaker>/<chapter>/x.flac`` gives the speaker folder; else the parent."""
    rel = path.relative_to(root).parts
    for i, part in enumerate(rel[:-1]):
        if part.startswith(("train-", "dev-", "test-")) and i + 2 < len(rel):
            return rel[i + 1]
    return rel[-2] if len(rel) > 1 else root.name


def read_exclude_list(path: str | Path | None) -> list[str]:
    """Lines of an exclusion list (e.g. ``speech/dev.list``); blank lines and ``#`` comments are skipped."""
    if path is None:
        return []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise VQAudioError(f"{path}: cannot read exclusion list ({e.strerror})") from None
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def is_excluded(path: Path, exclude: Sequence[str]) -> bool:
    """True when ``path`` ends with one of the (relative) paths in ``exclude``."""
    p = path.as_posix()
    return any(p == e or p.endswith("/" + e.lstrip("/")) for e in exclude)


def scan_audio(
    roots: Iterable[str | Path],
    *,
    exclude: Sequence[str] = (),
    min_sample_rate: int = 0,
    min_duration: float = 0.0,
) -> list[ManifestEntry]:
    """Find audio files below ``roots`` (files or folders), read their headers, and describe them.

    Files libsndfile cannot read are skipped, as are excluded ones and those below the rate/duration limits.
    """
    import soundfile as sf

    entries: list[ManifestEntry] = []
    for root in map(Path, roots):
        if not root.exists():
            raise VQAudioError(f"{root}: no such file or directory")
        files = (
            [root]
            if root.is_file()
            else sorted(Path(dp) / f for dp, _, fs in os.walk(root) for f in fs if f.lower().endswith(AUDIO_SUFFIXES))
        )
        base = root if root.is_dir() else root.parent
        for f in files:
            if is_excluded(f.resolve(), exclude) or is_excluded(f, exclude):
                continue
            try:
                info = sf.info(str(f))
            except (sf.LibsndfileError, RuntimeError, OSError):
                continue
            duration = info.frames / info.samplerate if info.samplerate else 0.0
            if info.samplerate < min_sample_rate or duration < max(min_duration, 1e-9):
                continue
            entries.append(ManifestEntry(f, duration, _speaker_of(f, base), int(info.samplerate)))
    return entries


def write_manifest(entries: Sequence[ManifestEntry], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    text = io.StringIO()
    w = csv.writer(text, delimiter="\t", lineterminator="\n")
    w.writerow(COLUMNS)
    for e in entries:
        p = e.path.resolve()
        stored = p.relative_to(base) if p.is_relative_to(base) else p
        w.writerow([stored.as_posix(), f"{e.duration:.3f}", e.speaker, e.sample_rate])
    write_atomic(path, text.getvalue().encode("utf-8"))
    return path


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise VQAudioError(f"{path}: cannot read manifest ({e.strerror})") from None
    rows = list(csv.reader(text.splitlines(), delimiter="\t"))
    if not rows or tuple(rows[0][: len(COLUMNS)]) != COLUMNS:
        raise VQAudioError(f"{path}: not a vqaudio manifest (expected header {' '.join(COLUMNS)})")
    entries = []
    for n, row in enumerate(rows[1:], start=2):
        try:
            p = Path(row[0])
            entries.append(ManifestEntry(p if p.is_absolute() else path.parent / p, float(row[1]), row[2], int(row[3])))
        except (IndexError, ValueError):
            raise VQAudioError(f"{path}:{n}: malformed manifest row") from None
    return entries


def collect_entries(
    sources: tuple[str, ...], exclude_list: str | None, min_sample_rate: int = 0
) -> list[ManifestEntry]:
    """Manifests (``.tsv``) are read as they are, file lists (``.list``, one path a line) and folders are
    scanned. Excluded paths are dropped."""
    exclude = read_exclude_list(exclude_list)
    entries: list[ManifestEntry] = []
    for src in sources:
        if src.endswith(".list"):
            entries += scan_audio(read_exclude_list(src), exclude=exclude, min_sample_rate=min_sample_rate)
        elif src.endswith(".tsv"):
            entries += [
                e
                for e in read_manifest(src)
                if not is_excluded(e.path.resolve(), exclude) and e.sample_rate >= min_sample_rate
            ]
        else:
            entries += scan_audio([src], exclude=exclude, min_sample_rate=min_sample_rate)
    return entries
