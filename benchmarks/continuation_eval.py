"""Does a continuation sampled from the token prior keep the prompt's voice?

    python benchmarks/continuation_eval.py --list ../shared/data/speech/dev.list --root ../shared/data \\
        --model speech-16k --prompt-seconds 3 --seconds 3 --out /tmp/continuation.md

For every LibriSpeech reader of the list (held-out speakers), the first ``--prompt-seconds`` of the utterance
are the prompt; the prior samples ``--seconds`` more codes (seed 0, temperature 1) and the model decodes
them. An independent speaker-verification model (resemblyzer's; ``pip install webrtcvad-wheels`` then
``pip install --no-deps resemblyzer``) embeds the prompt, the sampled continuation (the audio after the
prompt) and the utterance's own next seconds; the table gives the mean cosine of prompt to continuation,
against prompt to the true continuation (same reader: the ceiling) and prompts of two different readers
(the floor). ``--prior DIR`` samples another prior over the same codes (a run's ``model`` folder) instead of
the model's own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", type=Path, required=True)
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--model", default="speech-16k")
    parser.add_argument("--prompt-seconds", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--prior", type=Path, help="a prior folder to sample instead of the model's own")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    import soxr
    from resemblyzer import VoiceEncoder, preprocess_wav

    import vqaudio
    from vqaudio.audio import load_audio
    from vqaudio.prior.integer import IntegerPrior
    from vqaudio.prior.io import load_prior
    from vqaudio.prior.pairing import prior_for
    from vqaudio.prior.sample import sample_codes

    tok = vqaudio.load(args.model)
    model, _ = prior_for(tok) if args.prior is None else load_prior(args.prior)
    prior = IntegerPrior(model)
    judge = VoiceEncoder("cpu", verbose=False)
    sr = tok.sample_rate

    def embed(x: np.ndarray) -> np.ndarray:
        y = x if sr == 16000 else soxr.resample(x, sr, 16000)
        return judge.embed_utterance(preprocess_wav(y, source_sr=16000))

    paths = [args.root / line.strip() for line in args.list.read_text().splitlines() if line.strip()]
    seen, rows = set(), []
    p_len, c_len = int(args.prompt_seconds * sr), int(args.seconds * sr)
    for path in paths:
        speaker = path.stem.split("-")[0]
        if path.parent.parent.name != speaker or speaker in seen:
            continue
        audio = load_audio(path, sample_rate=sr, mono=True).samples[0].numpy()
        if len(audio) < p_len + c_len:
            continue
        seen.add(speaker)
        prompt = audio[:p_len]
        codes = tok.encode(prompt, sr, n_codebooks=model.config.num_codebooks).codes.numpy()
        frames = round(args.seconds * tok.frame_rate)
        sampled = sample_codes(prior, frames, prompt=codes, temperature=args.temperature, seed=0)
        out = tok.decode(sampled).samples[0].numpy()
        rows.append(
            (embed(prompt), embed(out[codes.shape[1] * tok.model.hop_length :]), embed(audio[p_len : p_len + c_len]))
        )
    if len(rows) < 2:
        print("error: fewer than two readers with long enough utterances", file=sys.stderr)
        return 1
    to_sampled = np.mean([float(p @ c) for p, c, _ in rows])
    to_true = np.mean([float(p @ t) for p, _, t in rows])
    others = np.mean([float(rows[i][0] @ rows[j][0]) for i in range(len(rows)) for j in range(len(rows)) if i != j])
    text = (
        f"{args.model} + prior, {len(rows)} held-out readers, prompt {args.prompt_seconds:g} s, continuation "
        f"{args.seconds:g} s, temperature {args.temperature:g} (resemblyzer cosine)\n\n"
        "| prompt to sampled continuation | prompt to true continuation | prompts of two readers |\n"
        "|---:|---:|---:|\n"
        f"| {to_sampled:.3f} | {to_true:.3f} | {others:.3f} |\n"
    )
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
