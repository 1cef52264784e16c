"""Where the time goes: tokenize and resynthesis of speech-16k, stage by stage.

    python benchmarks/stage_times.py --list ../shared/data/speech/dev.list --root ../shared/data --seconds 60 \\
        --out /tmp/stage_times.md

The first ``--seconds`` of the listed files, joined, are written to a temporary WAV and processed whole, in one
pass per stage (no windows, so each stage's cost is its own), on ``--threads`` threads with the precisions the
CLI uses (encode in float32, decode ``auto``). Each stage is timed ``--repeats`` times; the table gives the
median, as seconds and as a multiple of real time, and each stage's share of its task. Run it on an idle
machine: it is a profile for choosing what to speed up, not a benchmark of the whole command
(``benchmarks/speed.py`` times those). The default back end counts in resynthesis; the others are listed
beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch


def timed(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first calls allocate and pick kernels
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", type=Path, required=True)
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--model", default="speech-16k")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    import vqaudio
    from vqaudio.audio import load_audio
    from vqaudio.precision import autocast

    torch.set_num_threads(args.threads)
    tok = vqaudio.load(args.model)
    model, sr = tok.model, tok.sample_rate
    pieces, total = [], 0
    for line in args.list.read_text().splitlines():
        if line.strip() and total < args.seconds * sr:
            x = load_audio(args.root / line.strip(), sample_rate=sr, mono=True).samples[0].numpy()
            pieces.append(x)
            total += len(x)
    audio = np.concatenate(pieces)[: int(args.seconds * sr)]
    seconds = len(audio) / sr
    k = tok.default_codebooks
    rows: list[tuple[str, str, float]] = []
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        wav = Path(tmp) / "speech.wav"
        sf.write(wav, audio, sr, subtype="PCM_16")
        x = torch.from_numpy(audio)[None, None]
        mel, mask = model._mel_and_mask(x, None)
        z, _ = model.encoder(model.normalize(mel), mask)
        codes = model.quantizer.encode(z, k, beam=tok.beam)
        stages = [
            ("tokenize", "read the file", lambda: load_audio(wav, sample_rate=sr, mono=True)),
            ("tokenize", "STFT and log-mel", lambda: model._mel_and_mask(x, None)),
            ("tokenize", "encoder", lambda: model.encoder(model.normalize(mel), mask)),
            ("tokenize", f"code search, beam {tok.beam}", lambda: model.quantizer.encode(z, k, beam=tok.beam)),
            ("tokenize (greedy)", "code search, beam 1", lambda: model.quantizer.encode(z, k, beam=1)),
        ]
        with autocast(tok.decode_dtype):
            decoded = model.decode(codes).float()
        stages += [
            ("resynth", "decoder (codes to log-mel)", lambda: _decode(model, codes, tok.decode_dtype)),
            ("resynth", "post-filter", lambda: model.postfilter(decoded)),
        ]
        for name in tok.vocoders:
            voc = tok.vocoder(name)
            # The default back end is part of resynthesis; the others are what choosing them would cost.
            task = "resynth" if name == tok.default_vocoder else "other back ends"
            stages.append((task, f"back end: {name}", _vocode(voc, decoded, tok.vocoder_dtype(name))))
            if name == "learned" and getattr(voc.config, "consistency_iters", 0):
                bare = dataclasses.replace(voc.config, consistency_iters=0)
                stages.append(
                    ("other back ends", "learned: network and inverse STFT only", _with_config(voc, bare, decoded, tok))
                )
        for task, stage, fn in stages:
            rows.append((task, stage, timed(fn, args.repeats)))
    totals: dict[str, float] = {}
    for task, _, t in rows:
        if task in ("tokenize", "resynth"):
            totals[task] = totals.get(task, 0.0) + t
    lines = [
        f"{args.model}, {seconds:.0f} s of speech processed whole, {args.threads} threads, decode "
        f"{str(tok.decode_dtype).replace('torch.', '')}, median of {args.repeats}",
        "",
        "| task | stage | seconds | x real time | share of the task |",
        "|---|---|---:|---:|---:|",
    ]
    for task, stage, t in rows:
        share = f"{100 * t / totals[task]:.0f} %" if task in totals else "–"
        lines.append(f"| {task} | {stage} | {t:.3f} | {seconds / t:.0f} | {share} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


def _decode(model: torch.nn.Module, codes: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    from vqaudio.precision import autocast

    with autocast(dtype):
        return model.decode(codes)


def _vocode(voc: torch.nn.Module, mel: torch.Tensor, dtype: torch.dtype) -> Callable[[], object]:
    from vqaudio.precision import autocast

    def run() -> object:
        with autocast(dtype):
            return voc(mel)

    return run


def _with_config(voc: torch.nn.Module, config: object, mel: torch.Tensor, tok: object) -> Callable[[], object]:
    """The learned vocoder run with another (weightless) setting, such as no consistency projections."""
    run = _vocode(voc, mel, tok.vocoder_dtype("learned"))  # type: ignore[attr-defined]

    def swapped() -> object:
        kept = voc.config
        voc.config = config
        try:
            return run()
        finally:
            voc.config = kept

    return swapped


if __name__ == "__main__":
    sys.exit(main())
