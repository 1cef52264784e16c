"""Speed and memory of vqaudio models: x real-time for tokenize, resynth and each back end alone (vocode: the
clip's own log-mel to audio), and peak memory.

    python benchmarks/speed.py --model speech-16k --audio examples/hello.wav --threads 2
    python benchmarks/speed.py --model speech-16k --long-seconds 3600     # peak memory on a 1-hour file
    python benchmarks/speed.py --model speech-16k --beams 1 8             # tokenize with each code search width
    python benchmarks/speed.py --runtime onnxruntime --int8 encoder,decoder,vocoder   # the int8 graphs
    python benchmarks/speed.py --runtime onnxruntime --ort-optimization basic [--ort-spinning]
    python benchmarks/speed.py --encodec 10 60      # EnCodec 24 kHz beside the model, same speech, same run
    python benchmarks/speed.py --cli 10             # `vqaudio resynth` on a 10 s file, process start included

Every measurement runs in a fresh subprocess so its peak resident memory (ru_maxrss) is its own. x real-time
is audio seconds divided by the median wall time of ``--repeats`` runs after one warm-up. Time the machine
when nothing else runs: a background job halves what this sees.

The work column counts the floating-point operations of the dense matrix products and convolutions in one
more run after the timed ones (``torch.utils.flop_counter``; FFTs, sparse products and elementwise steps are not
counted), per second of audio, and the rate column is that work times x real-time: the arithmetic rate the
run sustained. Together they say how far a speed target is from what the CPU does: at a fixed work per second
of audio, x real-time only rises with the rate.

``--encodec`` times EnCodec's 24 kHz model (the ``encodec`` package, ``pip install --no-deps encodec einops``)
with random weights (``pretrained=False``: the same layers do the same work) at 1.5 kbps, encode and encode +
decode, on the same speech as the model (the example clip repeated to each length, resampled to 24 kHz), each
in its own subprocess, and prints the ratio. The package imports torchaudio for file helpers the benchmark
never calls, and torchaudio's wheels do not load on this torch, so an empty module stands in for it.
``--cli`` times the command a person runs, ``vqaudio resynth`` on a file of that many seconds, as wall time
from process start to exit.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _encodec_worker(args: argparse.Namespace) -> dict[str, object]:
    import types

    import torch

    from vqaudio.audio import load_audio

    # encodec imports torchaudio at module level for helpers (file loading, a discriminator) not used here.
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    import encodec

    torch.set_num_threads(args.threads)
    model = encodec.EncodecModel.encodec_model_24khz(pretrained=False).eval()
    model.set_target_bandwidth(1.5)
    audio = load_audio(args.audio, sample_rate=24000, mono=True).samples[None]  # [1, 1, T]
    seconds = audio.shape[-1] / 24000

    @torch.inference_mode()
    def run() -> None:
        frames = model.encode(audio)
        if args.task == "encodec-resynth":
            model.decode(frames)

    run()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return {
        "task": args.task,
        "seconds": seconds,
        "x_realtime": seconds / statistics.median(times),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _worker(args: argparse.Namespace) -> dict[str, object]:
    if args.task.startswith("encodec"):
        return _encodec_worker(args)
    import torch

    import vqaudio
    from vqaudio.audio import load_audio
    from vqaudio.runtime.sessions import OnnxOptions

    torch.set_num_threads(args.threads)
    tok = vqaudio.load(
        args.model,
        encode_precision=args.encode_precision,
        decode_precision=args.decode_precision,
        beam=args.beam,
        runtime=args.runtime,
        onnx=OnnxOptions(int8=args.int8, optimization=args.ort_optimization, spinning=args.ort_spinning)
        if args.runtime == "onnxruntime"
        else None,
    )
    names = {torch.float32: "float32", torch.bfloat16: "bfloat16"}
    arithmetic = (
        names[tok.encode_dtype] if args.task == "tokenize" else f"{names[tok.encode_dtype]} / {names[tok.decode_dtype]}"
    )
    if args.runtime == "onnxruntime":  # the graphs run in float32 (or int8) whatever the torch precision says
        arithmetic = f"onnxruntime int8 {'+'.join(args.int8)}" if args.int8 else "onnxruntime float32"
        if args.ort_optimization != "all" or args.ort_spinning:
            spin = ", spinning" if args.ort_spinning else ""
            arithmetic += f" (optimisation {args.ort_optimization}{spin})"
    k = args.n_codebooks
    if args.task == "long":
        # Stream a long file through encode, then decode it straight back to disk: only the codes and one
        # window of audio are ever in memory.
        t0 = time.perf_counter()
        enc = tok.encode(args.audio, n_codebooks=k)
        with tempfile.TemporaryDirectory() as tmp:
            tok.decode_to_file(enc, Path(tmp) / "out.wav", vocoder=args.vocoder)
        wall = time.perf_counter() - t0
        seconds = enc.original_length / enc.sample_rate
        return {
            "task": "resynth-long (file to file)",
            "beam": tok.beam,
            "vocoder": args.vocoder,
            "arithmetic": arithmetic,
            "seconds": seconds,
            "x_realtime": seconds / wall,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    audio = load_audio(args.audio, sample_rate=tok.sample_rate, mono=True).samples[0]
    seconds = audio.numel() / tok.sample_rate

    if args.task == "vocode":
        from vqaudio.spectral import log_mel

        arithmetic = names[tok.vocoder_dtype(args.vocoder)]
        mel = log_mel(audio[None], tok.vocoder(args.vocoder).mel_config)  # analysis is not the back end's cost

    @torch.inference_mode()
    def run() -> None:
        if args.task == "tokenize":
            tok.encode(audio, tok.sample_rate, n_codebooks=k)
        elif args.task == "vocode":
            tok.vocode(mel, args.vocoder)
        else:
            tok.resynth(audio, tok.sample_rate, n_codebooks=k, vocoder=args.vocoder)

    run()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    wall = statistics.median(times)
    # Peak memory is read before counting: the flop counter's import alone adds tens of MB that the task
    # itself never needs.
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        run()
    work = counter.get_total_flops() / seconds
    if args.runtime != "torch":  # the counter sees torch's products only, not the graphs'
        return {
            "task": "vocode (mel to audio)" if args.task == "vocode" else args.task,
            "beam": None if args.task == "vocode" else tok.beam,
            "vocoder": args.vocoder,
            "arithmetic": arithmetic,
            "seconds": seconds,
            "x_realtime": seconds / wall,
            "peak_rss_mb": peak_mb,
        }
    return {
        "task": "vocode (mel to audio)" if args.task == "vocode" else args.task,
        "beam": None if args.task == "vocode" else tok.beam,
        "vocoder": args.vocoder,
        "arithmetic": arithmetic,
        "seconds": seconds,
        "x_realtime": seconds / wall,
        "mflop_per_second": work / 1e6,
        "gflop_rate": work * seconds / wall / 1e9,
        "peak_rss_mb": peak_mb,
    }


def _make_long_file(seconds: float, path: Path) -> Path:
    """A 16 kHz wav of exactly ``seconds`` made by repeating the example clip, written block by block."""
    import soundfile as sf

    clip, sr = sf.read(Path(__file__).resolve().parents[1] / "examples" / "hello.wav", dtype="float32")
    total = round(seconds * sr)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        written = 0
        while written < total:
            f.write(clip[: total - written])
            written += min(clip.shape[0], total - written)
    return path


def _cli_times(seconds: float, model: str, threads: int, repeats: int) -> list[float]:
    """Wall times of ``vqaudio resynth`` (a fresh process each: start, import, load, read, encode, decode, write)."""
    import os

    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        src = _make_long_file(seconds, Path(tmp) / "in.wav")
        for i in range(repeats + 1):  # the first run warms the disk cache
            cmd = [sys.executable, "-m", "vqaudio.cli", "resynth", str(src), str(Path(tmp) / f"out{i}.wav")]
            t0 = time.perf_counter()
            subprocess.run([*cmd, "-m", model, "--no-progress"], check=True, capture_output=True, env=env)
            times.append(time.perf_counter() - t0)
    return times[1:]


def _cpu_name() -> str:
    """The processor's model name, as the kernel reports it (speed depends on it more than on anything else)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "an unknown CPU"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="speech-16k")
    p.add_argument("--audio", type=Path, default=Path(__file__).resolve().parents[1] / "examples" / "hello.wav")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--n-codebooks", type=int, default=None)
    p.add_argument(
        "--beams",
        type=int,
        nargs="+",
        default=None,
        help="code search widths to tokenize with, one row each (default: the model's); the other tasks use the first",
    )
    p.add_argument("--vocoders", nargs="+", default=["learned", "griffin-lim", "hybrid"])
    p.add_argument("--encode-precision", default="float32", choices=["auto", "float32", "bfloat16"])
    p.add_argument("--decode-precision", default="auto", choices=["auto", "float32", "bfloat16"])
    p.add_argument("--runtime", default="torch", choices=["torch", "onnxruntime"], help="the model's execution path")
    p.add_argument(
        "--int8",
        type=lambda text: tuple(text.split(",")),
        default=(),
        metavar="GRAPHS",
        help="with --runtime onnxruntime: run these graphs as int8, comma-separated among encoder, decoder, vocoder",
    )
    p.add_argument("--long-seconds", type=float, default=0.0, help="also stream-encode a file this long")
    p.add_argument("--out", type=Path, default=None, help="append the markdown table to this file")
    p.add_argument(
        "--ort-optimization",
        default="all",
        choices=["disabled", "basic", "extended", "all"],
        help="onnxruntime's graph optimisation level (with --runtime onnxruntime)",
    )
    p.add_argument("--ort-spinning", action="store_true", help="let idle onnxruntime threads spin")
    p.add_argument(
        "--encodec", type=float, nargs="+", default=None, metavar="SECONDS", help="time EnCodec beside the model"
    )
    p.add_argument("--cli", type=float, default=None, metavar="SECONDS", help="time `vqaudio resynth` end to end")
    p.add_argument(
        "--task",
        choices=["tokenize", "resynth", "vocode", "long", "encodec-tokenize", "encodec-resynth"],
        help=argparse.SUPPRESS,
    )
    p.add_argument("--vocoder", default=None, help=argparse.SUPPRESS)
    p.add_argument("--beam", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.beams is not None and min(args.beams) < 1:
        p.error("--beams must be whole numbers >= 1")
    if args.int8 and args.runtime != "onnxruntime":
        p.error("--int8 needs --runtime onnxruntime")
    if (args.ort_optimization != "all" or args.ort_spinning) and args.runtime != "onnxruntime":
        p.error("--ort-optimization and --ort-spinning need --runtime onnxruntime")
    if set(args.int8) - {"encoder", "decoder", "vocoder"}:
        p.error(f"--int8 takes graph names among encoder, decoder, vocoder, got {','.join(args.int8)}")
    if args.task:  # subprocess mode
        print(json.dumps(_worker(args)))
        return 0

    def measure(task: str, audio: Path, vocoder: str | None = None, beam: int | None = None) -> dict[str, object]:
        cmd = [
            sys.executable,
            __file__,
            "--task",
            task,
            "--model",
            args.model,
            "--audio",
            str(audio),
            "--threads",
            str(args.threads),
            "--repeats",
            str(args.repeats),
            "--encode-precision",
            args.encode_precision,
            "--decode-precision",
            args.decode_precision,
            "--runtime",
            args.runtime,
        ]
        if args.n_codebooks:
            cmd += ["--n-codebooks", str(args.n_codebooks)]
        if args.int8:
            cmd += ["--int8", ",".join(args.int8)]
        if args.runtime == "onnxruntime":
            cmd += ["--ort-optimization", args.ort_optimization] + (["--ort-spinning"] if args.ort_spinning else [])
        if vocoder:
            cmd += ["--vocoder", vocoder]
        if beam is not None:
            cmd += ["--beam", str(beam)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    if args.encodec:
        return _encodec_table(args, measure)
    if args.cli:
        times = _cli_times(args.cli, args.model, args.threads, args.repeats)
        median = statistics.median(times)
        print(
            f"`vqaudio resynth` of {args.cli:g} s with {args.model} on {_cpu_name()}, "
            f"{_count(args.threads, 'thread')}: median {median:.2f} s wall over {_count(len(times), 'run')} "
            f"(min {min(times):.2f}, max {max(times):.2f}), {args.cli / median:.1f}x real time"
        )
        return 0
    beams = args.beams or [None]
    rows = [measure("tokenize", args.audio, beam=b) for b in beams]
    import vqaudio

    available = vqaudio.load(args.model).vocoders or (None,)
    rows += [measure("resynth", args.audio, v, beams[0]) for v in args.vocoders if v in available]
    if available == (None,):
        rows.append(measure("resynth", args.audio, beam=beams[0]))
    else:
        rows += [measure("vocode", args.audio, v) for v in args.vocoders if v in available]
    if args.long_seconds:
        with tempfile.TemporaryDirectory() as tmp:
            fast = "learned" if "learned" in available else None
            rows.append(measure("long", _make_long_file(args.long_seconds, Path(tmp) / "long.wav"), fast, beams[0]))
    k = args.n_codebooks or "default"
    command = "python " + " ".join(["benchmarks/speed.py", *(sys.argv[1:] if argv is None else argv)])
    from vqaudio.precision import native_bfloat16

    lines = [
        "## Speed",
        "",
        f"Produced by `{command}`. Time it on an otherwise idle machine: a background job halves these figures.",
        "",
        f"Speed of `{args.model}` ({k} codebooks), {_count(args.threads, 'thread')}, "
        f"median of {_count(args.repeats, 'run')}, on "
        f"{_cpu_name()} ({'with' if native_bfloat16() else 'without'} native bfloat16):",
        "",
        "Arithmetic is encoder / decoder; `auto` decoding uses bfloat16 where the CPU has it natively. Beam: the"
        " width of the code search when encoding (1: greedy).",
        "",
        "Work: MFLOP of dense matrix products and convolutions per second of audio (FFTs and the sparse products"
        " of Griffin-Lim's mel inversion not counted); rate: the GFLOP/s that work ran at (work x real-time).",
        "",
        "| task | beam | vocoder | arithmetic | audio (s) | x real-time | work (MFLOP/s) | rate (GFLOP/s) |"
        " peak memory (MB) |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]

    def number(r: dict[str, object], key: str, digits: int) -> str:
        return f"{float(r[key]):.{digits}f}" if key in r else "-"  # type: ignore[arg-type]

    for r in rows:
        lines.append(
            f"| {r['task']} | {r.get('beam') or '-'} | {r.get('vocoder') or '-'} | {r['arithmetic']} | "
            f"{number(r, 'seconds', 1)} | "
            f"{number(r, 'x_realtime', 0)} | {number(r, 'mflop_per_second', 0)} | {number(r, 'gflop_rate', 1)} | "
            f"{number(r, 'peak_rss_mb', 0)} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        previous = args.out.read_text() if args.out.exists() else ""
        with open(args.out, "a") as f:
            # A blank line first, so the heading does not run into a table above it.
            f.write(("\n" if previous and not previous.endswith("\n\n") else "") + table + "\n")
    return 0


def _encodec_table(args: argparse.Namespace, measure: object) -> int:
    """EnCodec 24 kHz and ``args.model`` on the same speech of each length, in one run, with their ratio."""
    lines = [
        f"Produced by `python benchmarks/speed.py {' '.join(sys.argv[1:])}` on {_cpu_name()}, "
        f"{_count(args.threads, 'thread')}, median of {_count(args.repeats, 'run')}:",
        "",
        f"| audio (s) | task | {args.model}, x real time | EnCodec 24 kHz 1.5 kbps, x real time | ratio "
        f"| peak memory {args.model} / EnCodec (MB) |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.encodec:
            clip = _make_long_file(seconds, Path(tmp) / f"speech{seconds:g}.wav")
            for task in ("tokenize", "resynth"):
                ours = measure(task, clip)  # type: ignore[operator]
                theirs = measure(f"encodec-{task}", clip)  # type: ignore[operator]
                ratio = float(ours["x_realtime"]) / float(theirs["x_realtime"])
                lines.append(
                    f"| {seconds:g} | {task} | {float(ours['x_realtime']):.0f} | {float(theirs['x_realtime']):.1f} "
                    f"| {ratio:.0f}x | {float(ours['peak_rss_mb']):.0f} / {float(theirs['peak_rss_mb']):.0f} |"
                )
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        with open(args.out, "a") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
