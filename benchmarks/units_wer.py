"""Is the content kept? Word error rate of converted and resynthesized speech against the source's transcript.

    pip install pocketsphinx          # an offline recognizer with its English model, on PyPI
    python benchmarks/units_wer.py --list ../shared/data/speech/dev.list --root ../shared/data --model units-16k

The pairs are those of ``units_eval.py --convert`` (same seed): the second half of each held-out LibriSpeech
reader's utterance is the source. pocketsphinx transcribes the source itself, its resynthesis in its own voice
and its conversion to each target's voice (the first half of the target's utterance as the reference). The WER
of each against the *source's transcript* (not the book text: the recognizer's own errors on clean speech
cancel out) says how much of what was said survives the units; resynthesis is the floor conversion can reach.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from units_eval import speaker_of


def edits(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", type=Path, required=True)
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--model", default="units-16k")
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from pocketsphinx import Decoder

    import vqaudio
    from vqaudio.audio import load_audio

    tok = vqaudio.load(args.model)
    recognizer = Decoder(samprate=tok.sample_rate)

    def words(x: np.ndarray) -> list[str]:
        pcm = (np.clip(x, -1, 1) * 32767).astype(np.int16)
        recognizer.start_utt()
        recognizer.process_raw(pcm.tobytes(), full_utt=True)
        recognizer.end_utt()
        hyp = recognizer.hyp()
        return hyp.hypstr.split() if hyp is not None else []

    paths = [args.root / line.strip() for line in args.list.read_text().splitlines() if line.strip()]
    by_speaker: dict[str, Path] = {}
    for p in paths:
        if (s := speaker_of(p)) is not None:
            by_speaker.setdefault(s, p)
    halves = {}
    for s, p in by_speaker.items():
        audio = load_audio(p, sample_rate=tok.sample_rate, mono=True).samples[0].numpy()
        halves[s] = (audio[: len(audio) // 2], audio[len(audio) // 2 :])
    names = sorted(halves)
    rng = np.random.default_rng(0)  # the pairs of units_eval.py
    pairs: set[tuple[str, str]] = set()
    while len(pairs) < min(args.pairs, len(names) * (len(names) - 1)):
        a, b = rng.choice(len(names), 2, replace=False)
        pairs.add((names[a], names[b]))
    reference = {s: words(halves[s][1]) for s in names}
    ref_words = {s: max(1, len(w)) for s, w in reference.items()}
    resynth = sum(
        edits(reference[s], words(tok.resynth(halves[s][1], tok.sample_rate).samples[0].numpy())) for s in names
    )
    converted = 0
    for source, target in sorted(pairs):
        out = tok.convert(halves[source][1], halves[target][0], tok.sample_rate).samples[0].numpy()
        converted += edits(reference[source], words(out))
    n_resynth = sum(ref_words.values())
    n_converted = sum(ref_words[s] for s, _ in pairs)
    text = (
        f"{args.model}: WER against the source's own transcript (pocketsphinx), {len(names)} sources, "
        f"{len(pairs)} conversions\n\n"
        "| resynthesis in the own voice | conversion to another voice |\n|---:|---:|\n"
        f"| {100 * resynth / n_resynth:.1f} % | {100 * converted / n_converted:.1f} % |\n"
    )
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
