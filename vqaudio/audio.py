"""Audio file I/O: read anything libsndfile reads into float32 ``[C, T]`` tensors, write wav/flac safely.

Every problem a user can cause (missing, empty, corrupt, truncated or non-audio files, NaN/Inf samples,
refusing to overwrite) surfaces as a one-line :class:`~vqaudio.errors.AudioError` that names the file;
no raw soundfile/libsndfile exception escapes this module.

Reading goes through python-soundfile, so the readable formats are those of the linked libsndfile
(``soundfile.__libsndfile_version__``): wav, flac, ogg (vorbis/opus) and many more, plus mp3 from
libsndfile 1.1 on. Formats libsndfile has no decoder for (m4a/aac, wma, ...) are reported as unsupported.

``soxr`` is imported inside :func:`resample` so that importing this module costs only torch, numpy and
soundfile.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from vqaudio.atomic import commit, temp_beside
from vqaudio.audio_checks import (
    check_readable,
    declared_wav_frames,
    describe_read_error,
    one_line,
    quiet_decoder,
    warn_if_truncated,
)
from vqaudio.errors import AudioError

__all__ = [
    "AudioData",
    "AudioStream",
    "audio_duration",
    "check_samples",
    "load_audio",
    "open_audio_stream",
    "resample",
    "save_audio",
    "to_mono",
]

# Output container chosen by suffix -> (libsndfile format, subtype). 16-bit PCM is what every player and
# every evaluation tool accepts, and is lossless for codec output that was 16-bit to begin with.
_WRITE_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
}

# A sanity bound for save_audio: anything wider is almost surely a soundfile-style [T, C] array passed
# where [C, T] was expected, and writing it would produce a file with thousands of channels.
_MAX_SAVE_CHANNELS = 64


@dataclass(frozen=True)
class AudioData:
    """Decoded audio: ``samples`` is float32 ``[C, T]`` with values nominally in [-1, 1]."""

    samples: torch.Tensor
    sample_rate: int

    @property
    def num_channels(self) -> int:
        """Number of channels ``C``."""
        return int(self.samples.shape[0])

    @property
    def num_samples(self) -> int:
        """Number of samples per channel ``T``."""
        return int(self.samples.shape[-1])

    @property
    def duration(self) -> float:
        """Length in seconds, ``T / sample_rate``."""
        return self.num_samples / self.sample_rate


def check_samples(samples: torch.Tensor, source: str) -> None:
    """Raise :class:`AudioError` if ``samples`` (any shape, usually ``[C, T]``) is empty or not finite.

    ``source`` names where the samples came from (a file path) and starts the error message.
    """
    if samples.numel() == 0:
        raise AudioError(f"{source}: contains no audio samples (zero length)")
    # One sum is NaN/Inf whenever a sample is, and costs far less than an elementwise test over the whole
    # signal; only when it is not finite (bad input, or finite samples large enough to overflow it) is every
    # sample tested.
    if bool(torch.isfinite(samples.sum())):
        return
    finite = torch.isfinite(samples)
    if not bool(finite.all()):
        bad = (~finite).nonzero()
        first = tuple(int(i) for i in bad[0])
        where = f"channel {first[0]}, sample {first[1]}" if len(first) == 2 else f"index {first}"
        raise AudioError(f"{source}: contains {bad.shape[0]} NaN/Inf sample(s), the first at {where}")


def to_mono(samples: torch.Tensor) -> torch.Tensor:
    """Downmix ``[C, T]`` to ``[1, T]`` by averaging the channels (equal weight, no normalisation)."""
    if samples.ndim != 2:
        raise ValueError(f"to_mono expects [C, T] samples, got shape {tuple(samples.shape)}")
    return samples.mean(dim=0, keepdim=True)


def resample(samples: torch.Tensor, orig_sr: float, target_sr: float) -> torch.Tensor:
    """Resample ``[C, T]`` at ``orig_sr`` to float32 ``[C, T']`` at ``target_sr`` with soxr 'HQ'.

    ``T' = round(T * target_sr / orig_sr)``; the rates need not be whole numbers (speed perturbation resamples
    from ``sr * factor``). Returns ``samples`` as float32 unchanged when the rates are
    equal. Not differentiable: the work is done on a detached CPU copy and the result lives on the input's
    device.
    """
    if samples.ndim != 2:
        raise ValueError(f"resample expects [C, T] samples, got shape {tuple(samples.shape)}")
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr:
        return samples.to(torch.float32)

    import soxr  # lazy: only callers that resample pay for it

    # soxr works on [T, C] frames, the transpose of our layout.
    frames = np.ascontiguousarray(samples.detach().to("cpu", torch.float32).numpy().T)
    out = soxr.resample(frames, orig_sr, target_sr, quality="HQ")
    return torch.from_numpy(np.ascontiguousarray(out.T, dtype=np.float32)).to(samples.device)


def load_audio(path: str | os.PathLike[str], *, sample_rate: int | None = None, mono: bool = False) -> AudioData:
    """Read an audio file into float32 ``[C, T]`` (``[1, T]`` when ``mono``).

    Integer formats are scaled to [-1, 1); float formats are returned as stored. ``mono`` averages the
    channels; ``sample_rate`` then resamples (downmixing first halves the resampling work for stereo).

    Raises:
        AudioError: the file is missing, a directory, empty, not audio, truncated, in a format this
            libsndfile cannot decode, has zero frames, or holds NaN/Inf samples.
        ValueError: ``sample_rate`` is not positive.

    A WAV that holds fewer samples than its header declares is read as far as it goes, with a
    :class:`~vqaudio.errors.VQAudioWarning` that gives both lengths.
    """
    if sample_rate is not None and sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    name = os.fspath(path)
    check_readable(name)

    try:
        with quiet_decoder(name):
            data, file_sr = sf.read(name, dtype="float32", always_2d=True)
    except sf.SoundFileError as exc:
        raise AudioError(f"{name}: {describe_read_error(name, exc)}") from exc
    except (OSError, RuntimeError, ValueError) as exc:
        # Defensive: soundfile's own checks and the OS can fail in ways libsndfile does not report.
        raise AudioError(f"{name}: cannot read audio ({one_line(str(exc))})") from exc

    if data.shape[0] == 0:
        raise AudioError(f"{name}: contains no audio frames (empty or truncated before the audio data)")
    warn_if_truncated(name, declared_wav_frames(name) or 0, data.shape[0], int(file_sr))
    # soundfile gives [T, C]; copy into our contiguous [C, T] layout.
    samples = torch.from_numpy(np.ascontiguousarray(data.T))
    check_samples(samples, name)

    if mono and samples.shape[0] > 1:
        samples = to_mono(samples)
    if sample_rate is not None and sample_rate != file_sr:
        num_in = samples.shape[-1]
        samples = resample(samples, int(file_sr), sample_rate)
        if samples.shape[-1] == 0:
            raise AudioError(
                f"{name}: too short to resample ({num_in} sample(s) at {file_sr} Hz -> 0 at {sample_rate} Hz)"
            )
    return AudioData(samples=samples, sample_rate=int(sample_rate or file_sr))


def audio_duration(path: str | os.PathLike[str]) -> float | None:
    """Seconds of audio the file at ``path`` declares, or ``None`` when it cannot tell (for progress bars: the
    readers report the problem)."""
    try:
        with quiet_decoder(os.fspath(path)):
            return float(sf.info(os.fspath(path)).duration)
    except (sf.SoundFileError, OSError, RuntimeError, ValueError):
        return None


@dataclass
class AudioStream:
    """A file read block by block as mono float32 at ``sample_rate``: bounded memory for any length.

    Attributes:
        path: the file.
        sample_rate: rate of the yielded blocks.
        original_sample_rate, original_channels, original_frames: what the file holds.
        declared_frames: what its header declares, if more than ``original_frames`` (a truncated WAV); else 0.

    A file that ends before the length it declares is read as far as it goes, with a
    :class:`~vqaudio.errors.VQAudioWarning` that gives both lengths: when it is opened for a WAV (whose header
    says), at the end of the reading for the other formats.
    """

    path: str
    sample_rate: int
    original_sample_rate: int
    original_channels: int
    original_frames: int
    block_frames: int
    declared_frames: int = 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Yield ``[T_i]`` float32 blocks; raise :class:`AudioError` on NaN/Inf or a read failure."""
        import soxr

        stream = None
        if self.sample_rate != self.original_sample_rate:
            stream = soxr.ResampleStream(self.original_sample_rate, self.sample_rate, 1, dtype="float32", quality="HQ")
        offset = 0
        try:
            with quiet_decoder(self.path):
                f = sf.SoundFile(self.path)
            with f:
                while True:
                    with quiet_decoder(self.path, f.format == "MPEG"):
                        data = f.read(self.block_frames, dtype="float32", always_2d=True)
                    last = data.shape[0] < self.block_frames
                    block = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
                    if block.numel():
                        check_samples(block[None], f"{self.path} (from sample {offset})")
                    offset += data.shape[0]
                    if stream is not None:
                        block = torch.from_numpy(stream.resample_chunk(block.numpy(), last=last).copy())
                    if block.numel():
                        yield block
                    if last:
                        break
        except sf.SoundFileError as exc:
            raise AudioError(f"{self.path}: {describe_read_error(self.path, exc)}") from exc
        if offset == 0:
            raise AudioError(f"{self.path}: contains no audio frames (empty or truncated before the audio data)")
        warn_if_truncated(self.path, self.original_frames, offset, self.original_sample_rate)


def open_audio_stream(
    path: str | os.PathLike[str], sample_rate: int | None = None, block_seconds: float = 10.0
) -> AudioStream:
    """Open ``path`` for block-wise mono reading at ``sample_rate`` (default: the file's rate).

    Raises:
        AudioError: as :func:`load_audio` for files that cannot be opened.
    """
    name = os.fspath(path)
    check_readable(name)
    try:
        with quiet_decoder(name):
            info = sf.info(name)
    except sf.SoundFileError as exc:
        raise AudioError(f"{name}: {describe_read_error(name, exc)}") from exc
    except (OSError, RuntimeError, ValueError) as exc:
        raise AudioError(f"{name}: cannot read audio ({one_line(str(exc))})") from exc
    if info.frames == 0:
        raise AudioError(f"{name}: contains no audio frames (empty or truncated before the audio data)")
    rate = int(sample_rate or info.samplerate)
    if rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    declared = declared_wav_frames(name) or 0
    warn_if_truncated(name, declared, int(info.frames), int(info.samplerate))
    return AudioStream(
        name,
        rate,
        int(info.samplerate),
        int(info.channels),
        int(info.frames),
        max(1024, int(block_seconds * info.samplerate)),
        declared if declared > info.frames else 0,
    )


def save_audio(
    path: str | os.PathLike[str],
    samples: torch.Tensor | np.ndarray,
    sample_rate: int,
    *,
    overwrite: bool = False,
) -> None:
    """Write ``[C, T]`` or ``[T]`` float samples as 16-bit PCM ``.wav`` or ``.flac`` (chosen by suffix).

    Samples are clipped to [-1, 1] before integer encoding. Missing parent directories are created. The
    file is written to a temporary name in the target directory and moved into place with
    ``os.replace``, so a crash never leaves a half-written output nor destroys an existing file.

    Raises:
        AudioError: unsupported suffix, the file exists and ``overwrite`` is False, the target is a
            directory, the samples are empty or hold NaN/Inf, or the write fails.
        ValueError: ``samples`` has a bad shape or a non-float dtype, or ``sample_rate`` is not positive.
    """
    frames = _as_frames(samples, os.fspath(path))
    _write_frames(path, [frames], sample_rate, frames.shape[1], overwrite)


def save_audio_blocks(
    path: str | os.PathLike[str],
    blocks: Iterable[torch.Tensor | np.ndarray],
    sample_rate: int,
    *,
    channels: int = 1,
    overwrite: bool = False,
) -> None:
    """Like :func:`save_audio`, but from an iterable of ``[C, T_i]``/``[T_i]`` blocks: long outputs are written
    as they are produced, in bounded memory. The file appears (atomically) only once every block is written."""
    name = os.fspath(path)
    _write_frames(path, (_as_frames(b, name) for b in blocks), sample_rate, channels, overwrite)


def _write_frames(
    path: str | os.PathLike[str], frame_blocks: Iterable[np.ndarray], sample_rate: int, channels: int, overwrite: bool
) -> None:
    """Atomically write ``[T_i, C]`` float32 blocks (already checked and clipped by :func:`_as_frames`)."""
    name = os.fspath(path)
    target = Path(name)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    fmt = _WRITE_FORMATS.get(target.suffix.lower())
    if fmt is None:
        allowed = ", ".join(_WRITE_FORMATS)
        raise AudioError(f"{name}: cannot write '{target.suffix or '(no suffix)'}' files; use one of {allowed}")
    if target.is_dir():
        raise AudioError(f"{name}: is a directory, cannot write audio there")
    if target.exists() and not overwrite:
        raise AudioError(f"{name}: already exists; use --force to overwrite")

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AudioError(f"{name}: cannot create directory {target.parent} ({exc.strerror or exc})") from exc

    try:
        tmp = temp_beside(target)
    except OSError as exc:
        raise AudioError(f"{target}: cannot create a file in {target.parent} ({exc.strerror or exc})") from exc
    try:
        written = 0
        with sf.SoundFile(tmp, "w", samplerate=sample_rate, channels=channels, format=fmt[0], subtype=fmt[1]) as f:
            for frames in frame_blocks:
                if frames.shape[1] != channels:
                    raise ValueError(f"block has {frames.shape[1]} channels, expected {channels}")
                f.write(frames)
                written += frames.shape[0]
        if written == 0:
            raise AudioError(f"{name}: no audio to write")
        commit(tmp, target)
    except (sf.SoundFileError, OSError, RuntimeError, ValueError) as exc:
        raise AudioError(f"{name}: cannot write audio ({one_line(str(exc))})") from exc
    finally:
        # After a successful os.replace the temp name no longer exists; otherwise clean it up.
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _as_frames(samples: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    """Check ``[C, T]``/``[T]`` float samples; return them clipped as float32 ``[T, C]`` for soundfile."""
    if isinstance(samples, torch.Tensor):
        tensor = samples.detach().cpu()
    elif isinstance(samples, np.ndarray):
        tensor = torch.from_numpy(np.asarray(samples))
    else:
        raise ValueError(f"samples must be a torch.Tensor or np.ndarray, got {type(samples).__name__}")
    if not tensor.is_floating_point():
        raise ValueError(f"samples must be floating point in [-1, 1], got dtype {tensor.dtype}")
    if tensor.ndim == 1:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 2 or tensor.shape[0] == 0 or tensor.shape[0] > _MAX_SAVE_CHANNELS:
        raise ValueError(
            f"samples must be [C, T] with 1..{_MAX_SAVE_CHANNELS} channels or [T], got shape "
            f"{tuple(samples.shape)} (transpose soundfile-style [T, C] arrays)"
        )
    tensor = tensor.to(torch.float32)
    check_samples(tensor, name)
    return np.ascontiguousarray(tensor.clamp(-1.0, 1.0).numpy().T)
