"""Trainer integration: the debug recipe config end to end, exact resume, SIGKILL + resume, torchrun DDP."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
import torch
from conftest import speech_like

from vqaudio.models.io import load_model
from vqaudio.training.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from vqaudio.training.config import load_config
from vqaudio.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
DEBUG = RECIPES / "librispeech" / "conf" / "debug.toml"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LibriSpeech-layout folder of synthetic speech-like audio at mixed rates."""
    root = tmp_path_factory.mktemp("corpus")
    for i, (spk, rate) in enumerate([("11", 16000), ("12", 16000), ("13", 22050), ("14", 8000)]):
        d = root / "train-clean-100" / spk / "100"
        d.mkdir(parents=True)
        for j in range(2):
            sf.write(d / f"{spk}-100-{j:04d}.flac", speech_like(1.2, rate, f0=110 + 20 * i + 7 * j, seed=i), rate)
    return root


def _overrides(corpus: Path, **extra: object) -> dict[str, object]:
    return {
        "data.train": [str(corpus)],
        "data.valid": [str(corpus / "train-clean-100" / "11")],
        "data.exclude_list": None,
        **extra,
    }


def test_debug_config_trains_end_to_end(corpus: Path, tmp_path: Path) -> None:
    cfg = load_config(DEBUG, _overrides(corpus))
    model_dir = Trainer(cfg, tmp_path / "run", progress=False).fit()
    loaded = load_model(model_dir)
    assert loaded.codec is not None and loaded.name == "debug-16k"
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    valid = [r for r in records if "valid" in r]
    assert [r["step"] for r in train] == list(range(5, 31, 5))
    assert valid and "mel_l1@1" in valid[0]["valid"]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in train)
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT)["step"] == 30


def test_loudness_term_is_trained_and_logged(corpus: Path, tmp_path: Path) -> None:
    cfg = load_config(DEBUG, _overrides(corpus, steps=4, log_every=2, **{"loss.mel_loudness": 2.0}))
    Trainer(cfg, tmp_path / "run", progress=False).fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    assert train and all(r["mel_loudness"] > 0 for r in train)
    # The total is the weighted sum: l1 + l2 + 2 x loudness + the quantizer's terms, so it exceeds the first three.
    assert all(r["loss"] > r["mel_l1"] + r["mel_l2"] + 2.0 * r["mel_loudness"] - 1e-4 for r in train)


def test_vocoder_loudness_term_is_trained_and_logged(corpus: Path, tmp_path: Path) -> None:
    voc_conf = RECIPES / "librispeech" / "conf" / "debug_vocoder.toml"
    cfg = load_config(voc_conf, _overrides(corpus, steps=4, log_every=2, **{"loss.mel_loudness": 2.0}))
    Trainer(cfg, tmp_path / "run", progress=False).fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    assert train and all(r["mel_loudness"] > 0 for r in train)
    # A vocoder's total is exactly the weighted sum of its terms (no phase term, no discriminators here).
    w = cfg.loss
    for r in train:
        expected = w.stft * r["stft"] + w.mel_audio * r["mel_audio"] + 2.0 * r["mel_loudness"]
        assert r["loss"] == pytest.approx(expected, rel=1e-4)


def test_a_release_with_a_postfilter_starts_a_new_run(corpus: Path, tmp_path: Path) -> None:
    """init_from a release whose decoder carries a fitted post-filter: the run takes every other weight."""
    from vqaudio.data.manifest import scan_audio, write_manifest
    from vqaudio.training.export import export_release

    first = Trainer(load_config(DEBUG, _overrides(corpus, steps=2)), tmp_path / "first", progress=False).fit()
    manifest = write_manifest(scan_audio([corpus], min_sample_rate=16000), tmp_path / "train.tsv")
    export_release(first, tmp_path / "rel", "debug", half=False, postfilter=0.2, postfilter_data=manifest)
    released = load_model(tmp_path / "rel").codec
    assert released is not None and released.has_postfilter
    for extra in ({}, {"init_modules": ["decoder"]}):
        cfg = load_config(DEBUG, _overrides(corpus, steps=1, init_from=str(tmp_path / "rel"), **extra))
        trainer = Trainer(cfg, tmp_path / f"again{len(extra)}", progress=False)
        got = trainer.model.state_dict()
        assert not any("postfilter" in k for k in got)
        want = released.state_dict()
        assert torch.equal(got["decoder.out.weight"], want["decoder.out.weight"])


def test_refuses_to_clobber_a_run_without_resume(corpus: Path, tmp_path: Path) -> None:
    from vqaudio.errors import VQAudioError

    cfg = load_config(DEBUG, _overrides(corpus, steps=10))
    Trainer(cfg, tmp_path / "run", progress=False).fit()
    with pytest.raises(VQAudioError, match="--resume"):
        Trainer(cfg, tmp_path / "run", progress=False)


def test_resume_is_exact(corpus: Path, tmp_path: Path) -> None:
    """20 steps straight equal 10 steps, a new process-like restart from the checkpoint, then 10 more."""
    cfg = load_config(DEBUG, _overrides(corpus, steps=20, checkpoint_every=10))
    straight = Trainer(cfg, tmp_path / "a", progress=False)
    straight.fit()

    half = load_config(DEBUG, _overrides(corpus, steps=20, checkpoint_every=10))
    first = Trainer(half, tmp_path / "b", progress=False)
    # Stop after step 10 by training a copy whose schedule still targets 20 steps.
    for batch in first._loader():
        first._train_step(batch)
        first.step += 1
        if first.step == 10:
            break
    save_checkpoint(tmp_path / "b" / CHECKPOINT, first._state())
    torch.manual_seed(12345)  # scramble global RNG: resume must restore it
    resumed = Trainer(half, tmp_path / "b", resume=True, progress=False)
    assert resumed.step == 10
    resumed.fit()
    assert resumed.state_checksum() == straight.state_checksum()


def test_starting_the_data_loader_leaves_the_global_stream_alone(corpus: Path, tmp_path: Path) -> None:
    """A resume restores torch's global random stream, then starts a new loader: if starting one drew from that
    stream, every later global draw (a codebook's dead-code restarts) would differ from the straight run's."""
    trainer = Trainer(load_config(DEBUG, _overrides(corpus, steps=4)), tmp_path / "run", progress=False)
    before = torch.get_rng_state()
    iter(trainer._loader())
    assert torch.equal(torch.get_rng_state(), before)


def _train_cmd(corpus: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vqaudio.cli",
        "train",
        "--config",
        str(DEBUG),
        "--out",
        str(out),
        "--no-progress",
        "--set",
        f'data.train=["{corpus}"]',
        "--set",
        "data.valid=[]",
        *extra,
    ]


def test_sigkill_then_resume_completes(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = _train_cmd(corpus, out, "--set", "checkpoint_every=5")
    proc = subprocess.Popen([*cmd, "--steps", "400"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if (out / CHECKPOINT).exists() and load_checkpoint(out / CHECKPOINT)["step"] >= 10:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint within 120 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = load_checkpoint(out / CHECKPOINT)["step"]
    assert 10 <= killed_at < 400
    done = subprocess.run(
        [*cmd, "--resume", "--steps", str(killed_at + 10)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert load_checkpoint(out / CHECKPOINT)["step"] == killed_at + 10
    assert load_model(out / "model").codec is not None


def test_torchrun_two_ranks_agree(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    train = _train_cmd(corpus, out, "--steps", "6", "--set", "checkpoint_every=3")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *train[1:]]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    sums = [r["rank_checksums"] for r in records if "rank_checksums" in r]
    assert len(sums) == 1 and len(sums[0]) == 2 and sums[0][0] == sums[0][1]
    assert load_model(out / "model").codec is not None


def test_adversarial_vocoder_and_waveform_codec_train(corpus: Path, tmp_path: Path) -> None:
    """The GAN path (multi-period + multi-resolution discriminators, feature matching) and the waveform family."""
    voc = load_config(
        RECIPES / "librispeech" / "conf" / "debug_vocoder.toml",
        _overrides(corpus, steps=3, **{"loss.adversarial": True, "valid_every": 3}),
    )
    trainer = Trainer(voc, tmp_path / "voc", progress=False)
    loaded = load_model(trainer.fit())
    assert loaded.vocoder is not None and loaded.codec is None
    records = [json.loads(line) for line in (tmp_path / "voc" / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in records if "loss" in r][-1]
    assert {"disc", "adv", "fm"} <= set(last) and all(math.isfinite(last[k]) for k in ("disc", "adv", "fm"))
    # The task's discriminators and their optimiser are checkpointed under the keys older runs used.
    assert {"disc", "disc_optimizer"} <= set(load_checkpoint(tmp_path / "voc" / CHECKPOINT))
    # Resume restores the discriminator too.
    again = Trainer(voc, tmp_path / "voc", resume=True, progress=False)
    assert again.task.disc is not None and trainer.task.disc is not None
    assert all(
        torch.equal(a, b)
        for a, b in zip(again.task.disc.state_dict().values(), trainer.task.disc.state_dict().values(), strict=True)
    )

    wave = load_config(
        DEBUG,
        _overrides(
            corpus,
            steps=3,
            **{"model.family": "waveform", "valid_every": 3, "model.waveform": {"channels": 4, "latent_dim": 16}},
        ),
    )
    codec = load_model(Trainer(wave, tmp_path / "wave", progress=False).fit()).codec
    assert codec is not None and codec.family == "waveform"


def test_plot_log_draws_the_curves(corpus: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vqaudio.cli import app

    cfg = load_config(DEBUG, _overrides(corpus, steps=15))
    Trainer(cfg, tmp_path / "run", progress=False).fit()
    result = CliRunner().invoke(
        app, ["plot-log", str(tmp_path / "run" / "metrics.jsonl"), "-o", str(tmp_path / "c.png")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_vocoder_fine_tunes_on_codec_outputs(corpus: Path, tmp_path: Path) -> None:
    """init_from starts from exported weights; codec_model feeds the vocoder the codec's decoded mel."""
    codec_dir = Trainer(load_config(DEBUG, _overrides(corpus, steps=2)), tmp_path / "codec", progress=False).fit()
    voc_conf = RECIPES / "librispeech" / "conf" / "debug_vocoder.toml"
    first = Trainer(load_config(voc_conf, _overrides(corpus, steps=2)), tmp_path / "voc", progress=False).fit()
    overrides = _overrides(
        corpus, steps=2, valid_every=2, init_from=str(first), codec_model=str(codec_dir), **{"loss.phase": 1.0}
    )
    tuned = Trainer(load_config(voc_conf, overrides), tmp_path / "tuned", progress=False)
    before = load_model(first).vocoder
    assert before is not None and tuned.task.codec is not None  # type: ignore[attr-defined]
    assert all(
        torch.equal(a, b) for a, b in zip(tuned.model.state_dict().values(), before.state_dict().values(), strict=True)
    )
    batch = next(iter(tuned._loader()))
    decoded = tuned.task.features(batch.audio, batch.lengths)  # type: ignore[attr-defined]
    true = load_config(voc_conf, _overrides(corpus))
    from vqaudio.spectral import log_mel

    assert decoded.shape == log_mel(batch.audio[:, 0], true.model.mel).shape
    assert not torch.allclose(decoded, log_mel(batch.audio[:, 0], true.model.mel))
    assert load_model(tuned.fit()).vocoder is not None
    records = [json.loads(line) for line in (tmp_path / "tuned" / "metrics.jsonl").read_text().splitlines()]
    # The phase term is trained on and logged; validation reports the phase distance next to the mel L1.
    assert 0 < [r for r in records if "loss" in r][-1]["phase"] < 6
    valid = [r["valid"] for r in records if "valid" in r]
    assert valid and all(v["mel_l1"] > 0 and 0 < v["phase"] < 6 for v in valid)
    # A fine-tuning stage's card says where it started and what it was trained on, not only its own steps.
    from vqaudio.training.export import export_release

    export_release(codec_dir, tmp_path / "release", "snap", vocoder_dir=tmp_path / "tuned", half=False)
    card = (tmp_path / "release" / "README.md").read_text()
    assert f"steps: 2, in a stage that started from the weights of {first}" in card
    assert f"trained on the log-mel decoded by {codec_dir}" in card
    with pytest.raises(Exception, match="vocoder and prior tasks only"):
        load_config(DEBUG, _overrides(corpus, codec_model=str(codec_dir)))


def test_vocoder_learns_from_post_filtered_codec_output(corpus: Path, tmp_path: Path) -> None:
    """codec_postfilter runs the codec's post-filter on its decoded mel, as inference does before a back end."""
    from vqaudio.data.manifest import scan_audio, write_manifest
    from vqaudio.errors import ConfigError, VQAudioError
    from vqaudio.training.export import export_release

    codec_dir = Trainer(load_config(DEBUG, _overrides(corpus, steps=2)), tmp_path / "codec", progress=False).fit()
    manifest = write_manifest(scan_audio([corpus], min_sample_rate=16000), tmp_path / "train.tsv")
    export_release(codec_dir, tmp_path / "rel", "debug", half=False, postfilter=0.5, postfilter_data=manifest)
    voc_conf = RECIPES / "librispeech" / "conf" / "debug_vocoder.toml"

    def features(**extra: object) -> tuple[torch.Tensor, Trainer]:
        cfg = load_config(voc_conf, _overrides(corpus, steps=1, codec_model=str(tmp_path / "rel"), **extra))
        trainer = Trainer(cfg, tmp_path / f"voc{len(extra)}", progress=False)
        batch = next(iter(trainer._loader()))
        return trainer.task.features(batch.audio, batch.lengths), trainer  # type: ignore[attr-defined]

    plain, _ = features()
    filtered, trainer = features(codec_postfilter=True)
    codec = trainer.task.codec  # type: ignore[attr-defined]
    assert torch.allclose(filtered, codec.postfilter(plain), atol=1e-5)
    assert not torch.allclose(filtered, plain, atol=1e-3)
    export_release(tmp_path / "rel", tmp_path / "out", "snap", vocoder_dir=trainer.fit(), half=False)
    assert "trained on the log-mel decoded and post-filtered by" in (tmp_path / "out" / "README.md").read_text()
    with pytest.raises(ConfigError, match="needs codec_model"):
        load_config(voc_conf, _overrides(corpus, codec_postfilter=True))
    with pytest.raises(ConfigError, match="postfilter_target needs codec_postfilter"):
        load_config(voc_conf, _overrides(corpus, codec_model=str(tmp_path / "rel"), postfilter_target=True))
    with pytest.raises(VQAudioError, match="has no post-filter"):
        cfg = load_config(voc_conf, _overrides(corpus, codec_model=str(codec_dir), codec_postfilter=True))
        Trainer(cfg, tmp_path / "nopf", progress=False)


def test_postfilter_target_puts_the_filters_change_on_the_target(corpus: Path, tmp_path: Path) -> None:
    """postfilter_target: the target audio gets the post-filter's log-mel change as a gain per STFT bin, so a
    uniform change of log 2 doubles a tone, no change returns the audio, and the change a step applies is the
    one the post-filter made to the features."""
    from vqaudio.data.manifest import scan_audio, write_manifest
    from vqaudio.spectral import log_mel
    from vqaudio.training.export import export_release

    codec_dir = Trainer(load_config(DEBUG, _overrides(corpus, steps=2)), tmp_path / "codec", progress=False).fit()
    manifest = write_manifest(scan_audio([corpus], min_sample_rate=16000), tmp_path / "train.tsv")
    export_release(codec_dir, tmp_path / "rel", "debug", half=False, postfilter=0.5, postfilter_data=manifest)
    voc_conf = RECIPES / "librispeech" / "conf" / "debug_vocoder.toml"
    extra = {"codec_model": str(tmp_path / "rel"), "codec_postfilter": True, "postfilter_target": True}
    trainer = Trainer(load_config(voc_conf, _overrides(corpus, steps=1, **extra)), tmp_path / "voc", progress=False)
    task = trainer.task
    mel_config = task.config.model.mel  # type: ignore[attr-defined]
    t = torch.arange(16000) / 16000
    tone = (0.1 * torch.sin(2 * torch.pi * 1000 * t))[None, None]
    frames = log_mel(tone[:, 0], mel_config).shape[-1]
    same = task.filtered_target(tone, torch.zeros(1, mel_config.n_mels, frames))  # type: ignore[attr-defined]
    assert torch.allclose(same, tone, atol=1e-5)
    doubled = task.filtered_target(tone, torch.full((1, mel_config.n_mels, frames), math.log(2.0)))  # type: ignore[attr-defined]
    assert torch.allclose(doubled[..., 2000:-2000], 2 * tone[..., 2000:-2000], atol=1e-4)

    batch = next(iter(trainer._loader()))
    task.generator.manual_seed(0)  # type: ignore[attr-defined]  # the same number of codebooks both times
    _, added = task._features(batch.audio, batch.lengths)  # type: ignore[attr-defined]
    assert added.abs().mean() > 1e-3
    target = task.filtered_target(batch.audio, added)  # type: ignore[attr-defined]
    change = log_mel(target[:, 0], mel_config) - log_mel(batch.audio[:, 0], mel_config)
    assert torch.corrcoef(torch.stack([change.flatten(), added.flatten()]))[0, 1] > 0.5
    # What a training step compares the vocoder's output with is that target, not the original.
    task.generator.manual_seed(0)  # type: ignore[attr-defined]
    result = task.step(trainer.wrapped, batch)
    assert result.real is not None and torch.allclose(result.real, target, atol=1e-6)
    assert not torch.allclose(result.real, batch.audio, atol=1e-3)
    export_release(tmp_path / "rel", tmp_path / "out", "snap", vocoder_dir=trainer.fit(), half=False)
    assert "target audio given the post-filter's change" in (tmp_path / "out" / "README.md").read_text()


def test_export_from_a_run_directory(corpus: Path, tmp_path: Path) -> None:
    """A run's latest checkpoint exports like its finished model: same weights, its step on the card."""
    from vqaudio.errors import VQAudioError
    from vqaudio.training.export import export_release, load_run_or_model

    codec_run, voc_run = tmp_path / "codec", tmp_path / "voc"
    Trainer(load_config(DEBUG, _overrides(corpus, steps=3)), codec_run, progress=False).fit()
    voc_conf = RECIPES / "librispeech" / "conf" / "debug_vocoder.toml"
    Trainer(load_config(voc_conf, _overrides(corpus, steps=2)), voc_run, progress=False).fit()
    for run, part in ((codec_run, "codec"), (voc_run, "vocoder")):
        from_run, from_model = load_run_or_model(run), load_model(run / "model")
        a, b = getattr(from_run, part), getattr(from_model, part)
        assert a is not None and b is not None
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
        assert from_run.card.training["steps"] == from_model.card.training["steps"]
    release = export_release(codec_run, tmp_path / "release", "snap", vocoder_dir=voc_run, half=False)
    loaded = load_model(release.parent if release.is_file() else release)
    assert loaded.codec is not None and loaded.vocoder is not None
    assert loaded.card.codec_training["steps"] == 3 and loaded.card.vocoder_training["steps"] == 2
    # A release as the vocoder source (a new codec, the released vocoder) keeps the vocoder's training record.
    export_release(codec_run, tmp_path / "again", "snap", vocoder_dir=tmp_path / "release", half=False)
    assert load_model(tmp_path / "again").card.vocoder_training["steps"] == 2
    # Not a run and not a model: the usual one-line model error.
    (tmp_path / "empty").mkdir()
    with pytest.raises(VQAudioError):
        load_run_or_model(tmp_path / "empty")


def test_a_frozen_quantizer_draws_its_codebook_counts_with_the_dropout_weights(corpus: Path, tmp_path: Path) -> None:
    """Decoder-only training draws the bitrate itself (the frozen quantizer skips dropout): it must honour
    ``dropout_weights`` as the quantizer's own dropout does."""
    first_dir = Trainer(load_config(DEBUG, _overrides(corpus, steps=2)), tmp_path / "first", progress=False).fit()
    cfg = load_config(
        DEBUG,
        _overrides(
            corpus,
            steps=6,
            log_every=1,
            valid_every=100,
            init_from=str(first_dir),
            freeze=["encoder", "quantizer"],
            **{"model.rvq.dropout_weights": [0, 1, 0]},
        ),
    )
    Trainer(cfg, tmp_path / "second", progress=False).fit()
    records = [json.loads(line) for line in (tmp_path / "second" / "metrics.jsonl").read_text().splitlines()]
    assert {r["n_codebooks"] for r in records if "loss" in r} == {2.0}


def test_multi_scale_codec_trains_and_a_frozen_quantizer_draws_whole_codebooks(corpus: Path, tmp_path: Path) -> None:
    """A multi-scale codec trains end to end (validated at each whole-codebook count), and decoder-only training
    of it (the quantizer frozen, as stage 3b) draws row counts that hold whole codebooks, several of them."""
    ms = {
        "model.quantizer": "multiscale",
        "model.multiscale.strides": [2, 1, 2],
        "model.multiscale.vq.dim": 16,
        "model.multiscale.vq.codebook_size": 64,
    }
    cfg = load_config(DEBUG, _overrides(corpus, steps=4, log_every=1, valid_every=4, **ms))
    first_dir = Trainer(cfg, tmp_path / "first", progress=False).fit()
    records = [json.loads(line) for line in (tmp_path / "first" / "metrics.jsonl").read_text().splitlines()]
    assert set(next(r for r in records if "valid" in r)["valid"]) == {"mel_l1@1", "mel_l1@3", "mel_l1@4"}
    assert load_model(first_dir).codec.codebook_counts == (1, 3, 4)
    cfg = load_config(
        DEBUG,
        _overrides(
            corpus,
            steps=12,
            log_every=1,
            valid_every=100,
            init_from=str(first_dir),
            freeze=["encoder", "quantizer"],
            **ms,
        ),
    )
    Trainer(cfg, tmp_path / "second", progress=False).fit()
    records = [json.loads(line) for line in (tmp_path / "second" / "metrics.jsonl").read_text().splitlines()]
    drawn = {r["n_codebooks"] for r in records if "loss" in r}
    assert drawn <= {1.0, 3.0, 4.0} and len(drawn) >= 2


def test_mel_over_changes_the_codec_loss_but_not_the_logged_l1(corpus: Path, tmp_path: Path) -> None:
    firsts = []
    for over in (0.0, 0.5):
        cfg = load_config(DEBUG, _overrides(corpus, steps=1, log_every=1, valid_every=100, **{"loss.mel_over": over}))
        Trainer(cfg, tmp_path / f"over{over}", progress=False).fit()
        lines = (tmp_path / f"over{over}" / "metrics.jsonl").read_text().splitlines()
        firsts.append(next(r for r in map(json.loads, lines) if "loss" in r))
    # Same seed, same first batch and weights: the logged (symmetric) L1 agrees, the loss trained on does not.
    assert firsts[0]["mel_l1"] == pytest.approx(firsts[1]["mel_l1"], rel=1e-6)
    assert firsts[0]["loss"] != pytest.approx(firsts[1]["loss"], rel=1e-4)


def test_new_decoder_for_a_finished_codec_keeps_its_tokens(corpus: Path, tmp_path: Path) -> None:
    """init_modules + freeze: a wider decoder, trained adversarially on log-mel, for a codec whose encoder and
    codebooks stay exactly as they were, so tokens written by the first codec decode with the second."""
    from vqaudio.errors import ConfigError, VQAudioError

    first_dir = Trainer(load_config(DEBUG, _overrides(corpus, steps=3)), tmp_path / "first", progress=False).fit()
    first = load_model(first_dir).codec
    assert first is not None
    cfg = load_config(
        DEBUG,
        _overrides(
            corpus,
            steps=4,
            valid_every=4,
            log_every=1,
            init_from=str(first_dir),
            init_modules=["encoder", "quantizer"],
            freeze=["encoder", "quantizer"],
            **{"model.spectral.decoder_channels": 48, "loss.adversarial": True},
        ),
    )
    trainer = Trainer(cfg, tmp_path / "second", progress=False)
    assert trainer.task.disc is not None and type(trainer.task.disc).__name__ == "MelDiscriminators"
    second = load_model(trainer.fit()).codec
    assert second is not None
    a, b = first.state_dict(), second.state_dict()
    kept = [k for k in a if k.startswith(("encoder.", "quantizer."))]
    assert kept and all(torch.equal(a[k], b[k]) for k in kept)  # EMA codebooks did not move either
    assert b["decoder.inp.weight"].shape[0] == 48 != a["decoder.inp.weight"].shape[0]
    records = [json.loads(line) for line in (tmp_path / "second" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    assert all(math.isfinite(r[k]) for r in train for k in ("disc", "adv", "fm", "mel_l1"))
    # The frozen quantizer still varies the bitrate from batch to batch (its own draw, not quantizer dropout).
    assert len({r["n_codebooks"] for r in train}) > 1
    # Resuming restores the trainer's own bitrate draws along with the model (and the quantizer's stream).
    assert {"quantizer_rng", "task_rng"} <= set(load_checkpoint(tmp_path / "second" / CHECKPOINT))
    again = Trainer(cfg, tmp_path / "second", resume=True, progress=False)
    assert torch.equal(again.task.generator.get_state(), trainer.task.generator.get_state())  # type: ignore[attr-defined]
    audio = torch.from_numpy(speech_like(1.0, 16000, f0=150, seed=3)).float()[None, None]
    with torch.inference_mode():
        assert torch.equal(first.eval().encode(audio), second.eval().encode(audio))

    with pytest.raises(VQAudioError, match="no submodule 'decodr'"):
        Trainer(load_config(DEBUG, _overrides(corpus, freeze=["decodr"])), tmp_path / "x", progress=False)
    with pytest.raises(VQAudioError, match="nothing to train"):
        Trainer(
            load_config(DEBUG, _overrides(corpus, freeze=["encoder", "quantizer", "decoder"])),
            tmp_path / "y",
            progress=False,
        )
    with pytest.raises(ConfigError, match="init_modules needs init_from"):
        load_config(DEBUG, _overrides(corpus, init_modules=["encoder"]))
    with pytest.raises(VQAudioError, match="does not match"):
        Trainer(
            load_config(
                DEBUG,
                _overrides(
                    corpus,
                    init_from=str(first_dir),
                    init_modules=["decoder"],
                    **{"model.spectral.decoder_channels": 48},
                ),
            ),
            tmp_path / "z",
            progress=False,
        )


def test_smaller_encoder_distilled_into_a_finished_codec(corpus: Path, tmp_path: Path) -> None:
    """teacher + loss.distill: a narrower encoder learns the teacher's latents while the teacher's decoder and
    codebooks stay frozen, so its codes decode with them; the distance to the teacher's latents falls."""
    from vqaudio.errors import ConfigError, VQAudioError
    from vqaudio.training.export import export_release

    first_dir = Trainer(load_config(DEBUG, _overrides(corpus, steps=3)), tmp_path / "first", progress=False).fit()
    first = load_model(first_dir).codec
    assert first is not None
    student = {
        "init_from": str(first_dir),
        "init_modules": ["decoder", "quantizer"],
        "freeze": ["decoder", "quantizer"],
        "teacher": str(first_dir),
        "model.spectral.channels": 16,
        "model.spectral.decoder_channels": 32,
        "model.spectral.encoder_depths": [0, 1],
    }
    cfg = load_config(DEBUG, _overrides(corpus, steps=12, log_every=1, **student, **{"loss.distill": 5.0}))
    second = load_model(Trainer(cfg, tmp_path / "second", progress=False).fit()).codec
    assert second is not None
    a, b = first.state_dict(), second.state_dict()
    kept = [k for k in a if k.startswith(("decoder.", "quantizer."))]
    assert kept and all(torch.equal(a[k], b[k]) for k in kept)
    assert b["encoder.inp.weight"].shape[0] == 16 != a["encoder.inp.weight"].shape[0]
    records = [json.loads(line) for line in (tmp_path / "second" / "metrics.jsonl").read_text().splitlines()]
    distill = [r["distill"] for r in records if "loss" in r]
    assert len(distill) == 12 and sum(distill[-3:]) < 0.8 * sum(distill[:3])
    release = export_release(tmp_path / "second", tmp_path / "release", "small", half=False)
    card = (release.parent if release.is_file() else release) / "README.md"
    assert f"encoder distilled from {first_dir}" in card.read_text()

    for weight in (0.0, -1.0):
        with pytest.raises(ConfigError, match="needs loss.distill > 0"):
            load_config(DEBUG, _overrides(corpus, teacher=str(first_dir), **{"loss.distill": weight}))
    with pytest.raises(ConfigError, match="needs a teacher"):
        load_config(DEBUG, _overrides(corpus, **{"loss.distill": 1.0}))
    other = {"model.mel.n_mels": 32}
    with pytest.raises(VQAudioError, match="input settings differ"):
        Trainer(
            load_config(DEBUG, _overrides(corpus, teacher=str(first_dir), **{"loss.distill": 1.0}, **other)),
            tmp_path / "x",
            progress=False,
        )


@pytest.mark.parametrize(
    "conf", sorted(RECIPES.glob("*/conf/*.toml")), ids=lambda p: f"{p.parent.parent.name}/{p.name}"
)
def test_every_recipe_config_builds_a_working_model(conf: Path) -> None:
    """Configs kept for the record (tried-and-not-adopted runs, recipes/librispeech/experiments/log.md) must still
    load and run, so their commands stay reproducible as the code moves on."""
    from vqaudio.models.builders import build_codec, build_vocoder

    # A d-vector units config needs init_from (a model made by scripts/convert_dvector.py), which its command gives
    # with --set: it is loaded as that command loads it.
    dvector = 'encoder = "dvector"' in conf.read_text()
    cfg = load_config(conf, {"init_from": "exp/units16k-dvec-init"} if dvector else None)
    rate = cfg.model.sample_rate
    audio = torch.from_numpy(speech_like(0.5, rate, f0=140, seed=0))[None, None]
    with torch.inference_mode():
        if cfg.task == "codec":
            codec = build_codec(cfg.model).eval()
            codes = codec.encode(audio)
            assert codes.shape[:2] == (1, codec.num_codebooks)
            assert codes.shape[-1] == math.ceil(audio.shape[-1] / codec.hop_length)
            assert torch.isfinite(codec.decode(codes)).all()
        elif cfg.task == "prior":
            from vqaudio.prior.model import TokenPrior

            # The codec path is written relative to the config file, and resolved against it.
            assert cfg.codec_model is not None and Path(cfg.codec_model).is_dir()
            prior = TokenPrior(cfg.prior).eval()
            codes = torch.randint(cfg.prior.codebook_size, (1, cfg.prior.num_codebooks, 30))
            assert torch.isfinite(prior(codes).bits).all()
        else:
            vocoder = build_vocoder(cfg.model)
            assert vocoder is not None
            mel = torch.zeros(1, cfg.model.mel.n_mels, 20)
            assert vocoder.eval()(mel).shape == (1, 20 * vocoder.hop_length)


def test_export_sets_the_vocoders_consistency_iters(tiny_model_dir: Path, tmp_path: Path) -> None:
    """--consistency-iters changes only how many projections the bundled vocoder runs: same weights, a
    different output; out of range, or with no vocoder, a one-line error and nothing written."""
    from typer.testing import CliRunner

    from vqaudio.cli import app

    runner = CliRunner()
    base = ["export", "--codec", str(tiny_model_dir), "--name", "tiny", "--full"]
    out = tmp_path / "rel"
    r = runner.invoke(app, [*base, "--vocoder", str(tiny_model_dir), "-o", str(out), "--consistency-iters", "3"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "config.json").read_text())["model"]["vocoder"]["consistency_iters"] == 3
    original, released = load_model(tiny_model_dir), load_model(out)
    assert original.vocoder is not None and released.vocoder is not None
    assert released.vocoder.config.consistency_iters == 3 and original.vocoder.config.consistency_iters == 0
    assert all(
        torch.equal(a, b)
        for a, b in zip(original.vocoder.state_dict().values(), released.vocoder.state_dict().values(), strict=True)
    )
    mel = torch.randn(1, original.config.mel.n_mels, 40) - 4
    with torch.inference_mode():
        assert float((original.vocoder(mel) - released.vocoder(mel)).abs().max()) > 1e-4
    for args, match in [
        (["--vocoder", str(tiny_model_dir), "--consistency-iters", "65"], "between 0 and 64"),
        (["--vocoder", str(tiny_model_dir), "--consistency-iters", "-1"], "between 0 and 64"),
        (["--consistency-iters", "2"], "needs --vocoder"),
    ]:
        r = runner.invoke(app, [*base, "-o", str(tmp_path / "bad"), *args])
        assert r.exit_code == 1 and r.stderr.count("\n") == 1 and match in r.stderr, (args, r.output)
        assert not (tmp_path / "bad").exists()
