"""What the token prior is worth: bits per token on held-out speech, and the size and speed of .vqz files.

    python benchmarks/prior_bits.py --list ../shared/data/speech/dev.list --root ../shared/data \\
        --model speech-16k --out /tmp/prior.md

For every listed file (lossy-origin files included: the prior's job is to model the codes it is given), the
model's codes at its default settings (the prior's codebooks, default beam) are taken as tokenize makes them
and scored three ways:

    float NLL      the prior's negative log-likelihood in float32, bits per token, per codebook
    coded          the .vqz payload actually written (integer engine + range coder), as bits per token and
                   kbps, against the fixed-width bits of a .vqt
    speed          compress and decompress of the codes alone, as multiples of real time (one process; the
                   encoder's own time is not included)

Decompressing every file must give back its codes exactly, or the script fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", type=Path, required=True, help="file list, paths relative to --root")
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--model", default="speech-16k")
    parser.add_argument("--limit", type=int, default=0, help="use the first N files only")
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args(argv)
    import vqaudio
    from vqaudio.compress import coder_for, decode_codes, encode_codes
    from vqaudio.prior.pairing import prior_for

    tok = vqaudio.load(args.model)
    model, card = prior_for(tok)
    engine, _ = coder_for(tok)
    k = card.config.num_codebooks
    files = [line.strip() for line in args.list.read_text().splitlines() if line.strip() and not line.startswith("#")]
    files = files[: args.limit] if args.limit else files
    nll = np.zeros(k)
    frames = coded_bits = 0
    seconds = t_compress = t_decompress = 0.0
    for name in files:
        enc = tok.encode(args.root / name, n_codebooks=k)
        codes = enc.codes.numpy()
        with torch.inference_mode():
            nll += model(enc.codes[None]).bits.double().numpy() * codes.shape[1]
        t0 = time.perf_counter()
        words = encode_codes(codes, engine)
        t1 = time.perf_counter()
        back = decode_codes(words, engine, codes.shape[1])
        t2 = time.perf_counter()
        if not np.array_equal(back, codes):
            print(f"error: {name}: decompressed codes differ from the original", file=sys.stderr)
            return 1
        frames += codes.shape[1]
        coded_bits += 32 * words.size
        seconds += enc.original_length / enc.sample_rate
        t_compress += t1 - t0
        t_decompress += t2 - t1
    fixed = (tok.codebook_size - 1).bit_length()
    per_book = nll / frames
    rows = [
        f"{args.model} + prior `{card.name}` ({card.config.num_codebooks} codebooks, {card.code_search}): "
        f"{len(files)} files, {seconds / 60:.1f} min",
        "",
        "| measure | " + " | ".join(f"codebook {i}" for i in range(k)) + " | all |",
        "|---|" + "---:|" * (k + 1),
        "| float NLL, bits/token | " + " | ".join(f"{b:.3f}" for b in per_book) + f" | {per_book.mean():.3f} |",
        "",
        f"- coded: {coded_bits / (frames * k):.3f} bits/token, {coded_bits / seconds / 1000:.3f} kbps against "
        f"{fixed} bits/token, {frames * k * fixed / seconds / 1000:.3f} kbps fixed-width "
        f"({100 * (1 - coded_bits / (frames * k * fixed)):.1f} % smaller)",
        f"- speed (codes only, one process): compress {seconds / t_compress:.1f}x, decompress "
        f"{seconds / t_decompress:.1f}x real time; every file decompressed to its exact codes",
    ]
    text = "\n".join(rows) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
