"""How far could entropy coding shrink a model's codes? Bits per code under simple count models.

    python benchmarks/code_entropy.py --model speech-16k --list data/speech-16k/train.tsv --out /tmp/entropy.md

A token file spends ``log2(codebook_size)`` bits on every code. An entropy coder driven by a model of the
codes (a token prior) spends, on average, the model's cross-entropy on codes it has not seen. This script
encodes the listed files, fits count models on most of them and measures their cross-entropy on the
others (every m-th file for ``--held-out 1/m``, so no utterance is on both sides):

    unigram        how often each entry is used
    previous frame the entry given the same codebook's entry one frame before (bigram)
    codebook below the entry given the previous codebook's entry in the same frame

Counts are smoothed towards the unigram (add-``alpha`` with the unigram as prior), so unseen pairs cost
a finite number of bits. A learned prior would do better than these count models, but where they find
nothing to exploit (close to ``log2(codebook_size)`` bits), a prior has little to work with either.

For a multi-scale model every codebook is taken at its own frame rate ("previous frame" is its own previous
code; "codebook below" only where the codebook before it has the same rate), and the table gives each codebook's
rate and a line per level.

``--list`` is a file list (paths relative to ``--root``) or a training manifest (``.tsv``, as ``vqaudio
prepare`` writes it); ``--limit`` keeps its first N files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CodebookEntropy:
    codebook: int
    rate: float  # codes per second
    used: int  # entries used at least once, over all files
    entropy: float  # plug-in unigram entropy over all files (bits)
    unigram: float  # held-out cross-entropy (bits per code) of each model
    previous_frame: float
    codebook_below: float | None  # None for the first codebook


def _unigram(counts: np.ndarray) -> np.ndarray:
    """Add-one smoothed probabilities of ``counts`` ``[V]``."""
    return (counts + 1.0) / (counts.sum() + counts.size)


def unigram_cross_entropy(fit: np.ndarray, test: np.ndarray, size: int) -> float:
    """Bits per code of ``test`` under the add-one unigram of ``fit`` (1-D integer arrays)."""
    p = _unigram(np.bincount(fit, minlength=size).astype(np.float64))
    return float(-np.log2(p[test]).mean())


def conditional_cross_entropy(
    fit: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], size: int, alpha: float = 0.1
) -> float:
    """Bits per code of ``test[1]`` given ``test[0]`` under counts of ``(context, code)`` pairs in ``fit``.

    ``p(x | c) = (n(c, x) + alpha * size * u(x)) / (n(c) + alpha * size)``, ``u`` the add-one unigram of the
    fitted codes: a context seen often is trusted, an unseen one falls back to the unigram.
    """
    context, code = fit
    pairs = np.bincount(context * size + code, minlength=size * size).astype(np.float64).reshape(size, size)
    prior = _unigram(np.bincount(code, minlength=size).astype(np.float64))
    totals = pairs.sum(axis=1)
    c, x = test
    p = (pairs[c, x] + alpha * size * prior[x]) / (totals[c] + alpha * size)
    return float(-np.log2(p).mean())


def _check_held_out(held_out: float) -> None:
    # Every m-th file is scored, so at most half of them can be: more would leave fewer files to fit on.
    if not 0 < held_out <= 0.5:
        raise ValueError(f"--held-out must be in (0, 0.5], got {held_out}")


def code_entropy(
    codes: Sequence[Sequence[np.ndarray]],
    size: int,
    held_out: float = 0.25,
    alpha: float = 0.1,
    rates: Sequence[float] | None = None,
) -> list[CodebookEntropy]:
    """Per-codebook statistics of ``codes``, per file a ``[K, F]`` integer array or a list of ``K`` 1-D arrays (one
    per codebook, in time order; see :func:`codebook_sequences`). ``rates``: codes per second of each codebook
    (default all 1); "codebook below" is measured only between codebooks of the same rate."""
    _check_held_out(held_out)
    if len(codes) < 2:
        raise ValueError("need at least two files: count models are fitted on some and scored on the others")
    # Every m-th file is held out, so both sides sample every corpus and speaker of a sorted list alike.
    m = max(2, round(1 / held_out))
    held = {i for i in range(len(codes)) if i % m == m - 1} or {len(codes) - 1}
    fit = [c for i, c in enumerate(codes) if i not in held]
    test = [c for i, c in enumerate(codes) if i in held]

    def flat(parts: Sequence[Sequence[np.ndarray]], k: int) -> np.ndarray:
        return np.concatenate([p[k] for p in parts])

    def pairs(parts: Sequence[Sequence[np.ndarray]], k: int, below: bool) -> tuple[np.ndarray, np.ndarray]:
        if below:  # the entry of codebook k - 1 in the same frame
            return flat(parts, k - 1), flat(parts, k)
        return (
            np.concatenate([p[k][:-1] for p in parts]),
            np.concatenate([p[k][1:] for p in parts]),
        )

    n_books = len(codes[0])
    rates = list(rates) if rates is not None else [1.0] * n_books
    rows = []
    for k in range(n_books):
        has_below = k > 0 and rates[k - 1] == rates[k]
        every = flat(codes, k)
        counts = np.bincount(every, minlength=size)
        p = counts[counts > 0] / counts.sum()
        rows.append(
            CodebookEntropy(
                codebook=k + 1,
                rate=rates[k],
                used=int((counts > 0).sum()),
                entropy=float(-(p * np.log2(p)).sum()),
                unigram=unigram_cross_entropy(flat(fit, k), flat(test, k), size),
                previous_frame=conditional_cross_entropy(pairs(fit, k, False), pairs(test, k, False), size, alpha),
                codebook_below=(
                    conditional_cross_entropy(pairs(fit, k, True), pairs(test, k, True), size, alpha)
                    if has_below
                    else None
                ),
            )
        )
    return rows


def _read_list(path: Path, root: Path) -> list[Path]:
    if path.suffix == ".tsv":
        from vqaudio.data.manifest import read_manifest

        return [entry.path for entry in read_manifest(path)]
    return [root / line.strip() for line in path.read_text().splitlines() if line.strip()]


def codebook_sequences(codes: np.ndarray, strides: Sequence[int]) -> list[np.ndarray]:
    """Multi-scale codes ``[R, F]`` (superframe layout) -> each codebook's codes in time order, codebook by codebook."""
    from vqaudio.tokenfile.levels import CodeLayout

    layout = CodeLayout(tuple(strides))
    out, row = [], 0
    for k in range(len(strides)):
        if row >= codes.shape[0]:
            break
        out.append(codes[row : row + layout.rows(k)].T.reshape(-1))
        row += layout.rows(k)
    return out


def markdown(model: str, rows: Sequence[CodebookEntropy], size: int, n_files: int) -> str:
    raw = float(np.log2(size))
    lines = [
        f"Codes of `{model}` on {n_files} files, bits per code ({raw:.0f} bits uncoded); cross-entropies on "
        "the held-out files:",
        "",
        "| codebook | codes/s | entries used | entropy | unigram | previous frame | codebook below |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        below = "-" if r.codebook_below is None else f"{r.codebook_below:.2f}"
        lines.append(
            f"| {r.codebook} | {r.rate:g} | {r.used} | {r.entropy:.2f} | {r.unigram:.2f} | {r.previous_frame:.2f} "
            f"| {below} |"
        )
    lines += ["", "Bitrate with the best of the three count models per codebook, or none (kbps), against uncoded:", ""]
    coded = uncoded = 0.0
    for r in rows:
        best = min(x for x in (raw, r.unigram, r.previous_frame, r.codebook_below) if x is not None)
        coded, uncoded = coded + best * r.rate / 1000, uncoded + raw * r.rate / 1000
        lines.append(f"- {r.codebook} codebooks: {coded:.3f} against {uncoded:.3f}")
    levels = sorted({r.rate for r in rows})
    if len(levels) > 1:
        lines += ["", "Per level (mean over its codebooks, bits per code):", ""]
        for rate in levels:
            part = [r for r in rows if r.rate == rate]
            lines.append(
                f"- {rate:g} Hz, {len(part)} codebooks: entropy {np.mean([r.entropy for r in part]):.2f}, "
                f"previous frame {np.mean([r.previous_frame for r in part]):.2f}"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="speech-16k")
    p.add_argument("--list", type=Path, required=True)
    p.add_argument("--root", type=Path, default=Path("."))
    p.add_argument("--n-codebooks", type=int, default=None, help="codebooks to encode (default: all)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--held-out", type=float, default=0.25, help="share of the files scored, not fitted")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="write the markdown here as well")
    args = p.parse_args(argv)

    import torch

    import vqaudio
    from vqaudio.errors import VQAudioError

    torch.set_num_threads(args.threads)
    try:
        _check_held_out(args.held_out)
        # Greedy codes: the figures in recipes/librispeech/experiments/log.md were measured on them.
        tok = vqaudio.load(args.model, beam=1)
        files = _read_list(args.list, args.root)[: args.limit]
        k = args.n_codebooks or tok.num_codebooks
        strides = tok.model.codebook_strides
        codes: list[Sequence[np.ndarray]] = [tok.encode(f, n_codebooks=k).codes.numpy() for f in files]
        if strides:
            codes = [codebook_sequences(np.asarray(c), strides) for c in codes]
            rates = [tok.frame_rate * max(strides) / s for s in strides[: len(codes[0])]]
        else:
            rates = [tok.frame_rate] * k
        rows = code_entropy(codes, tok.codebook_size, args.held_out, rates=rates)
    except (VQAudioError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    text = markdown(args.model, rows, tok.codebook_size, len(codes))
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
