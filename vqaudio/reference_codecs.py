"""Reference speech codecs (Codec2, Opus) run through their Debian command-line tools.

Each codec is a callable object: give it a mono float signal ``[T]`` and its sample rate, get back the
decoded signal ``[T]`` at the same rate and length. Decoders add a few milliseconds of delay; that is
left in on purpose, because :func:`vqaudio.evaluation.score` measures and removes it for every system
alike.

The tools come from Debian: ``apt-get install codec2 opus-tools``. ``benchmarks/quality.py`` scores them
beside vqaudio's models and ``vqaudio compare --reference-codecs`` adds them to a listening report.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from vqaudio.errors import VQAudioError

__all__ = [
    "REFERENCE_CODECS",
    "Codec2",
    "CodecRunError",
    "MissingToolError",
    "Opus",
    "ReferenceCodec",
]

_DEBIAN_PACKAGE = {"c2enc": "codec2", "c2dec": "codec2", "opusenc": "opus-tools", "opusdec": "opus-tools"}


class MissingToolError(VQAudioError):
    """A codec's command-line tool is not installed."""


class CodecRunError(VQAudioError):
    """A codec's command-line tool ran but failed."""


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        package = _DEBIAN_PACKAGE.get(tool, tool)
        raise MissingToolError(f"{tool} not found on PATH: apt-get install {package}")
    return path


def _run(args: list[str]) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        detail = lines[-1] if lines else "no output"
        raise CodecRunError(f"{Path(args[0]).name} exited with code {proc.returncode}: {detail}")


def _to_pcm16(x: np.ndarray) -> np.ndarray:
    """``[T]`` float in [-1, 1] -> little-endian int16, clipping what lies outside."""
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")


def _fit_length(x: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad or trim the end of ``x`` to ``length`` samples (decoders round up or down to frames)."""
    if x.size >= length:
        return x[:length]
    return np.pad(x, (0, length - x.size))


def _as_mono(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise VQAudioError(f"reference codecs take a non-empty mono signal [T], got shape {tuple(x.shape)}")
    if sample_rate <= 0:
        raise VQAudioError(f"sample_rate must be positive, got {sample_rate}")
    return x


@dataclass(frozen=True)
class ReferenceCodec:
    """Base of the reference codecs: a name, a nominal bitrate and the tools the codec needs.

    Attributes:
        name: short label used in result tables, e.g. ``"codec2-3200"``.
        bitrate_kbps: the nominal bitrate in kbit/s (the payload rate, without container overhead).
    """

    name: str
    bitrate_kbps: float

    @property
    def tools(self) -> tuple[str, ...]:
        """The executables this codec runs."""
        return ()

    def check(self) -> None:
        """Raise :class:`MissingToolError` naming the Debian package if a tool is not installed."""
        for tool in self.tools:
            _require(tool)

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Encode and decode ``audio`` ``[T]``; return float32 ``[T]`` at ``sample_rate``."""
        raise NotImplementedError


@dataclass(frozen=True)
class Codec2(ReferenceCodec):
    """Codec2 at one of its fixed modes (``"3200"``, ``"1200"``, ``"700C"``, ...).

    Codec2 works on 8 kHz narrowband speech, so the signal is resampled to 8 kHz and back: the missing
    upper band is part of what the codec costs.
    """

    mode: str = "3200"

    _RATE = 8000

    @property
    def tools(self) -> tuple[str, ...]:
        return ("c2enc", "c2dec")

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        x = _as_mono(audio, sample_rate)
        enc, dec = _require("c2enc"), _require("c2dec")
        narrow = soxr.resample(x, sample_rate, self._RATE)
        with tempfile.TemporaryDirectory(prefix="vqaudio-codec2-") as tmp:
            raw_in, bits, raw_out = Path(tmp, "in.raw"), Path(tmp, "out.bit"), Path(tmp, "out.raw")
            _to_pcm16(narrow).tofile(raw_in)
            # A ".bit" name keeps the bit stream headerless; the mode is passed to both tools instead.
            _run([enc, self.mode, str(raw_in), str(bits)])
            _run([dec, self.mode, str(bits), str(raw_out)])
            decoded = np.fromfile(raw_out, dtype="<i2").astype(np.float64) / 32768.0
        # c2enc drops a trailing partial frame; pad at 8 kHz so the resampled length comes out right.
        decoded = _fit_length(decoded, narrow.size)
        wide = soxr.resample(decoded, self._RATE, sample_rate)
        return _fit_length(np.asarray(wide, dtype=np.float32), x.size)


@dataclass(frozen=True)
class Opus(ReferenceCodec):
    """Opus via opusenc/opusdec in hard CBR mode, so the nominal bitrate is the one spent.

    The signal goes in as 16-bit raw PCM at its own rate when Opus has that rate natively (8, 12, 16, 24 or
    48 kHz; else it is resampled to 48 kHz) and comes back as float at that rate; opusdec already drops the
    encoder's pre-skip, so only a small algorithmic delay remains.
    """

    _NATIVE_RATES = (8000, 12000, 16000, 24000, 48000)

    @property
    def tools(self) -> tuple[str, ...]:
        return ("opusenc", "opusdec")

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        x = _as_mono(audio, sample_rate)
        enc, dec = _require("opusenc"), _require("opusdec")
        rate = sample_rate if sample_rate in self._NATIVE_RATES else 48000
        y = soxr.resample(x, sample_rate, rate) if sample_rate != rate else x
        with tempfile.TemporaryDirectory(prefix="vqaudio-opus-") as tmp:
            raw_in, packed, raw_out = Path(tmp, "in.raw"), Path(tmp, "out.opus"), Path(tmp, "out.f32")
            _to_pcm16(y).tofile(raw_in)
            _run(
                [
                    enc, "--quiet", "--raw", "--raw-bits", "16", "--raw-rate", str(rate),
                    "--raw-chan", "1", "--raw-endianness", "0",
                    "--bitrate", f"{self.bitrate_kbps:g}", "--hard-cbr",
                    str(raw_in), str(packed),
                ]
            )  # fmt: skip
            # A non-".wav" output name makes opusdec write headerless samples; --float avoids dither.
            _run([dec, "--quiet", "--rate", str(rate), "--float", str(packed), str(raw_out)])
            decoded = np.fromfile(raw_out, dtype="<f4").astype(np.float64)
        decoded = _fit_length(decoded, y.size)
        if sample_rate != rate:
            decoded = soxr.resample(decoded, rate, sample_rate)
        return _fit_length(np.asarray(decoded, dtype=np.float32), x.size)


# Name -> constructor for every reference system the benchmark knows, in table order.
REFERENCE_CODECS: dict[str, Callable[[], ReferenceCodec]] = {
    "codec2-3200": lambda: Codec2(name="codec2-3200", bitrate_kbps=3.2, mode="3200"),
    "codec2-1200": lambda: Codec2(name="codec2-1200", bitrate_kbps=1.2, mode="1200"),
    "codec2-700C": lambda: Codec2(name="codec2-700C", bitrate_kbps=0.7, mode="700C"),
    "opus-6": lambda: Opus(name="opus-6", bitrate_kbps=6.0),
    "opus-8": lambda: Opus(name="opus-8", bitrate_kbps=8.0),
    "opus-16": lambda: Opus(name="opus-16", bitrate_kbps=16.0),
}
