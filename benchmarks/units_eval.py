"""Units on held-out speakers: their statistics, how much of the speaker they carry, and voice conversion.

    python benchmarks/units_eval.py --list ../shared/data/speech/dev.list --root ../shared/data \\
        --systems units-16k speech-16k:0 --convert units-16k --out /tmp/units-eval.md

The held-out speakers are the LibriSpeech readers of the list (``.../<speaker>/<chapter>/<utt>.flac``; none of
them is in the training data). Most have one long utterance, so every measure splits recordings, not
speakers:

    statistics      entries used, unit entropy (bits/unit), units/s and the bitrate before and after merging
                    repeats (dedup), over all files
    speaker ID      the utterances cut into SEGMENT-second segments, each described by its unit histogram; a
                    multinomial logistic regression (histograms standardised, L2 strength chosen by 2-fold
                    cross-validation on the training half) is fitted on a random half of each speaker's
                    segments and scored on the other half; mean and spread over seeds, against chance. Lower
                    is better for units meant to carry the words, not the voice. Then the same with each
                    segment's histogram over its loud frames only and over its quiet ones only (the quietest
                    quarter of each utterance's frames by energy): silences name a recording by its noise
    conversion      (``--convert MODEL``) pairs of different speakers: the source's utterance spoken in the
                    voice of the first half of the target's utterance; an independent speaker-verification
                    model (resemblyzer's, ``pip install webrtcvad-wheels`` then ``pip install --no-deps
                    resemblyzer``) embeds the result and another clip of each speaker: the *second* half of
                    the target's utterance (not the voice reference) and the *first* half of the source's (not
                    the converted words); the cosine to each, and the share of pairs closer to the target

A system is ``MODEL`` (its codebook 0) or ``MODEL:K`` (codebook K).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

SEGMENT = 2.0


def speaker_of(path: Path) -> str | None:
    """The LibriSpeech reader id of ``.../<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac``, else None."""
    parts = path.stem.split("-")
    return parts[0] if len(parts) == 3 and parts[0] == path.parent.parent.name else None


# L2 strengths the speaker-ID probe chooses among, by cross-validation on its training half.
PROBE_L2 = (1e-4, 1e-3, 1e-2, 1e-1)


def _halves(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random half of each speaker's items (at least one): a boolean mask."""
    first = np.zeros(len(labels), dtype=bool)
    for s in np.unique(labels):
        idx = np.flatnonzero(labels == s)
        rng.shuffle(idx)
        first[idx[: max(1, len(idx) // 2)]] = True
    return first


def _probe_accuracy(
    features: np.ndarray, labels: np.ndarray, train: np.ndarray, l2: float, n_classes: int, steps: int
) -> float:
    """Fit on ``train`` (features standardised by its statistics) and score on the rest."""
    centre, spread = features[train].mean(0), features[train].std(0)
    spread[spread == 0] = 1.0  # a unit never used in training tells nothing either way
    x = (features - centre) / spread
    classify = fit_softmax(x[train], labels[train], n_classes, steps, l2=l2)
    return float((classify(x[~train]).argmax(1) == labels[~train]).mean())


def speaker_id_accuracy(features: np.ndarray, labels: np.ndarray, seed: int, steps: int = 300) -> float:
    """Softmax regression on a random half of each speaker's segments, scored on the other half. Features are
    standardised and the L2 strength is chosen from :data:`PROBE_L2` by 2-fold cross-validation within the
    training half: a fixed strength on raw histograms (entries of about 0.01) let the penalty win and the
    probe guess the prior, which measured nothing."""
    rng = np.random.default_rng(seed)
    n_classes = int(labels.max()) + 1
    train = _halves(labels, rng)
    inner = np.flatnonzero(train)
    fold = _halves(labels[inner], rng)

    def inner_score(l2: float) -> float:
        scores = []
        for part in (fold, ~fold):  # fit on one fold of the training half, score on the other
            idx = np.concatenate([inner[part], inner[~part]])
            fit = np.arange(len(idx)) < int(part.sum())
            scores.append(_probe_accuracy(features[idx], labels[idx], fit, l2, n_classes, steps))
        return float(np.mean(scores))

    best = max(PROBE_L2, key=inner_score)
    return _probe_accuracy(features, labels, train, best, n_classes, steps)


def fit_softmax(
    features: np.ndarray, labels: np.ndarray, n_classes: int, steps: int = 300, l2: float = 1e-3
) -> Callable[[np.ndarray], np.ndarray]:
    """Softmax regression (LBFGS, L2 ``l2``) on ``features`` ``[N, D]``; returns a function giving logits."""
    x = torch.tensor(features, dtype=torch.float64)
    y = torch.tensor(labels)
    w = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w + b, y) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)

    def logits(f: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return (torch.tensor(f, dtype=torch.float64) @ w + b).numpy()

    return logits


def loud_frames(path: Path, rate: int, frames: int) -> np.ndarray:
    """``[frames]`` booleans: False for the quietest quarter of the file's unit frames by energy."""
    from vqaudio.audio import load_audio

    audio = load_audio(path, sample_rate=rate, mono=True).samples[0].numpy()
    hop = len(audio) / frames
    energy = np.array([np.mean(audio[int(i * hop) : int((i + 1) * hop)] ** 2) + 1e-12 for i in range(frames)])
    return energy > np.percentile(energy, 25)


def mfcc_segments(audio: np.ndarray, rate: int) -> np.ndarray:
    """Mean and spread of 20 MFCCs over each ``SEGMENT``-second stretch: ``[segments, 40]``."""
    import librosa

    n = int(SEGMENT * rate)
    pieces = [audio[i : i + n] for i in range(0, max(1, len(audio) - n + 1), n)]
    stats = []
    for piece in pieces:
        m = librosa.feature.mfcc(y=piece, sr=rate, n_mfcc=20)
        stats.append(np.concatenate([m.mean(1), m.std(1)]))
    return np.array(stats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", type=Path, required=True)
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--systems", nargs="+", default=["units-16k", "speech-16k:0"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--convert", help="a speaker-conditioned model to judge voice conversion with")
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    import vqaudio

    paths = [args.root / line.strip() for line in args.list.read_text().splitlines() if line.strip()]
    files = [(p, s) for p in paths if (s := speaker_of(p)) is not None]
    speakers = sorted({s for _, s in files})
    label = {s: i for i, s in enumerate(speakers)}
    if len(speakers) < 2:
        print("error: the list names fewer than two LibriSpeech readers", file=sys.stderr)
        return 1
    out = [
        f"{len(files)} utterances of {len(speakers)} held-out LibriSpeech readers; segments of {SEGMENT:g} s; "
        f"speaker ID chance {1 / len(speakers):.3f}",
        "",
        "| system | entries used | entropy, bits/unit | units/s | kbps | units/s after dedup | kbps after dedup "
        "| speaker ID from unit histograms (mean ± sd over seeds) | the same, loud frames | quiet frames |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for system in args.systems:
        model, _, book = system.partition(":")
        tok = vqaudio.load(model)
        k = int(book or 0)
        size = tok.codebook_size
        per_segment = max(1, round(SEGMENT * tok.frame_rate))
        all_units: list[int] = []
        deduped = 0
        seconds = 0.0
        feats: dict[str, list[np.ndarray]] = {"all": [], "loud": [], "quiet": []}
        labels = []
        for path, speaker in files:
            enc = tok.encode(path, n_codebooks=k + 1)
            units = enc.codes[k].numpy()
            all_units += units.tolist()
            deduped += 1 + int((units[1:] != units[:-1]).sum())
            seconds += enc.original_length / enc.sample_rate
            loud = loud_frames(path, tok.sample_rate, len(units))
            for start in range(0, len(units) - per_segment + 1, per_segment):
                seg, keep = units[start : start + per_segment], loud[start : start + per_segment]
                for name, part in (("all", seg), ("loud", seg[keep]), ("quiet", seg[~keep])):
                    hist = np.bincount(part, minlength=size).astype(np.float64)
                    feats[name].append(hist / max(1.0, hist.sum()))
                labels.append(label[speaker])
        counts = np.bincount(np.array(all_units), minlength=size)
        p = counts[counts > 0] / counts.sum()
        entropy = float(-(p * np.log2(p)).sum())
        ids = {
            name: [speaker_id_accuracy(np.array(f), np.array(labels), seed) for seed in range(args.seeds)]
            for name, f in feats.items()
        }
        bits = math.log2(size)
        rate, rate_dedup = len(all_units) / seconds, deduped / seconds
        out.append(
            f"| {system} | {int((counts > 0).sum())} / {size} | {entropy:.2f} | {rate:.1f} | {rate * bits / 1000:.3f} "
            f"| {rate_dedup:.1f} | {rate_dedup * bits / 1000:.3f} | "
            + " | ".join(f"{np.mean(a):.3f} ± {np.std(a):.3f}" for a in ids.values())
            + " |"
        )
    if args.convert:
        out += ["", *convert_rows(args.convert, files, args.pairs)]
    text = "\n".join(out) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


def convert_rows(model: str, files: list[tuple[Path, str]], n_pairs: int) -> list[str]:
    """Voice conversion judged by resemblyzer's speaker embeddings (see the module docstring)."""
    import soxr
    from resemblyzer import VoiceEncoder, preprocess_wav

    import vqaudio
    from vqaudio.audio import load_audio

    tok = vqaudio.load(model)
    judge = VoiceEncoder("cpu", verbose=False)
    by_speaker: dict[str, Path] = {}
    for path, speaker in files:
        by_speaker.setdefault(speaker, path)
    halves = {}
    for speaker, path in by_speaker.items():
        audio = load_audio(path, sample_rate=tok.sample_rate, mono=True).samples[0].numpy()
        halves[speaker] = (audio[: len(audio) // 2], audio[len(audio) // 2 :])

    def embed(x: np.ndarray) -> np.ndarray:
        return judge.embed_utterance(preprocess_wav(soxr.resample(x, tok.sample_rate, 16000), source_sr=16000))

    first = {s: embed(h[0]) for s, h in halves.items()}
    second = {s: embed(h[1]) for s, h in halves.items()}
    # A second judge that shares nothing with a d-vector reference encoder: softmax regression on MFCC statistics
    # of 2 s segments of each reader's first half; it names the reader of a converted utterance from the mean of
    # its segments' logits. Its accuracy on the readers' real second halves says how far to trust it.
    names = sorted(halves)
    seg = {s: mfcc_segments(halves[s][0], tok.sample_rate) for s in names}
    feats = np.concatenate([seg[s] for s in names])
    centre, spread = feats.mean(0), feats.std(0) + 1e-8
    labels = np.concatenate([np.full(len(seg[s]), i) for i, s in enumerate(names)])
    classify = fit_softmax((feats - centre) / spread, labels, len(names))

    def reader(x: np.ndarray) -> str:
        return names[int(classify((mfcc_segments(x, tok.sample_rate) - centre) / spread).mean(0).argmax())]

    judge_real = np.mean([reader(halves[s][1]) == s for s in names])
    rng = np.random.default_rng(0)
    pairs = set()
    while len(pairs) < min(n_pairs, len(names) * (len(names) - 1)):
        a, b = rng.choice(len(names), 2, replace=False)
        pairs.add((names[a], names[b]))
    to_target, to_source, closer, named_target, named_source = [], [], 0, 0, 0
    for source, target in sorted(pairs):
        speaker = tok.speaker_embedding(halves[target][0], tok.sample_rate)
        enc = tok.encode(halves[source][1], tok.sample_rate)
        converted = tok.decode(enc, speaker=speaker).samples[0].numpy()
        e = embed(converted)
        # Each side judged on a clip the conversion did not see: the target's other half, the source's other half.
        t, s = float(e @ second[target]), float(e @ first[source])
        to_target.append(t)
        to_source.append(s)
        closer += t > s
        named = reader(converted)
        named_target += named == target
        named_source += named == source
    baseline = [float(second[a] @ second[b]) for a, b in sorted(pairs)]
    return [
        f"Voice conversion with {model}: {len(pairs)} source/target pairs of different readers (resemblyzer cosine)",
        "",
        "| converted to target | converted to source | two different readers | pairs closer to the target |",
        "|---:|---:|---:|---:|",
        f"| {np.mean(to_target):.3f} | {np.mean(to_source):.3f} | {np.mean(baseline):.3f} | "
        f"{closer}/{len(pairs)} ({100 * closer / len(pairs):.0f} %) |",
        "",
        f"MFCC-statistics judge ({len(names)} readers; {100 * judge_real:.0f} % right on their real second halves): "
        f"converted speech named as the target in {named_target}/{len(pairs)} pairs, as the source in "
        f"{named_source}/{len(pairs)}",
    ]


if __name__ == "__main__":
    sys.exit(main())
