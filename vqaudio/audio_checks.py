"""What can be wrong with an audio file before and while it is read, said in user terms.

:mod:`vqaudio.audio` calls these: :func:`check_readable` turns the file-system problems libsndfile reports
only as "System error." into clear messages, :func:`describe_read_error` explains a libsndfile failure, and
:func:`warn_if_truncated` notices a file that holds less audio than its header declares. :func:`quiet_decoder`
keeps libmpg123's own notes off the terminal.

A WAV cut short (a partial download, a full disk) is the case libsndfile hides: it trims the frame count it
reports to what the file holds, so a half file reads as half the audio with no error. Its RIFF header still
says how long the data was meant to be, so :func:`declared_wav_frames` reads that header itself::

    "RIFF" size "WAVE" | "fmt " size  format channels rate byte_rate block_align bits ... | "data" size  samples...
                                                                    ^ bytes per frame            ^ declared bytes
"""

from __future__ import annotations

import os
import stat
import struct
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import soundfile as sf

from vqaudio.errors import AudioError, VQAudioWarning

# Suffixes of audio formats libsndfile cannot decode. When libsndfile does not recognise such a file we
# say "unsupported format" rather than "not an audio file", which would send the user looking for corruption.
FOREIGN_AUDIO_SUFFIXES = frozenset(
    {".m4a", ".m4b", ".mp4", ".aac", ".alac", ".wma", ".webm", ".mka", ".amr", ".ape", ".wv", ".ac3", ".mp2"}
)

# A RIFF file lists its chunks one after another; real WAVs put "data" within the first few. The bound keeps a
# hostile file from making us walk millions of empty chunks.
_MAX_CHUNKS = 64
# Writers that stream a WAV of unknown length (a pipe, a recorder) put 0, 0xFFFFFFFF or another huge placeholder
# (sox: 0x7FFFF000) in the data size. Sizes from there up are taken as "not said": a real WAV that large (over
# 2 GB) only loses the truncation check, where trusting a placeholder would warn about every piped file.
_PLACEHOLDER_SIZE = 0x7FFFF000


@contextmanager
def quiet_decoder(name: str, mpeg: bool = False) -> Iterator[None]:
    """Send file descriptor 2 to /dev/null while an MP3 (``name`` ends in .mp3, or ``mpeg``) is opened or read.

    libsndfile decodes MP3 with libmpg123, which writes its notes on a damaged stream ("Note: Illegal
    Audio-MPEG-Header ...", "Trying to resync...", several lines) straight to file descriptor 2, below Python.
    The problem reaches the user anyway, as the one error line the reader raises. Hold this only around the
    library call itself: anything Python writes to stderr meanwhile (a progress bar) is lost too.
    """
    if not mpeg and Path(name).suffix.lower() != ".mp3":
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2: nothing to keep quiet
        yield
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
        finally:
            os.close(null)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def one_line(text: str) -> str:
    """Collapse whitespace so library messages fit the one-line error convention."""
    return " ".join(text.split())


def check_readable(name: str) -> None:
    """Raise :class:`AudioError` for a missing, unreadable, empty or directory path."""
    try:
        info = os.stat(name)
    except FileNotFoundError as exc:
        raise AudioError(f"{name}: no such file") from exc
    except OSError as exc:
        raise AudioError(f"{name}: cannot access file ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(info.st_mode):
        raise AudioError(f"{name}: is a directory, not an audio file")
    if stat.S_ISREG(info.st_mode) and info.st_size == 0:
        raise AudioError(f"{name}: file is empty (0 bytes)")
    try:
        with open(name, "rb"):
            pass
    except OSError as exc:
        raise AudioError(f"{name}: cannot open file ({exc.strerror or exc})") from exc


def describe_read_error(name: str, exc: sf.SoundFileError) -> str:
    """Explain a libsndfile failure on an existing, non-empty file in user terms."""
    detail = one_line(getattr(exc, "error_string", "") or str(exc)).rstrip(".")
    suffix = Path(name).suffix.lower()
    if "format not recognised" in detail.lower():
        readable = sf.available_formats()
        if suffix in FOREIGN_AUDIO_SUFFIXES or (suffix == ".mp3" and "MP3" not in readable):
            return (
                f"unsupported audio format '{suffix}' (libsndfile {sf.__libsndfile_version__} reads "
                f"{', '.join(sorted(readable))}); convert it to .wav or .flac first"
            )
        return "not a recognised audio file (no valid audio header)"
    if "does not exist" in detail.lower():
        # libsndfile's mp3 reader says this for a damaged stream; the file was checked to exist already.
        return "corrupt or truncated audio file (the decoder could not open it)"
    return f"corrupt or truncated audio file ({detail})"


def declared_wav_frames(name: str) -> int | None:
    """Frames a RIFF/WAVE file's header declares (data chunk size / block align); ``None`` for other files,
    for a header that does not say (a streamed WAV), or when the header cannot be parsed (libsndfile then
    reports the problem)."""
    chunk = struct.Struct("<4sI")
    try:
        with open(name, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
                return None
            block_align = 0
            for _ in range(_MAX_CHUNKS):
                raw = f.read(chunk.size)
                if len(raw) < chunk.size:
                    return None
                cid, size = chunk.unpack(raw)
                if cid == b"fmt ":
                    fmt = f.read(min(size, 16))  # only block_align (bytes 12-13) is needed
                    if size < 14 or len(fmt) < 14:
                        return None
                    (block_align,) = struct.unpack_from("<H", fmt, 12)
                    f.seek(size - len(fmt) + (size & 1), os.SEEK_CUR)
                elif cid == b"data":
                    if not block_align or size == 0 or size >= _PLACEHOLDER_SIZE:
                        return None
                    return size // block_align
                else:
                    f.seek(size + (size & 1), os.SEEK_CUR)  # chunks are padded to an even length
    except OSError:
        return None
    return None


def warn_if_truncated(name: str, declared: int, readable: int, sample_rate: int) -> bool:
    """Warn (:class:`VQAudioWarning`) when ``readable`` frames are fewer than the ``declared`` ones; return
    whether it warned."""
    if readable >= declared:
        return False
    warnings.warn(
        VQAudioWarning(
            f"{name} is truncated: its header declares {declared} samples ({declared / sample_rate:.2f} s) "
            f"but only {readable} ({readable / sample_rate:.2f} s) can be read"
        ),
        stacklevel=3,
    )
    return True
