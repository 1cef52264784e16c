"""Voices for speaker-conditioned models: a reference clip turned into a speaker embedding, and the checks on one."""

from __future__ import annotations

import torch

from vqaudio.errors import VQAudioError
from vqaudio.inputs import AudioInput, audio_blocks, read_past
from vqaudio.models.base import CodecModel
from vqaudio.models.conditional import ConditionalVQVAE

# Seconds of a voice reference that the speaker embedding is computed from.
REFERENCE_SECONDS = 30.0


def voiced(model: CodecModel, name: str) -> ConditionalVQVAE:
    """``model`` as a speaker-conditioned model, or a one-line error naming it."""
    if not isinstance(model, ConditionalVQVAE):
        raise VQAudioError(f"{name} does not take a voice: only speaker-conditioned models do")
    return model


def check_speaker(model: CodecModel, speaker: torch.Tensor | None, name: str) -> None:
    """Refuse a speaker embedding that ``model`` cannot take (``None``, the model's default voice, always fits)."""
    if speaker is None:
        return
    dim = voiced(model, name).speaker_config.dim
    if speaker.shape != (dim,) or not bool(torch.isfinite(speaker).all()):
        raise VQAudioError(f"a speaker embedding for {name} is {dim} finite numbers")


@torch.inference_mode()
def reference_embedding(model: CodecModel, audio: AudioInput, sample_rate: int | None, name: str) -> torch.Tensor:
    """The voice of a reference clip (a path or ``[T]``/``[C, T]`` at ``sample_rate``) as an embedding ``[S]``,
    from its first ``REFERENCE_SECONDS``."""
    conditional = voiced(model, name)
    limit = int(REFERENCE_SECONDS * model.sample_rate)
    blocks, _, _ = audio_blocks(audio, sample_rate, model.sample_rate)
    head, read = read_past(iter(blocks), limit)
    if read == 0:
        raise VQAudioError("the voice reference is empty")
    return conditional.speaker_embedding(torch.cat(head)[:limit][None, None])[0]
