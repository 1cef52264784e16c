"""Make the figures and the example report the docs show, from the repository alone.

    .venv/bin/python scripts/make_figures.py                      # all three, about a minute on one core
    .venv/bin/python scripts/make_figures.py --metrics exp/RUN/metrics.jsonl   # a real run's loss curves

Writes:
    docs/figures/hello-spectrograms.png   examples/hello.wav against speech-16k at 0.5 / 1.5 / 3 kbps
    docs/figures/loss-curve.png           `vqaudio plot-log` of a 300-step run of the debug recipe config,
                                          trained on examples/hello.wav and validated on examples/voice2.wav
                                          (or of --metrics)
    docs/report/hello.html                `vqaudio compare examples/hello.wav -k 1,3,6 --reference-codecs`

Every figure is redrawn each time; the Codec2 and Opus rows of the report need `apt-get install codec2
opus-tools` (without them the report says they were left out).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "examples" / "hello.wav"
HELD_OUT = ROOT / "examples" / "voice2.wav"
DEBUG_CONFIG = ROOT / "recipes" / "librispeech" / "conf" / "debug.toml"
FIGURES = ROOT / "docs" / "figures"
REPORT = ROOT / "docs" / "report" / "hello.html"
CODEBOOKS = (1, 3, 6)


def vqaudio(*args: object) -> None:
    """Run a ``vqaudio`` command as a user would, stopping the script if it fails."""
    cmd = [sys.executable, "-m", "vqaudio.cli", *map(str, args)]
    print("$ vqaudio " + " ".join(map(str, args)), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def spectrograms(path: Path) -> None:
    """The example clip and speech-16k's resynthesis of it at 1, 3 and 6 codebooks, one panel each."""
    import vqaudio
    from vqaudio.report import read_clip
    from vqaudio.report_page import spectrogram_figure

    tok = vqaudio.load("speech-16k")
    clip, _ = read_clip(HELLO, tok.sample_rate, max_seconds=60.0)
    signals = [("original: examples/hello.wav", clip)]
    for k in CODEBOOKS:
        audio = tok.resynth(clip, tok.sample_rate, n_codebooks=k).samples[0].numpy()
        signals.append((f"speech-16k, {tok.bitrate(k) / 1000:g} kbps ({k} codebook{'s' if k > 1 else ''})", audio))
    spectrogram_figure(signals, tok.sample_rate, path, overwrite=True)
    print(f"wrote {path}")


def loss_curve(path: Path, metrics: Path | None, steps: int) -> None:
    """``vqaudio plot-log`` of ``metrics``, or of a short debug run trained here first."""
    with tempfile.TemporaryDirectory(prefix="vqaudio-figures-") as tmp:
        if metrics is None:
            run = Path(tmp) / "run"
            vqaudio(
                "train", "--config", DEBUG_CONFIG, "--out", run, "--no-progress", "--steps", steps,
                "--set", "log_every=10", "--set", "valid_every=50", "--set", f"checkpoint_every={steps}",
                "--set", f'data.train=["{HELLO}"]', "--set", f'data.valid=["{HELD_OUT}"]',
            )  # fmt: skip
            metrics = run / "metrics.jsonl"
        vqaudio("plot-log", metrics, "-o", path, "--force")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", type=Path, help="metrics.jsonl of a real run for the loss curve")
    parser.add_argument("--steps", type=int, default=300, help="steps of the debug run (default 300)")
    args = parser.parse_args()
    FIGURES.mkdir(parents=True, exist_ok=True)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    spectrograms(FIGURES / "hello-spectrograms.png")
    loss_curve(FIGURES / "loss-curve.png", args.metrics, args.steps)
    vqaudio("compare", HELLO.relative_to(ROOT), "-k", ",".join(map(str, CODEBOOKS)), "--reference-codecs",
            "-o", REPORT.relative_to(ROOT), "--force")  # fmt: skip


if __name__ == "__main__":
    main()
