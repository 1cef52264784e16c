"""How much do units say *what* was said, and how little *who* said it? Measured on spoken digits.

    python benchmarks/units_speaker.py --fsdd ../shared/data/speech/other/fsdd \\
        --systems units-16k speech-16k:0 --per-digit 5 --out /tmp/units.md

The Free Spoken Digit Dataset has the same ten words from several speakers (``<digit>_<speaker>_<n>``). Each
file is turned into units (a model's codes, one codebook; repeats merged), and two 1-nearest-neighbour
classifiers are scored, each only against files of *other* speakers or *other* digits so neither can match a
recording to itself:

    digit from units    normalised edit distance of the unit sequences, neighbours from other speakers
                        only: high means the units spell the word the same way whoever says it
    speaker from units  cosine of unit histograms, neighbours saying other digits only: low (towards
                        chance, 1 / speakers) means the units carry little of the voice

A system is ``MODEL`` (its codebook 0) or ``MODEL:K`` (codebook K).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance between two sequences (two rows of the table at a time)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def dedup(units: list[int]) -> list[int]:
    return [u for i, u in enumerate(units) if i == 0 or units[i - 1] != u]


def score(units: list[list[int]], digits: list[str], speakers: list[str], size: int) -> tuple[float, float]:
    """(digit accuracy across speakers, speaker accuracy across digits) of 1-NN classifiers."""
    n = len(units)
    hist = np.zeros((n, size))
    for i, u in enumerate(units):
        np.add.at(hist[i], u, 1.0)
    hist /= np.linalg.norm(hist, axis=1, keepdims=True).clip(min=1e-9)
    cos = hist @ hist.T
    digit_hits = speaker_hits = 0
    for i in range(n):
        others = [j for j in range(n) if speakers[j] != speakers[i]]
        dist = [edit_distance(units[i], units[j]) / max(len(units[i]), len(units[j]), 1) for j in others]
        digit_hits += digits[others[int(np.argmin(dist))]] == digits[i]
        pool = [j for j in range(n) if digits[j] != digits[i]]
        speaker_hits += speakers[pool[int(np.argmax(cos[i, pool]))]] == speakers[i]
    return digit_hits / n, speaker_hits / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fsdd", type=Path, required=True, help="FSDD folder (files <digit>_<speaker>_<n>.*)")
    parser.add_argument("--systems", nargs="+", default=["units-16k", "speech-16k:0"])
    parser.add_argument("--per-digit", type=int, default=5, help="recordings per digit and speaker")
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args(argv)
    import vqaudio

    chosen: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for path in sorted(args.fsdd.rglob("*")):
        parts = path.stem.split("_")
        if path.suffix.lower() in (".wav", ".flac") and len(parts) == 3 and parts[2].isdigit():
            key = (parts[0], parts[1])
            if len(chosen[key]) < args.per_digit:
                chosen[key].append(path)
    files = [(d, s, p) for (d, s), paths in sorted(chosen.items()) for p in paths]
    if not files:
        print(f"error: no FSDD files under {args.fsdd}", file=sys.stderr)
        return 1
    n_speakers = len({s for _, s, _ in files})
    rows = [
        f"FSDD: {len(files)} recordings, {n_speakers} speakers, {args.per_digit} per digit and speaker "
        f"(chance: digit 0.10, speaker {1 / n_speakers:.2f})",
        "",
        "| system | units/s (deduplicated) | digit from units, across speakers | speaker from units, across digits |",
        "|---|---:|---:|---:|",
    ]
    for system in args.systems:
        model, _, book = system.partition(":")
        tok = vqaudio.load(model)
        k = int(book or 0)
        units, seconds = [], 0.0
        for _, _, path in files:
            enc = tok.encode(path, n_codebooks=k + 1)
            units.append(dedup(enc.codes[k].tolist()))
            seconds += enc.original_length / enc.sample_rate
        digit_acc, speaker_acc = score(units, [d for d, _, _ in files], [s for _, s, _ in files], tok.codebook_size)
        rate = sum(len(u) for u in units) / seconds
        rows.append(f"| {system} | {rate:.1f} | {digit_acc:.3f} | {speaker_acc:.3f} |")
    text = "\n".join(rows) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
