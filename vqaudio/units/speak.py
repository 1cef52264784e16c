"""Units of one utterance and back: :func:`units` (audio -> units, optionally deduplicated) and :func:`speak`
(units -> speech, in the voice of a reference clip for a speaker-conditioned model).

    import vqaudio
    from vqaudio.units import speak, units

    tok = vqaudio.load("units-16k")
    u = units(tok, "examples/hello.wav", dedup=True)        # Units: units, durations, frame_rate, model
    audio = speak(tok, u, voice="examples/voice2.wav")      # AudioData [1, T] at 16 kHz
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from vqaudio.audio import AudioData, save_audio
from vqaudio.errors import VQAudioError
from vqaudio.inputs import AudioInput
from vqaudio.tokenizer import Tokenizer, load
from vqaudio.units.formats import Utterance, expand, read_units
from vqaudio.units.formats import dedup as merge_runs


@dataclass(frozen=True)
class Units:
    """One utterance's units.

    Attributes:
        units: ``[N]`` int64, one per frame, or per run of equal frames when ``durations`` is given.
        durations: ``[N]`` frames of each unit (deduplicated units), else ``None``.
        frame_rate: frames per second; unit ``n`` (expanded) covers samples ``[n * hop, (n + 1) * hop)`` at the
            model's rate, ``hop = sample_rate / frame_rate``.
        model: the model that made them.
        codebook: the codebook they were taken from (0 for a units model).
    """

    units: np.ndarray
    durations: np.ndarray | None
    frame_rate: float
    model: str
    codebook: int = 0

    def expanded(self) -> np.ndarray:
        """One unit per frame ``[F]``."""
        if self.durations is None:
            return self.units
        return np.asarray(expand(self.units.tolist(), self.durations.tolist()), dtype=np.int64)


def units(
    tok: Tokenizer, audio: AudioInput, sample_rate: int | None = None, *, dedup: bool = False, codebook: int = 0
) -> Units:
    """The units of ``audio`` (a path, or ``[T]``/``[C, T]`` at ``sample_rate``): codebook ``codebook`` of the codes
    (a units model has one), with runs of equal units merged when ``dedup``."""
    if not 0 <= codebook < tok.num_codebooks or tok.model.codebook_strides:
        raise VQAudioError(f"{tok.name} has no codebook {codebook} of units at one frame rate")
    row = tok.encode(audio, sample_rate, n_codebooks=codebook + 1).codes[codebook].tolist()
    if not dedup:
        return Units(np.asarray(row, dtype=np.int64), None, tok.frame_rate, tok.name, codebook)
    kept, runs = merge_runs(row)
    return Units(np.asarray(kept, dtype=np.int64), np.asarray(runs, dtype=np.int64), tok.frame_rate, tok.name, codebook)


def _frames(u: Units | Utterance | Sequence[int] | np.ndarray, tok: Tokenizer) -> np.ndarray:
    if isinstance(u, Units):
        if u.codebook != 0:
            raise VQAudioError(f"units of codebook {u.codebook} cannot be decoded without the codebooks before it")
        return u.expanded()
    if isinstance(u, Utterance):
        return np.asarray(u.expanded(), dtype=np.int64)
    arr = np.asarray(u)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise VQAudioError(f"units must be a 1-D sequence of integers, got {arr.dtype} {list(arr.shape)}")
    return arr.astype(np.int64)


@torch.inference_mode()
def speak(
    tok: Tokenizer,
    u: Units | Utterance | Sequence[int] | np.ndarray,
    voice: AudioInput | None = None,
    sample_rate: int | None = None,
    *,
    vocoder: str | None = None,
) -> AudioData:
    """Speech from units (deduplicated ones are expanded first), in the voice of ``voice`` (a reference clip: a
    path, or an array at ``sample_rate``) for a speaker-conditioned model, else in the model's default voice."""
    return _speak(tok, _frames(u, tok), _voice(tok, voice, sample_rate), vocoder)


def _voice(tok: Tokenizer, voice: AudioInput | None, sample_rate: int | None = None) -> torch.Tensor | None:
    if voice is None:
        return None
    if not tok.conditional:
        raise VQAudioError(f"{tok.name} is not speaker-conditioned: it speaks in the voice its units carry")
    return tok.speaker_embedding(voice, sample_rate)


def _speak(tok: Tokenizer, frames: np.ndarray, speaker: torch.Tensor | None, vocoder: str | None) -> AudioData:
    if not frames.size:
        raise VQAudioError("no units to speak")
    if int(frames.max()) >= tok.codebook_size:
        raise VQAudioError(f"unit {int(frames.max())} is outside {tok.name}'s {tok.codebook_size} units")
    return tok.decode(torch.from_numpy(frames)[None], vocoder=vocoder, speaker=speaker)


def _target(out_dir: Path, utt_id: str) -> Path:
    """``out_dir/<id>.wav``; an id that would leave ``out_dir`` is refused."""
    rel = PurePosixPath(utt_id)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise VQAudioError(f"utterance id {utt_id!r} is not a relative path inside the output folder")
    return out_dir / Path(*rel.parts[:-1]) / (rel.parts[-1] + ".wav")


@torch.inference_mode()
def resynth_units(
    path: str | Path,
    out_dir: str | Path,
    *,
    voice: AudioInput | None = None,
    model: str | None = None,
    vocoder: str | None = None,
    overwrite: bool = False,
) -> tuple[int, float]:
    """Speak every utterance of a units file (:func:`vqaudio.units.formats.read_units`) into ``out_dir/<id>.wav``;
    returns the utterances and seconds written. The model is ``model``, else the one the units' metadata names,
    else units-16k; units made by another encoder or codebook are refused. Nothing is written if any target exists
    (without ``overwrite``)."""
    utts, meta = read_units(path)
    tok = load(model or (meta.model if meta is not None else "units-16k"))
    if meta is not None:
        if meta.codes_checksum != tok.codes_checksum:
            raise VQAudioError(
                f"{path}: the units were made by {meta.model} (codes checksum {meta.codes_checksum[:16]}), not by the "
                f"loaded {tok.name} ({tok.codes_checksum[:16]}); pass --model with the model that made them"
            )
        if meta.codebook != 0:
            raise VQAudioError(f"{path}: units of codebook {meta.codebook} cannot be decoded alone")
    out = Path(out_dir)
    targets = [_target(out, u.id) for u in utts]
    if len(set(targets)) != len(targets):
        raise VQAudioError(f"{path}: two utterances share an id; each needs its own output file")
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise VQAudioError(f"{existing[0]} exists ({len(existing)} outputs do); pass --force to overwrite them")
    speaker = _voice(tok, voice)
    seconds = 0.0
    for utt, target in zip(utts, targets, strict=True):
        audio = _speak(tok, np.asarray(utt.expanded(), dtype=np.int64), speaker, vocoder)
        save_audio(target, audio.samples, audio.sample_rate, overwrite=overwrite)
        seconds += audio.samples.shape[-1] / audio.sample_rate
    return len(utts), seconds
