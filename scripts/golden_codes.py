"""Write (or check) the golden codes of the shipped models: the codes of examples/hello.wav.

    .venv/bin/python scripts/golden_codes.py            # rewrite tests/fixtures/golden_codes/<model>.npz
    .venv/bin/python scripts/golden_codes.py --check    # the fraction of codes equal to the fixtures, per model

For each shipped model: greedy search (beam 1) and the card's default beam, each at 1 codebook, the card's
default count and all codebooks (the settings the model card lists). Each fixture also records the machine
that made it (CPU model and instruction-set flags, torch version): tests/test_golden_codes.py compares exactly
there and asks for at least 99.5 % equal codes on other CPUs, where float32 near-ties may flip a code.
A model that ships a token prior also gets ``<model>.vqz``: the default-setting codes compressed with it,
which tests/test_golden_codes.py decompresses (exactly, on any CPU) and compresses again (the same bytes).
Rewrite the fixtures only on purpose: with a new release of a model or its prior, or a bump of CODES_VERSION.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "examples" / "hello.wav"
FIXTURES = ROOT / "tests" / "fixtures" / "golden_codes"


def machine_id() -> str:
    """CPU model, a hash of its flags, and the torch version: what can change float32 arithmetic."""
    model, flags = platform.processor(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model.strip():
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = " ".join(sorted(value.split()))
    except OSError:
        pass
    digest = hashlib.sha256(flags.encode()).hexdigest()[:12]
    return f"{model or platform.machine()} | flags {digest} | torch {torch.__version__}"


def settings(name: str) -> list[tuple[int, int]]:
    """(beam, codebooks) pairs for one shipped model."""
    import vqaudio

    tok = vqaudio.load(name)
    counts = sorted({1, tok.default_codebooks, tok.num_codebooks})
    return [(beam, k) for beam in sorted({1, tok.default_beam}) for k in counts]


def golden(name: str) -> dict[str, np.ndarray]:
    """``{"beam<B>_k<K>": codes [K, F] uint16}`` for one shipped model."""
    import vqaudio

    out = {}
    for beam, k in settings(name):
        tok = vqaudio.load(name, beam=beam)
        out[f"beam{beam}_k{k}"] = tok.encode(CLIP, n_codebooks=k).codes.numpy().astype(np.uint16)
    return out


def golden_vqz(name: str) -> bytes | None:
    """The ``.vqz`` bytes of the clip at the model's default settings, or None if it ships no prior."""
    import vqaudio
    from vqaudio.compress import compress_tokens, to_bytes
    from vqaudio.prior.io import has_prior

    tok = vqaudio.load(name)
    if tok.loaded.path is None or not has_prior(tok.loaded.path):
        return None
    return to_bytes(compress_tokens(tok, tok.encode(CLIP)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the fixtures instead of writing them")
    args = parser.parse_args()
    import vqaudio

    for name in sorted(vqaudio.shipped_models()):
        codes = golden(name)
        path = FIXTURES / f"{name}.npz"
        if args.check:
            with np.load(path) as stored:
                equal = sum(int((stored[k] == v).sum()) for k, v in codes.items())
                total = sum(v.size for v in codes.values())
                made = str(stored["machine"])
            share = 100 * equal / total
            print(f"{name}: {equal}/{total} codes equal ({share:.2f} %) on {machine_id()}; made on {made}")
        else:
            FIXTURES.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, machine=np.array(machine_id()), **codes)
            print(f"wrote {path.relative_to(ROOT)}: {', '.join(codes)}")
            vqz = golden_vqz(name)
            if vqz is not None:
                (FIXTURES / f"{name}.vqz").write_bytes(vqz)
                print(f"wrote {(FIXTURES / f'{name}.vqz').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
