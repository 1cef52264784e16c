"""A listening report: each input beside what a model makes of it at several bitrates, to hear and to look at.

    from vqaudio.report import build_report
    from vqaudio.report_page import write_report

    tok = vqaudio.load("speech-16k")
    write_report(build_report(["examples/hello.wav"], tok, n_codebooks=[1, 3, 6]), "report.html")

:func:`build_report` gathers the signals and their measures (this module needs only numpy and the model);
:mod:`vqaudio.report_page` draws the spectrograms and writes the page (it needs matplotlib, the ``report``
extra). Every signal of a report is mono at the model's rate and as long as the (clipped) input, so that the
spectrograms of one input share their axes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from vqaudio.audio import open_audio_stream
from vqaudio.errors import ConfigError, VQAudioError
from vqaudio.inputs import read_past
from vqaudio.reference_codecs import REFERENCE_CODECS, Codec2, MissingToolError, Opus, ReferenceCodec
from vqaudio.tokenizer import Tokenizer

__all__ = [
    "DEFAULT_MAX_SECONDS",
    "Report",
    "Row",
    "RowScores",
    "Section",
    "build_report",
    "comparable_codecs",
    "parse_codebooks",
    "read_clip",
]

# 20 s of 16 kHz FLAC is about 0.5 MB of base64 per row: a page of a few inputs stays a few MB.
DEFAULT_MAX_SECONDS = 20.0
# Below this PESQ refuses to measure (and STOI has too few frames to mean much): such clips get no scores.
_MIN_SCORED_SECONDS = 0.25


@dataclass(frozen=True)
class RowScores:
    """Measures of one row against the original (:func:`vqaudio.evaluation.score`, delay-aligned first).

    Attributes:
        pesq_wb: wideband PESQ; None without the ``eval`` extra, NaN where PESQ finds no speech.
        stoi: STOI, 0 to 1; None without the ``eval`` extra.
        mel_distance: mean absolute difference of log10 mel spectrograms (0 for identical signals).
    """

    pesq_wb: float | None
    stoi: float | None
    mel_distance: float


@dataclass(frozen=True)
class Row:
    """One signal of a section.

    Attributes:
        label: what made it: ``"original"``, ``"3 codebooks"``, ``"codec2-1200"``.
        detail: how, in a few words (the vocoder, the codec's tool), or ``""``.
        audio: ``[T]`` float32 at the section's rate.
        bitrate: bits per second spent on it; None for the original.
        scores: measures against the original; None for the original and for clips too short to score.
    """

    label: str
    detail: str
    audio: np.ndarray
    bitrate: float | None
    scores: RowScores | None


@dataclass(frozen=True)
class Section:
    """One input and its rows.

    Attributes:
        source: the input's path as given.
        sample_rate: rate of every row's audio (the model's).
        duration: seconds in each row (the clip).
        full_duration: seconds in the input file when it was clipped, else None.
        rows: the original first, then the model's rows, then the reference codecs'.
    """

    source: str
    sample_rate: int
    duration: float
    full_duration: float | None
    rows: list[Row]


@dataclass(frozen=True)
class Report:
    """Everything a report page shows.

    Attributes:
        model: the model's name; ``model_checksum`` its weights' checksum.
        beam: the code search width used when encoding.
        max_seconds: the clip length inputs were limited to.
        sections: one per input, in the order given.
        notes: what is missing and how to get it (the ``eval`` extra, a codec's tools), one line each.
    """

    model: str
    model_checksum: str
    beam: int
    max_seconds: float
    sections: list[Section]
    notes: list[str] = field(default_factory=list)


def parse_codebooks(text: str | None, tok: Tokenizer) -> list[int]:
    """``"1,3,6"`` -> ``[1, 3, 6]``, each checked against the model; None -> 1, the model's default and all of
    them (for ``speech-16k``: 1, 3, 6), without repeats."""
    if text is None:
        return sorted({1, tok.default_codebooks, tok.num_codebooks})
    values: list[int] = []
    for part in text.split(","):
        # isdecimal, not isdigit: isdigit admits superscripts such as "²", which int() refuses.
        if not part.strip().isdecimal():
            raise ConfigError(f"--n-codebooks takes whole numbers separated by commas, e.g. 1,3,6; got {text!r}")
        k = int(part)
        if not 1 <= k <= tok.num_codebooks:
            raise ConfigError(f"--n-codebooks: {tok.name} has codebooks 1 to {tok.num_codebooks}, got {k}")
        if k not in values:
            values.append(k)
    return values


def read_clip(path: str | os.PathLike[str], sample_rate: int, max_seconds: float) -> tuple[np.ndarray, float | None]:
    """The first ``max_seconds`` of a file as mono float32 ``[T]`` at ``sample_rate``, and the file's whole
    duration in seconds when it was longer (else None). Only the clip is read, so any length is fine."""
    if not math.isfinite(max_seconds) or max_seconds <= 0:
        raise ConfigError(f"--max-seconds must be a positive number of seconds, got {max_seconds}")
    stream = open_audio_stream(path, sample_rate, block_seconds=min(10.0, max_seconds))
    limit = max(1, round(max_seconds * sample_rate))
    head, _ = read_past(iter(stream), limit)
    if not head:
        raise VQAudioError(f"{os.fspath(path)}: contains no audio")
    clip = torch.cat(head)[:limit].numpy().astype(np.float32)
    full = stream.original_frames / stream.original_sample_rate
    return clip, full if full > max_seconds else None


def comparable_codecs(bitrates: Sequence[float]) -> list[ReferenceCodec]:
    """Reference codecs at bitrates near ``bitrates`` (bits per second): for each, the Codec2 mode closest to it
    on a log scale, then Opus at 6 kbit/s, the lowest rate opusenc takes. Sorted by bitrate, without repeats."""
    codecs = [make() for make in REFERENCE_CODECS.values()]
    codec2 = [c for c in codecs if isinstance(c, Codec2)]
    chosen = {min(codec2, key=lambda c: abs(math.log(c.bitrate_kbps * 1000 / b))).name for b in bitrates if b > 0}
    opus = min((c for c in codecs if isinstance(c, Opus)), key=lambda c: c.bitrate_kbps)
    return sorted([c for c in codec2 if c.name in chosen] + [opus], key=lambda c: c.bitrate_kbps)


def _eval_extra() -> bool:
    try:
        import pesq  # noqa: F401
        import pystoi  # noqa: F401
    except ImportError:
        return False
    return True


def _score(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, full: bool) -> RowScores | None:
    from vqaudio import evaluation

    if reference.size < _MIN_SCORED_SECONDS * sample_rate:
        return None
    if full:
        s = evaluation.score(reference, estimate, sample_rate)
        return RowScores(pesq_wb=s.pesq_wb, stoi=s.stoi, mel_distance=s.mel_distance)
    # Without pesq and pystoi the mel distance (librosa only) is still measured, on the same alignment.
    aligned = evaluation.align_delay(reference, estimate, round(0.05 * sample_rate), envelope_window=sample_rate // 200)
    return RowScores(None, None, evaluation.mel_distance(aligned.reference, aligned.estimate, sample_rate))


def _model_rows(
    tok: Tokenizer, clip: np.ndarray, n_codebooks: Sequence[int], vocoders: Sequence[str | None]
) -> list[tuple[str, str, np.ndarray, float]]:
    """(label, detail, audio ``[T]``, bitrate) for each codebook count and back end, in that order."""
    rate = tok.sample_rate
    # A speaker-conditioned model speaks the clip's units in the clip's own voice, as `vqaudio resynth` does.
    speaker = tok.speaker_embedding(clip, rate) if tok.conditional else None
    out = []
    for k in n_codebooks:
        # Encoded once per count: a beam search picks the codes for exactly the codebooks asked for.
        enc = tok.encode(clip, rate, n_codebooks=k)
        for vocoder in vocoders:
            audio = tok.decode(enc, vocoder=vocoder, speaker=speaker).samples[0].numpy()
            name = vocoder or tok.default_vocoder
            detail = f"{name} vocoder" if name else "waveform decoder"
            out.append((f"{k} codebook{'s' if k > 1 else ''}", detail, audio.astype(np.float32), enc.bitrate))
    return out


def build_report(
    inputs: Sequence[str | os.PathLike[str]],
    tok: Tokenizer,
    *,
    n_codebooks: Sequence[int],
    vocoders: Sequence[str | None] = (None,),
    reference_codecs: bool = False,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> Report:
    """Resynthesise the first ``max_seconds`` of each input with ``tok`` at each codebook count in ``n_codebooks``
    and each back end in ``vocoders`` (None: the model's default), and with the reference codecs of
    :func:`comparable_codecs` that are installed when ``reference_codecs``; score every row against the input."""
    if not inputs:
        raise VQAudioError("no input files given")
    if not n_codebooks:
        raise ConfigError("give at least one codebook count")
    for k in n_codebooks:
        tok.bitrate(k)  # a one-line error for a count the model does not have
    for vocoder in vocoders:
        tok.back_ends.get(vocoder)  # and for a back end it does not have, before any work
    notes: list[str] = []
    full_scores = _eval_extra()
    if not full_scores:
        notes.append("PESQ-WB and STOI need the eval extra: pip install 'vqaudio[eval]'")
    codecs: list[ReferenceCodec] = []
    if reference_codecs:
        for codec in comparable_codecs([tok.bitrate(k) for k in n_codebooks]):
            try:
                codec.check()
                codecs.append(codec)
            except MissingToolError as e:
                notes.append(f"{codec.name} left out: {e}")
    rate = tok.sample_rate
    # Every input is read before any is resynthesised, so that a bad file fails at once, not after the others.
    clips = [read_clip(path, rate, max_seconds) for path in inputs]
    sections = []
    for path, (clip, full) in zip(inputs, clips, strict=True):
        rows = [Row("original", f"as the model hears it: mono, {rate / 1000:g} kHz", clip, None, None)]
        for label, detail, audio, bits in _model_rows(tok, clip, n_codebooks, vocoders):
            rows.append(Row(label, detail, audio, bits, _score(clip, audio, rate, full_scores)))
        for codec in codecs:
            audio = np.asarray(codec(clip, rate), dtype=np.float32)
            detail = "Opus (opusenc, hard CBR)" if isinstance(codec, Opus) else "Codec2 (c2enc, 8 kHz)"
            scores = _score(clip, audio, rate, full_scores)
            rows.append(Row(codec.name, detail, audio, codec.bitrate_kbps * 1000, scores))
        sections.append(Section(os.fspath(path), rate, clip.size / rate, full, rows))
    return Report(tok.name, tok.checksum, tok.beam, max_seconds, sections, notes)
