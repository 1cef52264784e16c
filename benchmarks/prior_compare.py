"""Token priors side by side: held-out bits per token and speed, for choosing the prior's architecture.

    python benchmarks/prior_compare.py --list ../shared/data/speech/dev.list --root ../shared/data \\
        --priors pretrained/speech-16k exp/prior16k-rf269/model exp/prior16k-gru/model --out /tmp/priors.md

Each ``--priors`` entry is a folder holding ``prior.json`` + ``prior.safetensors`` (a codec's release folder,
or a prior run's ``model``), all over the same codec's codes. On every listed file's codes (tokenize's, at the
prior's codebooks):

    NLL            float negative log-likelihood per codebook, bits per token, and their mean
    integer        the same from the integer engine's frequencies (what compress codes with), mean
    score          teacher-forced scoring of a whole file at once in float32, x real time
    step           one frame at a time in the integer engine, as generation and decompression run, x real time

Timings are of one process on the threads torch is given; run it on an idle machine.
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
    parser.add_argument("--list", type=Path, required=True)
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--model", default="speech-16k", help="the codec whose codes the priors model")
    parser.add_argument("--priors", type=Path, nargs="+", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    import vqaudio
    from vqaudio.prior.integer import IntegerPrior, frequencies
    from vqaudio.prior.io import load_prior

    torch.set_num_threads(args.threads)
    tok = vqaudio.load(args.model)
    files = [line.strip() for line in args.list.read_text().splitlines() if line.strip()]
    priors = [load_prior(p) for p in args.priors]
    k = max(card.config.num_codebooks for _, card in priors)
    encoded = [tok.encode(args.root / f, n_codebooks=k) for f in files]
    seconds = sum(e.original_length / e.sample_rate for e in encoded)
    rows = [
        f"{len(files)} files, {seconds / 60:.1f} min of {args.model}'s codes; {args.threads} threads",
        "",
        "| prior | context | parameters | NLL per codebook, bits/token | mean | integer | score, x real time "
        "| step, x real time |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    with torch.inference_mode():
        for path, (model, card) in zip(args.priors, priors, strict=True):
            c = model.config
            nll, frames, t_score, t_step, coded = np.zeros(c.num_codebooks), 0, 0.0, 0.0, 0.0
            engine = IntegerPrior(model)
            for enc in encoded:
                codes = enc.codes[: c.num_codebooks]
                t0 = time.perf_counter()
                nll += model(codes[None]).bits.double().numpy() * codes.shape[1]
                t1 = time.perf_counter()
                state = engine.start()
                for f in range(codes.shape[1]):
                    frame = codes[:, f].numpy()
                    for kk in range(c.num_codebooks):
                        engine.logits(state, kk, frame)
                    engine.push(state, frame)
                t_step += time.perf_counter() - t1
                freqs = frequencies(engine.all_logits(codes.numpy())).astype(np.float64)  # [K, F, V]
                chosen = np.take_along_axis(freqs, codes.numpy()[:, :, None], axis=2)[..., 0]
                coded += float(-np.log2(chosen / freqs.sum(axis=2)).sum())
                t_score += t1 - t0
                frames += codes.shape[1]
            per = nll / frames
            context = f"conv, {c.receptive_field} frames" if c.context == "conv" else f"GRU x {c.gru_layers}"
            params = sum(p.numel() for p in model.parameters())
            rows.append(
                f"| `{path}` ({card.name}) | {context} | {params / 1e6:.2f} M | "
                + " / ".join(f"{b:.3f}" for b in per)
                + f" | {per.mean():.3f} | {coded / frames / c.num_codebooks:.3f} | {seconds / t_score:.0f} "
                f"| {seconds / t_step:.1f} |"
            )
    text = "\n".join(rows) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
