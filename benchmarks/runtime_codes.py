"""Do the onnxruntime path's codes equal PyTorch's? Counts the codes that differ, file by file, over a list.

    python benchmarks/runtime_codes.py --list ../shared/data/speech/dev.list --root ../shared/data \
        --models speech-16k units-16k [--int8 encoder]

Each file is tokenized twice with the model's default code search, once by PyTorch and once with ``--runtime
onnxruntime`` (float32 graphs, or the int8 ones named), and the differing codes are counted. ``--list`` is a
file list (paths relative to ``--root``) or a folder, taken whole.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _files(listing: Path, root: Path) -> list[Path]:
    if listing.is_dir():
        from vqaudio.data.manifest import AUDIO_SUFFIXES

        return sorted(p for p in listing.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    return [root / line.strip() for line in listing.read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", type=Path, required=True)
    p.add_argument("--root", type=Path, default=Path("."))
    p.add_argument("--models", nargs="+", default=["speech-16k"])
    p.add_argument("--int8", default=None, metavar="GRAPHS", help="comma-separated int8 graphs for onnxruntime")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    import torch

    import vqaudio
    from vqaudio.errors import VQAudioError
    from vqaudio.runtime.sessions import OnnxOptions

    torch.set_num_threads(args.threads)
    try:
        files = _files(args.list, args.root)
        int8 = tuple(g for g in (args.int8 or "").split(",") if g)
        print(f"PyTorch against onnxruntime ({'int8 ' + args.int8 if int8 else 'float32'}) on {len(files)} files:\n")
        print("| model | codes | differing | files with a difference |")
        print("| --- | ---: | ---: | ---: |")
        for name in args.models:
            ours = vqaudio.load(name)
            graphs = vqaudio.load(name, runtime="onnxruntime", onnx=OnnxOptions(int8=int8))
            total = differing = touched = 0
            for f in files:
                a, b = ours.encode(f).codes, graphs.encode(f).codes
                d = int((a != b).sum())
                total, differing, touched = total + a.numel(), differing + d, touched + (d > 0)
            print(f"| {name} | {total} | {differing} | {touched} of {len(files)} |")
    except (VQAudioError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
