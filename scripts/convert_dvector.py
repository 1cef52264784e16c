"""Start a d-vector units model: a units model's weights with resemblyzer's speaker network as its reference encoder.

    pip install webrtcvad-wheels && pip install --no-deps resemblyzer      # only to read its weights, once
    .venv/bin/python scripts/convert_dvector.py --codec exp/units16k-warp2/model -o exp/units16k-dvec-init

Writes a model directory that ``init_from`` in ``recipes/librispeech/conf/units16k_dvector.toml`` starts from:
the codec of ``--codec`` (encoder, codebook and decoder copied), its learned reference encoder replaced by the
pretrained GE2E network that resemblyzer ships (Apache-2.0; ``vqaudio/models/dvector.py``) and a fresh
projection. Prints the cosine between our embedding and resemblyzer's for a few clips as a check of the
conversion (resemblyzer also trims silences, so expect about 0.95 and up, not exactly 1).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from vqaudio.models.builders import build_codec
from vqaudio.models.conditional import ConditionalVQVAE
from vqaudio.models.io import load_model, save_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codec", type=Path, required=True, help="a units model directory (learned reference)")
    parser.add_argument("--weights", type=Path, help="resemblyzer's pretrained.pt (default: the installed one)")
    parser.add_argument("--check", type=Path, nargs="*", default=[], help="clips to compare embeddings on")
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.weights is None:
        import resemblyzer

        args.weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
    source = load_model(args.codec)
    assert isinstance(source.codec, ConditionalVQVAE), f"{args.codec}: not a speaker-conditioned model"
    config = dataclasses.replace(source.config, speaker=dataclasses.replace(source.config.speaker, encoder="dvector"))
    model = build_codec(config)
    assert isinstance(model, ConditionalVQVAE)
    kept = {k: v for k, v in source.codec.state_dict().items() if not k.startswith("decoder.reference.")}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    assert not unexpected and all(k.startswith("decoder.reference.") for k in missing), (missing, unexpected)
    pretrained = torch.load(args.weights, map_location="cpu")["model_state"]
    dvector = model.decoder.reference.dvector  # type: ignore[union-attr]
    dvector.load_state_dict({k: v for k, v in pretrained.items() if k.startswith(("lstm.", "linear."))})
    save_model(args.out, source.name, config, model, source.vocoder, card={"training": source.card.record("codec")})
    if args.check:
        from resemblyzer import VoiceEncoder, preprocess_wav

        from vqaudio.audio import load_audio

        judge = VoiceEncoder("cpu", verbose=False)
        for clip in args.check:
            audio = load_audio(clip, sample_rate=16000, mono=True).samples[0]
            ours = dvector(audio).numpy()
            theirs = judge.embed_utterance(preprocess_wav(audio.numpy(), source_sr=16000))
            print(f"{clip.name}: cosine {float(np.dot(ours, theirs)):.3f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
