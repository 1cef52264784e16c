"""What the API accepts as audio (a path, or an array at a stated rate), turned into mono blocks at a model's rate."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from vqaudio.audio import check_samples, open_audio_stream, resample, to_mono
from vqaudio.errors import VQAudioError

AudioInput = str | os.PathLike[str] | np.ndarray | torch.Tensor


def audio_blocks(
    audio: AudioInput, sample_rate: int | None, target_rate: int
) -> tuple[Iterable[torch.Tensor], int, int]:
    """Any input -> (mono float blocks ``[T_i]`` at ``target_rate``, original rate, original channels).

    A path is streamed block by block; an array ``[T]`` or ``[C, T]`` needs ``sample_rate`` and comes back
    as one block. Integer PCM is scaled to [-1, 1) as a sound file reader would.
    """
    if isinstance(audio, (str, os.PathLike)):
        stream = open_audio_stream(audio, target_rate)
        return stream, stream.original_sample_rate, stream.original_channels
    if sample_rate is None:
        raise VQAudioError("sample_rate is required when encoding an array")
    if sample_rate <= 0:
        raise VQAudioError(f"sample_rate must be positive, got {sample_rate}")
    x = torch.as_tensor(audio)
    if not x.is_floating_point():
        if x.dtype not in (torch.int8, torch.int16, torch.int32):
            raise VQAudioError(f"audio must be float or int8/16/32 PCM, got {x.dtype}")
        x = x.float() / float(2 ** (torch.iinfo(x.dtype).bits - 1))
    x = x.float()
    if x.dim() == 1:
        x = x[None]
    if x.dim() != 2:
        raise VQAudioError(f"audio must be [T] or [C, T], got shape {tuple(x.shape)}")
    if x.shape[-1] == 0:
        raise VQAudioError("audio is empty")
    check_samples(x, "input audio")
    channels = x.shape[0]
    x = resample(to_mono(x) if channels > 1 else x, sample_rate, target_rate)
    return [x[0]], sample_rate, channels


def read_past(stream: Iterator[torch.Tensor], limit: int) -> tuple[list[torch.Tensor], int]:
    """Whole float blocks from ``stream`` until more than ``limit`` samples are read (or it ends), and how many
    were read; the rest of ``stream`` is left unread."""
    head: list[torch.Tensor] = []
    read = 0
    for block in stream:
        head.append(block.float())
        read += block.numel()
        if read > limit:
            break
    return head, read
