"""Speed of the residual quantizer's code search: its ranking against torch's, and the beam search's chunk size.

    python benchmarks/code_search.py --threads 1 --rows 1157
    python benchmarks/code_search.py --threads 2 --seconds 30 --beams 2 4 8

The ranking rows time ``vq.smallest`` against ``topk`` (k > 1) and ``argmin`` (k = 1) on random
``[rows, 8 x 1024]`` tables: the beam of 8 over 1024-entry codebooks. The search rows encode the encoder's
latents of ``--seconds`` of the example clip (repeated) with the model's first ``--codebooks`` codebooks at
each beam, with table chunks of ``rvq.BEAM_TABLE_ENTRIES`` and of ``--compare-entries`` entries, and check
that both give the same codes. Each figure is the median of ``--repeats`` runs after one warm-up; run it on an
idle machine and compare ratios within one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

import vqaudio.quantizers.rvq as rvq
from vqaudio.errors import VQAudioError

ROOT = Path(__file__).resolve().parents[1]


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: allocations and thread pools
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def ranking_rows(rows: int, columns: int, repeats: int) -> list[str]:
    from vqaudio.quantizers.vq import smallest

    dist = torch.rand(rows, columns, generator=torch.Generator().manual_seed(0))
    out = []
    for k in (1, 8):
        torch_fn: Callable[[], object]
        if k == 1:
            torch_name, torch_fn = "argmin", partial(dist.argmin, 1, keepdim=True)
        else:
            torch_name, torch_fn = f"topk({k})", partial(dist.topk, k, dim=1, largest=False)
        ours = _median_seconds(partial(smallest, dist, k), repeats)
        theirs = _median_seconds(torch_fn, repeats)
        shape = f"[{rows}, {columns}]"
        out.append(
            f"| ranking, k = {k} | {shape} | {torch_name}: {theirs * 1e3:.2f} ms | "
            f"smallest: {ours * 1e3:.2f} ms | {theirs / ours:.2f} |"
        )
    return out


def search_rows(model: str, seconds: float, n: int, beams: list[int], compare_entries: int, repeats: int) -> list[str]:
    from vqaudio.audio import load_audio
    from vqaudio.card import shipped_models
    from vqaudio.models.io import load_model
    from vqaudio.models.spectral import SpectralVQVAE

    shipped = shipped_models()
    loaded = load_model(shipped.get(model, model))
    codec = loaded.codec
    if not isinstance(codec, SpectralVQVAE) or not isinstance(codec.quantizer, rvq.ResidualVectorQuantizer):
        raise VQAudioError(f"{model}: not a spectral codec with a residual quantizer")
    if n > codec.quantizer.num_codebooks:  # main() has already refused fewer than 2
        raise VQAudioError(f"{model}: --codebooks must be 2 to {codec.quantizer.num_codebooks}, got {n}")
    clip = load_audio(ROOT / "examples" / "hello.wav", sample_rate=loaded.config.mel.sample_rate, mono=True)
    need = int(seconds * clip.sample_rate)
    audio = clip.samples.repeat(1, -(-need // clip.samples.shape[-1]))[:, :need]
    with torch.inference_mode():
        z, _ = codec.latents(audio[None])
        quantizer = codec.quantizer
        default = rvq.BEAM_TABLE_ENTRIES
        out = []
        for beam in beams:
            timings, codes = {}, {}
            for entries in (default, compare_entries):
                rvq.BEAM_TABLE_ENTRIES = entries
                try:
                    timings[entries] = _median_seconds(partial(quantizer.encode, z, n, beam=beam), repeats)
                    codes[entries] = quantizer.encode(z, n, beam=beam)
                finally:
                    rvq.BEAM_TABLE_ENTRIES = default
            same = "yes" if torch.equal(codes[default], codes[compare_entries]) else "NO"
            a, b = timings[default], timings[compare_entries]
            out.append(
                f"| search, beam {beam}, {n} codebooks | {seconds:g} s, {z.shape[-1]} frames | "
                f"chunks of {compare_entries:,} entries: {b * 1e3:.0f} ms | "
                f"chunks of {default:,} entries: {a * 1e3:.0f} ms | {b / a:.2f} (same codes: {same}) |"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="speech-16k", help="shipped model name or model directory")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rows", type=int, default=1024, help="rows of the ranking tables")
    p.add_argument("--seconds", type=float, default=30.0, help="audio for the search rows")
    p.add_argument("--codebooks", type=int, default=3, help="codebooks searched, 2 or more (speech-16k's default: 3)")
    p.add_argument("--beams", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--compare-entries", type=int, default=1 << 22, help="table entries per chunk to compare with")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    if (
        min(args.threads, args.rows, args.repeats, args.compare_entries) < 1
        or args.codebooks < 2
        or not 0.1 <= args.seconds <= 3600
        or min(args.beams) < 2
        or args.compare_entries == rvq.BEAM_TABLE_ENTRIES
    ):
        print(
            "error: --threads, --rows, --repeats and --compare-entries must be positive (and --compare-entries not "
            f"the default {rvq.BEAM_TABLE_ENTRIES}), --codebooks and each beam at least 2, --seconds 0.1 to 3600",
            file=sys.stderr,
        )
        return 2
    torch.set_num_threads(args.threads)
    try:
        search = search_rows(args.model, args.seconds, args.codebooks, args.beams, args.compare_entries, args.repeats)
    except VQAudioError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.threads} thread(s), median of {args.repeats} runs; ratio: the other's time over vqaudio's\n")
    print("| what | size | the other | vqaudio's | ratio |")
    print("| --- | --- | --- | --- | ---: |")
    for line in [*ranking_rows(args.rows, 8 * 1024, args.repeats), *search]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
