"""Each recipe's debug run, stages 1 to 6, on a synthetic corpus in the recipe's layout."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
import torch
from conftest import speech_like

from vqaudio.models.io import load_model

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def _librispeech_corpus(root: Path) -> list[str]:
    for subset, speakers in (("train-clean-100", ("19", "26", "27")), ("dev-clean", ("84",))):
        for i, spk in enumerate(speakers):
            d = root / subset / spk / "1"
            d.mkdir(parents=True)
            sf.write(d / f"{spk}-1-0000.flac", speech_like(1.5, 16000, f0=100 + 30 * i, seed=i), 16000)
    return []


def _music_corpus(root: Path) -> list[str]:
    for folder, n in (("000", 3), ("155", 1)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            # Chords of harmonic tones at 44.1 kHz stereo: resampled and downmixed by the pipeline.
            x = speech_like(1.5, 44100, f0=220 * (1 + i / 4), seed=i) + speech_like(1.5, 44100, f0=330, seed=9)
            sf.write(root / folder / f"{folder}{i:03d}.wav", [[v, v] for v in x * 0.5], 44100)
    return ["--dev-subdir", "155"]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["librispeech", "music"])
def test_debug_recipe_end_to_end(recipe: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    extra = (_librispeech_corpus if recipe == "librispeech" else _music_corpus)(corpus)
    bindir = Path(sys.executable).parent
    env = {**os.environ, "VQAUDIO": str(bindir / "vqaudio"), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    work = tmp_path / "work"
    # The speech recipe trains stage 3 and stage 4's first step side by side; the music one runs them in turn.
    jobs = "2" if recipe == "librispeech" else "1"
    cmd = ["bash", str(RECIPES / recipe / "run.sh"), "--debug", "--corpus", str(corpus), "--workdir", str(work)]
    cmd += ["--jobs", jobs, *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    exp = work / "exp" / "debug"
    assert all((exp / f".stage{i}.done").exists() for i in range(1, 7))
    # The held-out files never reach the training manifest.
    valid = (work / "data" / "debug" / "valid.list").read_text().split()
    train = (work / "data" / "debug" / "train.tsv").read_text()
    assert valid and not any(Path(v).name in train for v in valid)
    side_by_side = exp / "stage3.log"
    assert side_by_side.exists() == (jobs == "2")
    if jobs == "2":
        assert "stage 3: training the codec" in side_by_side.read_text() and "stage 4: training" in done.stdout
        # Stage 3b waits for both lanes and then has every thread, so it is not in the side lane's log.
        assert "stage 3b" in done.stdout and "stage 3b" not in side_by_side.read_text()
        assert done.stdout.index("stage 4: training") < done.stdout.index("stage 3b")
    # Both recipes fine-tune their vocoder on the codec's output (stage 4b) and release that one.
    assert (exp / "vocoder-ft" / "model").is_dir()
    assert not (exp / "vocoder-gan").exists()
    release = load_model(exp / "release")
    assert release.codec is not None and release.vocoder is not None
    # The recipe's card sets the release's defaults (the debug model's 3 codebooks are all of them for music).
    assert release.card.default_vocoder == ("hybrid" if recipe == "librispeech" else "griffin-lim")
    assert release.card.default_codebooks == (3 if recipe == "librispeech" else 4)
    assert (release.card.default_beam or 1) == 8
    assert (exp / "codec-gan" / "model").is_dir() == (recipe == "librispeech")
    tuned_vocoder = load_model(exp / "vocoder-ft" / "model").vocoder
    assert tuned_vocoder is not None
    released = release.vocoder.state_dict()
    # Up to the fp16 rounding of the export.
    assert all(torch.allclose(v, released[k], rtol=1e-3, atol=1e-6) for k, v in tuned_vocoder.state_dict().items())
    if recipe == "librispeech":
        # Stage 3b: its decoder is released; encoder and codebooks are stage 3's, so the tokens are too.
        first, tuned = load_model(exp / "codec" / "model").codec, load_model(exp / "codec-gan" / "model").codec
        assert first is not None and tuned is not None
        a, b, r = first.state_dict(), tuned.state_dict(), release.codec.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a if k.startswith(("encoder.", "quantizer.")))
        assert not torch.equal(a["decoder.out.weight"], b["decoder.out.weight"])
        assert torch.allclose(b["decoder.out.weight"], r["decoder.out.weight"].float(), rtol=1e-3, atol=1e-6)
        # Stage 5 fitted the post-filter on the training manifest; stage 6 also scores the plain output.
        assert release.codec.has_postfilter and "~plain" in (exp / "results.md").read_text()
        spectral = release.config.spectral
        assert (spectral.postfilter, spectral.postfilter_offset, spectral.postfilter_below) == (0.125, 0.0, 0.25)
    else:
        assert not release.codec.has_postfilter
    # The released learned vocoder runs the projections run.sh asks for (it was trained through none here).
    assert release.config.vocoder is not None and release.config.vocoder.consistency_iters == 8
    assert (exp / "release" / "README.md").exists()
    assert "vqaudio:" in (exp / "results.md").read_text()
    # Idempotent: a second run skips every stage.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert again.returncode == 0 and "stage 3" not in again.stdout


def test_recipe_refuses_a_bad_jobs_count(tmp_path: Path) -> None:
    for bad in ("x", "0", ""):
        cmd = ["bash", str(RECIPES / "librispeech" / "run.sh"), "--debug", "--corpus", str(tmp_path), "--jobs", bad]
        done = subprocess.run([*cmd, "--workdir", str(tmp_path / "work")], capture_output=True, text=True, timeout=30)
        assert done.returncode == 1 and done.stderr.strip().startswith("--jobs needs")
        assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "work").exists()


@pytest.mark.parametrize("failing", ["codec", "vocoder"])
def test_side_by_side_lanes_stop_together_when_one_fails(failing: str, tmp_path: Path) -> None:
    """With --jobs 2, a lane that fails stops the recipe at once, and the other lane's trainer with it."""
    fake = tmp_path / "fake-vqaudio"
    # Stands in for `vqaudio train`: the failing lane's config exits 1, the other one sleeps as the trainer.
    conf = "debug_vocoder.toml" if failing == "vocoder" else "debug.toml"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        f'case "$*" in *"conf/{conf} "*) sleep 1; exit 1 ;; esac\n'
        f'echo $$ > "{tmp_path}/survivor.pid"; exec sleep 120\n'
    )
    fake.chmod(0o755)
    cmd = ["bash", str(RECIPES / "librispeech" / "run.sh"), "--debug", "--corpus", str(tmp_path), "--jobs", "2"]
    cmd += ["--workdir", str(tmp_path / "work"), "--stage", "3", "--stop-stage", "4"]
    env = {**os.environ, "VQAUDIO": str(fake)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    stage = "3" if failing == "codec" else "4"
    assert done.returncode == 1 and f"stage {stage} failed" in done.stderr
    survivor = int((tmp_path / "survivor.pid").read_text())
    for _ in range(50):  # the kill is sent on exit; give the process a moment to go
        if not Path(f"/proc/{survivor}").exists():
            break
        time.sleep(0.1)
    else:
        os.kill(survivor, 9)
        raise AssertionError("the other lane's trainer was left running")
    assert not (tmp_path / "work" / "exp" / "debug" / ".stage3.done").exists()
