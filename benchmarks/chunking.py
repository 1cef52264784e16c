"""How far chunked decoding drifts from a whole-file pass, per vocoder, on a real model and real audio.

    python benchmarks/chunking.py --model speech-16k --audio examples/hello.wav --windows 5 1 0.5

The tokenizer decodes long inputs window by window (see docs/cli.md, "Long files"). For the learned vocoder
and waveform models the result should equal a whole-file pass; Griffin-Lim, whose phase estimate is global,
is expected to differ a little. This prints, for each window length, the largest absolute sample difference,
where in the clip it falls, and the spectral convergence ``|| |S_whole| - |S_chunked| ||_F / || |S_whole| ||_F``
(512-point STFT, hop 128) of the unclamped output, as a markdown table.

For a spectral model decoded in float32 each back end also gets a floor row, "whole, mel x (1 + noise)": a
whole-file pass on the decoded log-mel with every value scaled by ``1 + e``, ``e`` Gaussian with standard
deviation ``--noise`` (1e-7 by default, about float32's relative rounding), against the same pass without it.
Chunking changes the shapes of the matrix products, so it rounds differently; this row shows how far a back
end carries a disturbance of that size on its own, the floor chunking sits on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vqaudio.card import shipped_models
from vqaudio.models.io import load_model
from vqaudio.precision import PRECISIONS
from vqaudio.spectral import STFTConfig, stft
from vqaudio.tokenizer import Tokenizer
from vqaudio.vocoders.griffin_lim import spectral_convergence

_WHOLE = 1e6  # seconds: one window covers any input
_STFT = STFTConfig(n_fft=512, hop_length=128)


def _row(vocoder: str, label: str, reference: torch.Tensor, out: torch.Tensor, sample_rate: int) -> str:
    """A table row: the largest absolute difference of ``out`` from ``reference`` (both ``[T]``), where it falls
    (seconds) and the spectral convergence; an exact match prints 0 and no place."""
    size = (out - reference).abs()
    diff = float(size.max())
    shown, at = (f"{diff:.2e}", f"{int(size.argmax()) / sample_rate:.2f}") if diff else ("0", "-")
    # Both magnitudes from the same STFT, so identical audio scores exactly 0.
    convergence = spectral_convergence(stft(reference, _STFT).abs(), out, _STFT)
    return f"| {vocoder} | {label} | {shown} | {at} | {convergence:.2e} |"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="speech-16k", help="shipped model name or model directory")
    p.add_argument("--audio", type=Path, default=Path(__file__).resolve().parents[1] / "examples" / "hello.wav")
    p.add_argument("--windows", type=float, nargs="+", default=[5.0, 1.0, 0.5], help="window lengths in seconds")
    p.add_argument("--precision", default="float32", choices=PRECISIONS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--noise",
        type=float,
        default=1e-7,
        help="relative noise on the decoded log-mel for the floor row (float32 only)",
    )
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
            print(_row(vocoder or "-", f"{window:g}", reference, out, whole.sample_rate))
        if vocoder is not None and whole.model.family == "spectral" and args.precision == "float32":
            with torch.inference_mode():
                mel = whole.model.decode(codes[None].long())
                mel = whole.model.postfilter(mel) if whole.postfilter else mel
                clean = whole.vocode(mel, vocoder)[0]
                noise = torch.randn(mel.shape, generator=torch.Generator().manual_seed(0)) * args.noise
                noisy = whole.vocode(mel * (1 + noise), vocoder)[0]
            if not torch.equal(clean, reference):  # the floor row must start from the windowed rows' reference
                raise SystemExit("the floor row's whole-file pass differs from the tokenizer's")
            print(_row(vocoder, f"whole, mel x (1 + {args.noise:g} noise)", clean, noisy, whole.sample_rate))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
