"""The LibriSpeech recipe's debug run, stages 1 to 6, on a synthetic LibriSpeech-layout corpus."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import soundfile as sf
from conftest import speech_like

from vqaudio.models.io import load_model

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "librispeech" / "run.sh"


def test_debug_recipe_end_to_end(tmp_path: Path) -> None:
    corpus = tmp_path / "LibriSpeech"
    for subset, speakers in (("train-clean-100", ("19", "26", "27")), ("dev-clean", ("84",))):
        for i, spk in enumerate(speakers):
            d = corpus / subset / spk / "1"
            d.mkdir(parents=True)
            sf.write(d / f"{spk}-1-0000.flac", speech_like(1.5, 16000, f0=100 + 30 * i, seed=i), 16000)
    bindir = Path(sys.executable).parent
    env = {**os.environ, "VQAUDIO": str(bindir / "vqaudio"), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    work = tmp_path / "work"
    cmd = ["bash", str(RECIPE), "--debug", "--corpus", str(corpus), "--workdir", str(work)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    exp = work / "exp" / "debug"
    assert all((exp / f".stage{i}.done").exists() for i in range(1, 7))
    release = load_model(exp / "release")
    assert release.codec is not None and release.vocoder is not None
    assert (exp / "release" / "README.md").exists()
    assert "vqaudio:" in (exp / "results.md").read_text()
    # Idempotent: a second run skips every stage.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert again.returncode == 0 and "stage 3" not in again.stdout
