"""Post-filter shapes side by side: PESQ-WB, STOI and log-mel L1 of a back end on a codec's decoded log-mel.

    python benchmarks/postfilter.py --model speech-16k --list recipes/librispeech/data/speech-16k/train.tsv \\
        --count 12 --start 5 --every 19 --shape 0.15,1,0 --shape 0.125,0,0.25

Chooses a post-filter on training audio, not on the dev list the results are reported on. Each file is encoded
once at ``--n-codebooks`` (the model's default), decoded once to plain log-mel, and every shape
``STRENGTH,OFFSET,BELOW`` (see :class:`vqaudio.models.spectral.SpectralPostFilter`) is applied to that same
log-mel before the back end (``--vocoder``, Griffin-Lim unless told), so the rows differ only in the filter.
The centre is the model's own (fitted at its release) or, with ``--fit``, the mean decoded log-mel of the
scored files. The first row is the plain output. Scores are means over files, after delay alignment, like
``benchmarks/quality.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vqaudio.errors import VQAudioError

_MAX_SECONDS = 8.0  # of each file: enough speech for PESQ, short enough to try many shapes


def parse_shape(text: str) -> tuple[float, float, float]:
    try:
        s, off, below = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shape is STRENGTH,OFFSET,BELOW (three numbers), got {text!r}") from None
    return s, off, below


def score_shapes(
    model: str,
    files: Sequence[str | Path],
    shapes: Sequence[tuple[float, float, float]],
    n_codebooks: int | None = None,
    fit: bool = False,
    vocoder: str = "griffin-lim",
) -> list[tuple[str, float, float, float]]:
    """``(label, PESQ-WB, STOI, log-mel L1)`` for the plain output, then for each shape."""
    import vqaudio
    from vqaudio.audio import load_audio
    from vqaudio.evaluation import score
    from vqaudio.models.spectral import SpectralPostFilter, SpectralVQVAE

    # Greedy codes, as `vqaudio export` fits the post-filter's centre on (whatever the card's default_beam).
    tok = vqaudio.load(model, decode_precision="float32", postfilter=False, beam=1)
    codec = tok.model
    if not isinstance(codec, SpectralVQVAE):
        raise VQAudioError(f"{model}: only a spectral codec has a post-filter")
    if not files:
        raise VQAudioError("no files to score")
    tok.vocoder(vocoder)  # a one-line error before any decoding if the model has no such back end
    sr = tok.sample_rate
    decoded, refs = [], []
    with torch.inference_mode():
        for f in files:
            audio = load_audio(f, sample_rate=sr, mono=True).samples[0][: int(_MAX_SECONDS * sr)]
            codes = tok.encode(audio, sr, n_codebooks=n_codebooks).codes
            decoded.append(codec.decode(codes[None].long()).float())
            refs.append(audio.numpy())
    if fit:
        centre = torch.cat([d[0] for d in decoded], dim=-1).double().mean(-1).float()
    elif codec.decoder.postfilter is not None:
        centre = codec.decoder.postfilter.centre.float()
    else:
        raise VQAudioError(f"{model} has no fitted post-filter centre; pass --fit to fit one on the scored files")
    filters: list[tuple[str, torch.nn.Module | None]] = [("plain", None)]
    for strength, off, below in shapes:
        shaped = SpectralPostFilter(codec.n_mels, strength, off, below)
        shaped.centre.copy_(centre)
        filters.append((f"{strength:g},{off:g},{below:g}", shaped))
    rows = []
    with torch.inference_mode():
        for label, pf in filters:
            scores = []
            for mel, ref in zip(decoded, refs, strict=True):
                out = tok.vocode(mel if pf is None else pf(mel), vocoder)[0].numpy()[: ref.size]
                s = score(ref, out, sr)
                scores.append((s.pesq_wb, s.stoi, s.mel_distance))
            mean = np.nanmean(np.array(scores), axis=0)
            rows.append((label, float(mean[0]), float(mean[1]), float(mean[2])))
    return rows


def markdown(
    model: str, n_files: int, rows: Sequence[tuple[str, float, float, float]], vocoder: str = "griffin-lim"
) -> str:
    lines = [
        f"Post-filter shapes for `{model}`, back end {vocoder}, {n_files} files:",
        "",
        "| strength, offset, below | PESQ-WB | STOI | log-mel L1 |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {label} | {p:.3f} | {s:.4f} | {m:.4f} |" for label, p, s, m in rows]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="speech-16k")
    parser.add_argument("--list", type=Path, required=True, help="manifest (.tsv) of training audio")
    parser.add_argument("--count", type=int, default=12, help="files to score")
    parser.add_argument("--start", type=int, default=0, help="first manifest entry to take")
    parser.add_argument("--every", type=int, default=1, help="take every N-th entry from --start")
    parser.add_argument("--shape", type=parse_shape, action="append", default=[], help="STRENGTH,OFFSET,BELOW")
    parser.add_argument("--n-codebooks", type=int, default=None)
    parser.add_argument("--fit", action="store_true", help="fit the centre on the scored files")
    parser.add_argument("--vocoder", default="griffin-lim", help="back end: griffin-lim, learned or hybrid")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.count < 1 or args.start < 0 or args.every < 1 or args.threads < 1:
        print("error: --count, --every and --threads must be at least 1, --start at least 0", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    try:
        from vqaudio.data.manifest import read_manifest
        from vqaudio.models.spectral import SpectralNetConfig

        for strength, offset, below in args.shape:  # the bounds a released model's config would hold it to
            SpectralNetConfig(postfilter=strength, postfilter_offset=offset, postfilter_below=below)

        files = [e.path for e in read_manifest(args.list)][args.start :: args.every][: args.count]
        rows = score_shapes(args.model, files, args.shape, args.n_codebooks, args.fit, args.vocoder)
    except VQAudioError as e:  # ConfigError included
        print(f"error: {e}", file=sys.stderr)
        return 1
    table = markdown(args.model, len(files), rows, args.vocoder)
    print(table, end="")
    if args.out:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
