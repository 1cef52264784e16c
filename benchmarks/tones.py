"""Held harmonic tones through a model's back ends: does a vocoder keep a steady vowel's energy and pitch?

    python benchmarks/tones.py --model speech-16k --out /tmp/tones.md

A held vowel is a harmonic series whose mel hardly changes from frame to frame. A back end that predicts a
phase per frame from the mel alone gives the same phase at every frame, so a harmonic that does not sit on a
bin centre of its STFT cannot advance from frame to frame: overlapping frames partly cancel, energy is lost
and what is left sits at multiples of the frame rate, a buzz. This script makes such tones, analyses them
into the model's own log-mel (no codec in between) and renders them with each back end.

Each tone is ``--seconds`` long, its harmonics up to 4 kHz with amplitudes falling as ``1 / h``. The
default fundamentals are 100 Hz (every harmonic on a multiple of the 100 Hz frame rate), 137.5 Hz (between
them) and 200 Hz. Measured over the middle half of the tone, away from its onset and end:

    energy kept     output energy / input energy
    on harmonics    share of the output's energy within 5 Hz of a harmonic of the fundamental
    log-mel L1      :func:`vqaudio.evaluation.mel_distance` between input and output
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vqaudio.errors import VQAudioError
from vqaudio.evaluation import mel_distance

DEFAULT_F0S = (100.0, 137.5, 200.0)
_TOP_HZ = 4000.0
_ON_HARMONIC_HZ = 5.0


@dataclass(frozen=True)
class ToneScore:
    vocoder: str
    f0: float
    energy_kept: float
    on_harmonics: float
    mel_l1: float


def harmonic_tone(f0: float, seconds: float, sample_rate: int, peak: float = 0.5) -> np.ndarray:
    """Harmonics of ``f0`` up to 4 kHz (and below Nyquist), amplitude ``1 / h``, scaled to ``peak``."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    top = min(_TOP_HZ, 0.45 * sample_rate)
    if not 0 < f0 <= top:
        raise ValueError(f"f0 {f0:g} Hz must be above 0 and at most {top:g} Hz")
    x = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, int(top // f0) + 1))
    return np.asarray(peak * x / np.max(np.abs(x)), dtype=np.float32)


def _middle(x: np.ndarray) -> np.ndarray:
    n = x.size
    return x[n // 4 : 3 * n // 4]


def on_harmonics(x: np.ndarray, f0: float, sample_rate: int) -> float:
    """Share of ``x``'s energy (Hann-windowed spectrum) within 5 Hz of a multiple of ``f0``."""
    power = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / sample_rate)
    nearest = np.maximum(np.round(freqs / f0), 1) * f0
    near = np.abs(freqs - nearest) <= _ON_HARMONIC_HZ
    total = float(power.sum())
    return float(power[near].sum() / total) if total > 0 else float("nan")


def score_tones(
    model: str, vocoders: Sequence[str] | None = None, f0s: Sequence[float] = DEFAULT_F0S, seconds: float = 2.0
) -> list[ToneScore]:
    """Render each tone with each back end of ``model`` (default: all it has) from the tone's own log-mel."""
    import vqaudio
    from vqaudio.spectral import log_mel

    tok = vqaudio.load(model)  # type: ignore[attr-defined]
    names = list(vocoders) if vocoders else list(tok.vocoders)
    if not names:
        raise VQAudioError(f"{model} decodes audio directly; it has no vocoder to test")
    scores = []
    for name in names:
        mel_config = tok.vocoder(name).mel_config
        rate = mel_config.sample_rate
        for f0 in f0s:
            x = harmonic_tone(f0, seconds, rate)
            mel = log_mel(torch.from_numpy(x)[None], mel_config)
            y = tok.vocode(mel, name)[0].numpy()[: x.size]
            ref, out = _middle(x), _middle(y)
            scores.append(
                ToneScore(
                    vocoder=name,
                    f0=f0,
                    energy_kept=float(np.sum(out.astype(np.float64) ** 2) / np.sum(ref.astype(np.float64) ** 2)),
                    on_harmonics=on_harmonics(out, f0, rate),
                    mel_l1=mel_distance(ref, out, rate),
                )
            )
    return scores


def markdown(model: str, scores: Sequence[ToneScore]) -> str:
    lines = [
        f"Held harmonic tones rendered from their own log-mel by the back ends of `{model}`.",
        "",
        "| back end | f0 (Hz) | energy kept | on harmonics | log-mel L1 |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for s in scores:
        lines.append(f"| {s.vocoder} | {s.f0:g} | {s.energy_kept:.2f} | {s.on_harmonics:.3f} | {s.mel_l1:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="speech-16k", help="shipped model name or model directory")
    parser.add_argument("--vocoders", nargs="*", help="back ends to test (default: every one the model has)")
    parser.add_argument("--f0", nargs="*", type=float, default=list(DEFAULT_F0S), help="fundamentals, Hz")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each tone")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.seconds < 0.5 or not args.f0:
        print("error: --seconds must be at least 0.5, with at least one --f0", file=sys.stderr)
        return 2
    try:
        table = markdown(args.model, score_tones(args.model, args.vocoders, args.f0, args.seconds))
    except VQAudioError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:  # a fundamental the tone cannot have (harmonic_tone says which range)
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table, end="")
    if args.out:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
