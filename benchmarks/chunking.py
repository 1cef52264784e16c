"""How far chunked decoding drifts from a whole-file pass, per vocoder, on a real model and real audio.

    python benchmarks/chunking.py --model speech-16k --audio examples/hello.wav --windows 5 1 0.5

The tokenizer decodes long inputs window by window (see docs/cli.md, "Long files"). For the learned vocoder
and waveform models the result should equal a whole-file pass; Griffin-Lim, whose phase estimate is global,
is expected to differ a little. This prints, for each window length, the largest absolute sample difference,
where in the clip it falls, and the spectral convergence ``|| |S_whole| - |S_chunked| ||_F / || |S_whole| ||_F``
(512-point STFT, hop 128) of the unclamped output, as a markdown table.

For a spectral model each back end also gets a row "whole, mel + noise": a whole-file pass on the decoded
log-mel plus Gaussian noise of standard deviation ``--noise`` (1e-7 by default, about float32 rounding), against
the same pass without it. Chunking changes the shapes of the matrix products, so it rounds differently; this
row shows how far a back end carries a difference of that size on its own, which is the floor chunking sits on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vqaudio.models.io import load_model
from vqaudio.spectral import STFTConfig, magnitude
from vqaudio.tokenizer import PRECISIONS, Tokenizer, shipped_models
from vqaudio.vocoders.griffin_lim import spectral_convergence

_WHOLE = 1e6  # seconds: one window covers any input
_STFT = STFTConfig(n_fft=512, hop_length=128)


def _largest(difference: torch.Tensor, sample_rate: int) -> tuple[float, float]:
    """The largest absolute difference ``[T]`` and where it falls, in seconds."""
    size = difference.abs()
    return float(size.max()), int(size.argmax()) / sample_rate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="speech-16k", help="shipped model name or model directory")
    p.add_argument("--audio", type=Path, default=Path(__file__).resolve().parents[1] / "examples" / "hello.wav")
    p.add_argument("--windows", type=float, nargs="+", default=[5.0, 1.0, 0.5], help="window lengths in seconds")
    p.add_argument("--precision", default="float32", choices=PRECISIONS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--noise", type=float, default=1e-7, help="noise added to the decoded log-mel for the floor row")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    shipped = shipped_models()
    loaded = load_model(shipped.get(args.model, args.model))

    def tokenizer(window: float) -> Tokenizer:
        return Tokenizer(loaded, window_seconds=window, decode_precision=args.precision)

    whole = tokenizer(_WHOLE)
    codes = whole.encode(args.audio).codes
    print(f"`{args.model}` on `{args.audio.name}` ({codes.shape[1]} frames), decoder arithmetic {args.precision}:\n")
    print("| vocoder | window (s) | max abs diff | at (s) | spectral convergence |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for vocoder in whole.vocoders or (None,):
        reference = torch.cat(list(whole.iter_decode(codes, vocoder)))
        for window in args.windows:
            out = torch.cat(list(tokenizer(window).iter_decode(codes, vocoder)))
            diff, at = _largest(out - reference, whole.sample_rate)
            convergence = spectral_convergence(magnitude(reference, _STFT), out, _STFT)
            print(f"| {vocoder or '-'} | {window:g} | {diff:.2e} | {at:.2f} | {convergence:.2e} |")
        if vocoder is not None and whole.model.family == "spectral":
            with torch.inference_mode():
                mel = whole.model.decode(codes[None].long())
                mel = whole.model.postfilter(mel) if whole.postfilter else mel
                clean = whole.vocode(mel, vocoder)[0]
                noise = torch.randn(mel.shape, generator=torch.Generator().manual_seed(0)) * args.noise
                noisy = whole.vocode(mel + noise, vocoder)[0]
            diff, at = _largest(noisy - clean, whole.sample_rate)
            convergence = spectral_convergence(magnitude(clean, _STFT), noisy, _STFT)
            print(f"| {vocoder} | whole, mel + {args.noise:g} noise | {diff:.2e} | {at:.2f} | {convergence:.2e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
