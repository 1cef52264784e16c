"""Fingerprint what the shipped models make of a list of files: a hash of each file's codes and decoded audio.

    .venv/bin/python scripts/fingerprint.py --list ../shared/data/speech/dev.list --root ../shared/data \\
        -o /tmp/before.json
    # ... change the code ...
    .venv/bin/python scripts/fingerprint.py --list ../shared/data/speech/dev.list --root ../shared/data \\
        --compare /tmp/before.json

A refactor that claims to change nothing must leave every hash as it was on the same machine: the codes at the
model's default settings and at greedy search, and the audio decoded with every back end the model ships. The
hashes cover the exact bytes (int64 codes, float32 samples), so one flipped code or one changed sample shows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from vqaudio.audio import load_audio
from vqaudio.tokenizer import load


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def fingerprint(models: list[str], files: list[Path], threads: int) -> dict[str, dict[str, str]]:
    """Per file and model: hashes of the default and greedy codes and of each back end's audio."""
    torch.set_num_threads(threads)
    out: dict[str, dict[str, str]] = {}
    for name in models:
        tok, greedy_tok = load(name), load(name, beam=1)
        for path in files:
            data = load_audio(path)
            audio, sr = data.samples, data.sample_rate
            entry = out.setdefault(str(path), {})
            enc = tok.encode(audio, sr)
            entry[f"{name}/codes"] = _digest(enc.codes.numpy().astype(np.int64))
            greedy = greedy_tok.encode(audio, sr)
            entry[f"{name}/codes-beam1"] = _digest(greedy.codes.numpy().astype(np.int64))
            for vocoder in tok.vocoders:
                wav = tok.decode(enc, vocoder=vocoder)
                entry[f"{name}/audio-{vocoder}"] = _digest(wav.samples.numpy().astype(np.float32))
            print(f"{name} {path.name}", file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", type=Path, required=True, help="file of paths, one per line")
    parser.add_argument("--root", type=Path, default=Path("."), help="what the list's paths are relative to")
    parser.add_argument("-m", "--models", default="speech-16k,units-16k", help="comma-separated model names")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("-o", "--out", type=Path, help="write the fingerprints here (JSON)")
    parser.add_argument("--compare", type=Path, help="compare with fingerprints written earlier")
    args = parser.parse_args(argv)
    files = [args.root / line.strip() for line in args.list.read_text().splitlines() if line.strip()]
    prints = fingerprint(args.models.split(","), files, args.threads)
    if args.out:
        args.out.write_text(json.dumps(prints, indent=1, sort_keys=True) + "\n")
    if args.compare:
        before = json.loads(args.compare.read_text())
        keys = [(f, k) for f, entry in prints.items() for k in entry]
        differ = [(f, k) for f, k in keys if before.get(f, {}).get(k) != prints[f][k]]
        for f, k in differ:
            print(f"differs: {Path(f).name} {k}")
        print(f"{len(keys) - len(differ)} of {len(keys)} hashes identical")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
