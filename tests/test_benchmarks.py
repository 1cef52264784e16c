"""The benchmark scripts that docs quote, run on the tiny test model: they must run and report sane numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import soundfile as sf
from conftest import speech_like

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_chunking_benchmark(tmp_path: Path, tiny_model_dir: Path) -> None:
    audio = tmp_path / "clip.wav"
    sf.write(audio, speech_like(2.0), 16000)
    cmd = [sys.executable, str(BENCHMARKS / "chunking.py"), "--model", str(tiny_model_dir), "--audio", str(audio)]
    done = subprocess.run([*cmd, "--windows", "0.5", "0.1", "--threads", "1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    rows = [[cell.strip() for cell in row] for row in rows[1:]]  # drop the header
    assert [(r[0], r[1]) for r in rows] == [(v, w) for v in ("learned", "griffin-lim") for w in ("0.5", "0.1")]
    for vocoder, _, diff, convergence in rows:
        bound = 1e-4 if vocoder == "learned" else 1e-1
        assert 0 <= float(diff) <= bound and 0 <= float(convergence) <= bound
