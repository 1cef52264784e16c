"""The speaker-conditioned codec (units model): voice references in the data, codes that do not depend on
the voice, decoding in another voice, and a tiny one trained by the trainer and used through the tokenizer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import speech_like, tiny_config

from vqaudio.data.dataset import CropDataset, collate
from vqaudio.data.manifest import ManifestEntry
from vqaudio.errors import ConfigError, VQAudioError
from vqaudio.models.builders import ModelConfig, build_codec
from vqaudio.models.conditional import ConditionalVQVAE, SpeakerConfig
from vqaudio.models.content import ContentInput, ContentInputConfig
from vqaudio.models.io import load_model, save_model
from vqaudio.tokenizer import Tokenizer, load
from vqaudio.training.config import load_config
from vqaudio.training.trainer import Trainer

SR = 16000
DEBUG = Path(__file__).resolve().parents[1] / "recipes" / "librispeech" / "conf" / "debug.toml"


def _conditional() -> ConditionalVQVAE:
    torch.manual_seed(0)
    config = dataclasses.replace(tiny_config(vocoder=False), family="conditional", speaker=SpeakerConfig(16, 1, 8))
    model = build_codec(config).eval()
    assert isinstance(model, ConditionalVQVAE)
    return model


def _start_in_ramp(crop: torch.Tensor, total: int) -> float:
    """Where a (rescaled) crop of the ramp ``0.1 + 0.8 t / total`` starts: the ratio of its ends tells."""
    k, length = 0.8 / total, crop.shape[0]
    q = float(crop[0] / crop[-1])
    return (q * (0.1 + k * (length - 1)) - 0.1) / (k * (1 - q))


def test_reference_is_another_stretch_of_the_same_recording(tmp_path: Path) -> None:
    total = 8 * SR
    ramp = (0.1 + 0.8 * np.arange(total) / total).astype(np.float32)
    sf.write(tmp_path / "a.wav", ramp, SR, subtype="FLOAT")
    entry = ManifestEntry(tmp_path / "a.wav", 8.0, "a", SR)
    data = CropDataset([entry], SR, 2 * SR, seed=1, reference=3 * SR)
    for index in range(8):
        crop, n, ref, ref_n = data[index]
        assert crop.shape == (2 * SR,) and ref.shape == (3 * SR,) and int(n) == 2 * SR and int(ref_n) == 3 * SR
        a, b = _start_in_ramp(crop, total), _start_in_ramp(ref, total)
        assert b + 3 * SR <= a + 2 or a + 2 * SR <= b + 2, (a, b)  # the two stretches do not overlap
    again = CropDataset([entry], SR, 2 * SR, seed=1, reference=3 * SR)
    assert all(torch.equal(x, y) for x, y in zip(data[3], again[3], strict=True))
    batch = collate([data[0], data[1]])
    assert batch.reference is not None and batch.reference.shape == (2, 1, 3 * SR)
    # Without references the items and their draws are the plain crops of before.
    plain = CropDataset([entry], SR, 2 * SR, seed=1)
    assert torch.equal(plain[2][0], data[2][0])


def test_codes_do_not_depend_on_the_voice_but_the_decoding_does() -> None:
    model = _conditional()
    audio = torch.from_numpy(speech_like(1.0))[None, None]
    other = torch.from_numpy(speech_like(1.0, f0=220, seed=5))[None, None]
    with torch.no_grad():
        codes = model.encode(audio)
        mine, theirs = model.speaker_embedding(audio), model.speaker_embedding(other)
        assert mine.shape == (1, 8) and torch.allclose(mine.norm(dim=-1), torch.ones(1))
        a, b = model.decode(codes, speaker=mine), model.decode(codes, speaker=theirs)
        assert a.shape == b.shape and not torch.allclose(a, b)
        # No voice given: the default speaker.
        model.decoder.default_speaker.copy_(theirs[0])
        assert torch.allclose(model.decode(codes), b)
    before = model.codes_checksum()
    with torch.no_grad():
        model.decoder.reference.out.weight.add_(1.0)
    assert model.codes_checksum() == before  # the reference encoder never changes a code


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("units")
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(3):
        sf.write(corpus / f"{i}.wav", speech_like(2.5, SR, f0=110 + 40 * i, seed=i), SR)
    cfg = load_config(
        DEBUG,
        {
            "data.train": [str(corpus)],
            "data.valid": [str(corpus / "0.wav")],
            "data.exclude_list": None,
            "data.reference_seconds": 1.0,
            "steps": 4,
            "valid_every": 4,
            "model.family": "conditional",
            "model.speaker.channels": 16,
            "model.speaker.depth": 1,
            "model.speaker.dim": 8,
            "model.rvq.num_codebooks": 1,
        },
    )
    return Trainer(cfg, root / "run", progress=False).fit()


def test_trained_units_model_converts_voices_through_the_tokenizer(trained: Path, tmp_path: Path) -> None:
    tok = load(trained)
    assert tok.conditional and tok.num_codebooks == 1
    assert float(tok.loaded.codec.decoder.default_speaker.norm()) == pytest.approx(1.0, abs=1e-4)
    source, voice = speech_like(1.2, SR, seed=1), speech_like(2.0, 22050, f0=230, seed=2)
    sf.write(tmp_path / "voice.wav", voice, 22050)
    converted = tok.convert(source, tmp_path / "voice.wav", SR, vocoder="griffin-lim")
    assert converted.samples.shape == (1, source.shape[0])
    speaker = tok.speaker_embedding(tmp_path / "voice.wav")
    enc = tok.encode(source, SR)
    assert torch.allclose(tok.decode(enc, vocoder="griffin-lim", speaker=speaker).samples, converted.samples)
    assert not torch.allclose(tok.decode(enc, vocoder="griffin-lim").samples, converted.samples)
    with pytest.raises(VQAudioError, match="8 finite numbers"):
        tok.decode(enc, speaker=torch.zeros(3))


def test_plain_models_take_no_voice(tiny_model_dir: Path) -> None:
    tok = load(tiny_model_dir)
    assert not tok.conditional
    with pytest.raises(VQAudioError, match="does not take a voice"):
        tok.speaker_embedding(speech_like(0.5), SR)
    enc = tok.encode(speech_like(0.5), SR)
    with pytest.raises(VQAudioError, match="does not take a voice"):
        tok.decode(enc, speaker=torch.zeros(8))


def test_cli_convert(trained: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vqaudio.cli import app

    runner = CliRunner()
    src, voice, out = tmp_path / "src.wav", tmp_path / "voice.wav", tmp_path / "out.wav"
    sf.write(src, speech_like(1.0, SR, seed=3), SR)
    sf.write(voice, speech_like(1.5, SR, f0=240, seed=4), SR)
    args = ["convert", str(src), str(out), "--voice", str(voice), "-m", str(trained), "--vocoder", "griffin-lim"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sf.info(out).frames == SR
    for bad in (args, ["convert", str(src), str(voice), "--voice", str(voice), "-m", str(trained), "-f"]):
        result = runner.invoke(app, bad)
        assert result.exit_code == 1 and result.output.startswith("error:")
    result = runner.invoke(
        app, ["convert", str(src), str(tmp_path / "o.wav"), "--voice", str(voice), "-m", "speech-16k"]
    )
    assert result.exit_code == 1 and "does not take a voice" in result.output


def test_windowed_decoding_in_a_voice_equals_a_whole_pass(trained: Path) -> None:
    from vqaudio.models.io import load_model
    from vqaudio.tokenizer import Tokenizer

    whole = Tokenizer(load_model(trained), window_seconds=1000.0)
    windows = Tokenizer(load_model(trained), window_seconds=0.3)
    x = speech_like(1.7, SR, seed=6)
    speaker = whole.speaker_embedding(speech_like(1.0, SR, f0=200, seed=7), SR)
    enc = whole.encode(x, SR)
    assert torch.equal(enc.codes, windows.encode(x, SR).codes)
    # Within the bound chunked Griffin-Lim keeps for plain models (test_tokenizer.py, GL_MAX_ABS_DIFF).
    a = whole.decode(enc, vocoder="griffin-lim", speaker=speaker).samples
    b = windows.decode(enc, vocoder="griffin-lim", speaker=speaker).samples
    assert float((a - b).abs().max()) <= 1e-3
    assert not torch.allclose(a, whole.decode(enc, vocoder="griffin-lim").samples, atol=1e-3)


def test_warp_moves_bands_and_keeps_time() -> None:
    from vqaudio.models.conditional import warp_mel

    mel = torch.zeros(2, 40, 5)
    mel[:, 20] = 1.0  # one bright band
    out = warp_mel(mel, torch.tensor([1.0, 0.8]))
    assert torch.equal(out[0], mel[0])
    assert int(out[1, :, 0].argmax()) == 25  # band 25 reads band 25 * 0.8 = 20: the band moved up
    assert torch.equal(out[1, :, 0], out[1, :, 4])  # every frame alike: time untouched


def test_content_warp_reaches_the_encoder_only(tmp_path: Path) -> None:
    """With a warp range the encoder sees warped input, so the codes of a training step differ; the target is
    the true log-mel all the same."""
    from vqaudio.errors import ConfigError

    model = _conditional().train()
    audio = torch.from_numpy(speech_like(0.5))[None, None]
    with torch.no_grad():
        plain = model(audio)
        warped = model(audio, warp=torch.tensor([0.85]))
    assert torch.equal(plain.target, warped.target)
    assert not torch.equal(plain.latent, warped.latent)
    with pytest.raises(ConfigError, match="content_warp"):
        load_config(DEBUG, {"content_warp": [1.2, 1.1]})


def test_content_noise_floor_reaches_the_encoder_only(tmp_path: Path) -> None:
    """A drawn noise floor changes what the encoder reads, where it is above the speech, and not the target;
    the task draws one per item within the configured range."""
    from vqaudio.training.tasks.codec import CONTENT_NOISE_TILT, CodecTask

    model = _conditional().train()
    audio = torch.from_numpy(speech_like(0.5))[None, None]
    seen: list[torch.Tensor] = []
    model.encoder.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    with torch.no_grad():
        plain = model(audio)
        low = model(audio, noise=torch.full((1, 40), -30.0))  # far below anything: nothing changes
        noisy = model(audio, noise=torch.full((1, 40), 0.0))
    assert torch.equal(plain.target, noisy.target)
    assert torch.allclose(seen[0], seen[1]) and not torch.allclose(seen[0], seen[2])
    # Powers add: the input is never below the floor, and where speech is far above it, it stays.
    floor = model.normalize(torch.zeros(1))
    assert float((seen[2] - floor).min()) >= -1e-5 and torch.equal(low.target, plain.target)
    config = load_config(
        DEBUG, {"model.family": "conditional", "content_noise": [-9.0, -6.0], "data.reference_seconds": 1.0}
    )
    task = CodecTask(config)
    drawn = task._noise_floor(64, 40)
    assert drawn is not None and drawn.shape == (64, 40)
    level = drawn.mean(1)
    assert float(level.min()) >= -9.0 - 1e-5 and float(level.max()) <= -6.0 + 1e-5
    tilt = drawn[:, -1] - drawn[:, 0]
    assert float(tilt.min()) >= CONTENT_NOISE_TILT[0] - 1e-5 and float(tilt.max()) <= CONTENT_NOISE_TILT[1] + 1e-5
    with pytest.raises(ConfigError, match="content_noise"):
        load_config(DEBUG, {"content_noise": [-9.0, -6.0]})  # a plain codec has no content encoder apart


def _adversarial_config(root: Path, folders: int, **overrides: object) -> object:
    """A tiny conditional run over ``folders`` speakers (a folder each, as the manifest reads speakers)."""
    corpus = root / "corpus"
    for s in range(folders):
        (corpus / f"spk{s}").mkdir(parents=True)
        for i in range(2):
            sf.write(corpus / f"spk{s}" / f"{i}.wav", speech_like(2.5, SR, f0=100 + 60 * s, seed=10 * s + i), SR)
    settings: dict[str, object] = {
        "data.train": [str(corpus)],
        "data.valid": [str(corpus / "spk0" / "0.wav")],
        "data.exclude_list": None,
        "data.reference_seconds": 1.0,
        "data.batch_size": 4,
        "steps": 3,
        "valid_every": 3,
        "checkpoint_every": 3,
        "model.family": "conditional",
        "model.speaker.channels": 16,
        "model.speaker.depth": 1,
        "model.speaker.dim": 8,
        "model.rvq.num_codebooks": 1,
        "loss.speaker_adversarial": 0.5,
    }
    settings.update(overrides)
    return load_config(DEBUG, settings)


def test_speaker_adversary_trains_beside_the_codec_and_stays_out_of_the_model(tmp_path: Path) -> None:
    """Each crop carries its folder's speaker index; the classifier learns from them and is checkpointed for
    resuming, and the exported model holds the same tensors as one trained without it."""
    cfg = _adversarial_config(tmp_path, 3)
    model_dir = Trainer(cfg, tmp_path / "run", progress=False).fit()  # type: ignore[arg-type]
    import json

    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in records if "speaker_ce" in r]
    assert trained and all(0.0 <= r["speaker_acc"] <= 1.0 and r["speaker_ce"] > 0 for r in trained)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["speaker_adversary"]["out.weight"].shape[0] == 3
    plain = build_codec(cfg.model)  # type: ignore[attr-defined]
    from safetensors.torch import load_file

    exported = load_file(str(model_dir / "model.safetensors"))
    assert {k.removeprefix("codec.") for k in exported} == set(plain.state_dict()), "no classifier exported"


def test_speaker_adversary_items_are_labelled_by_speaker(tmp_path: Path) -> None:
    entries = [ManifestEntry(tmp_path / f"{s}.wav", 2.5, s, SR) for s in ("a", "b")]
    for e in entries:
        sf.write(e.path, speech_like(2.5, SR, seed=ord(e.speaker)), SR)
    crops = CropDataset(entries, SR, 8000, cache=True, reference=4000, speakers={"a": 0, "b": 1})
    batch = collate([crops[i] for i in range(8)])
    assert batch.speaker is not None and batch.speaker.shape == (8,)
    for i in range(8):  # the label is the speaker of the file the crop was drawn from
        rng = np.random.default_rng([0, 0, i])
        assert int(batch.speaker[i]) == int(rng.choice(2, p=crops.probs))
    with pytest.raises(ValueError, match="speaker"):
        CropDataset(entries, SR, 8000, reference=4000, speakers={"a": 0})


def test_speaker_adversary_is_refused_where_it_cannot_learn(tmp_path: Path) -> None:
    from vqaudio.errors import ConfigError

    with pytest.raises(ConfigError, match="two speakers"):
        Trainer(_adversarial_config(tmp_path / "one", 1), tmp_path / "r1", progress=False)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="conditional"):
        Trainer(
            _adversarial_config(tmp_path / "plain", 2, **{"model.family": "spectral"}),  # type: ignore[arg-type]
            tmp_path / "r2",
            progress=False,
        )
    with pytest.raises(ConfigError, match="speaker_adversarial"):
        _adversarial_config(tmp_path / "neg", 2, **{"loss.speaker_adversarial": -1.0})


def test_confusion_pushes_units_towards_telling_no_speaker() -> None:
    """The encoder's term: gradient steps on the units against a fixed classifier move its answer towards
    uniform, and the term is smallest, log N, exactly there."""
    from vqaudio.training.speaker_adversary import SpeakerAdversary, confusion_loss

    torch.manual_seed(0)
    adversary = SpeakerAdversary(8, 4, channels=16)
    z = torch.randn(6, 8, 20, requires_grad=True)
    mask = torch.ones(6, 1, 20)
    before = float(confusion_loss(adversary(z, mask)).detach())
    optimizer = torch.optim.SGD([z], lr=0.5)
    for _ in range(50):
        optimizer.zero_grad()
        confusion_loss(adversary(z, mask)).backward()
        optimizer.step()
    after = float(confusion_loss(adversary(z, mask)).detach())
    assert after < before and after == pytest.approx(np.log(4), abs=0.05)
    assert float(confusion_loss(torch.zeros(3, 4))) == pytest.approx(np.log(4))


def test_speaker_adversary_waits_for_its_start_step(tmp_path: Path) -> None:
    """Before loss.speaker_adversarial_start the classifier learns alone: the encoder's loss has no confusion
    term; from that step on it has, and the term is at least log N (N speakers)."""
    from vqaudio.data.manifest import collect_entries
    from vqaudio.training.tasks.codec import CodecTask

    cfg = _adversarial_config(tmp_path, 2, **{"loss.speaker_adversarial_start": 5, "content_warp": [1.0, 1.0]})
    torch.manual_seed(0)
    task = CodecTask(cfg)  # type: ignore[arg-type]
    task.build_discriminators()
    entries = collect_entries(cfg.data.train, None)  # type: ignore[attr-defined]
    crops, collate_fn = task.dataset(entries)
    batch = collate_fn([crops[i] for i in range(4)])
    task.model.eval()  # no codebook updates between the two calls
    before = float(task.train_step(task.model, batch, 4, None).loss.detach())
    after = float(task.train_step(task.model, batch, 5, None).loss.detach())
    assert after - before >= 0.5 * np.log(2) * 0.99


# --- what the content encoder reads ----------------------------------------------------------------------------


def _content_config(lifter: int = 6, mean_seconds: float = 0.4) -> ModelConfig:
    return dataclasses.replace(
        tiny_config(vocoder=False),
        family="conditional",
        speaker=SpeakerConfig(16, 1, 8),
        content=ContentInputConfig(lifter=lifter, mean_seconds=mean_seconds),
    )


def test_lifter_keeps_the_envelope_and_drops_the_harmonic_ripple() -> None:
    mel = tiny_config().mel
    n, frames = mel.n_mels, 30
    bands = torch.arange(n, dtype=torch.float32)
    centre = torch.pi * (bands + 0.5) / n
    envelope = torch.cos(centre) + 0.3 * torch.cos(3 * centre)  # slow shapes across the bands
    ripple = torch.cos(n / 4 * centre)  # what harmonics 4 bands apart draw (n / 4 periods across the bands)
    x = (envelope + 0.5 * ripple)[None, :, None].expand(1, n, frames)
    out = ContentInput(mel, ContentInputConfig(lifter=6))(x, torch.ones(1, 1, frames))
    assert torch.allclose(out[0, :, 0], envelope, atol=0.02)
    assert abs(float(out[0, :, 0] @ ripple)) < 0.02 * float(ripple @ ripple)


def test_running_mean_removes_the_long_term_spectrum_within_the_mask() -> None:
    mel = tiny_config().mel  # 100 frames a second: a 0.4 s window is 20 frames each side
    module = ContentInput(mel, ContentInputConfig(mean_seconds=0.4))
    assert module.context_frames == 20
    torch.manual_seed(1)
    profile = torch.randn(1, mel.n_mels, 1)
    out = module(profile.expand(1, mel.n_mels, 90), torch.ones(1, 1, 90))
    assert float(out.abs().max()) < 1e-5  # a spectrum that never changes is all voice and room
    # Padding counts for nothing: an item in a padded batch reads what it reads alone.
    x = torch.randn(2, mel.n_mels, 90)
    mask = torch.ones(2, 1, 90)
    mask[1, :, 50:] = 0
    both = module(x, mask)
    alone = module(x[1:, :, :50], torch.ones(1, 1, 50))
    assert torch.allclose(both[1, :, :50], alone[0], atol=1e-5) and float(both[1, :, 50:].abs().max()) == 0.0


def test_content_input_codes_batched_and_chunked_equal_whole(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = _content_config()
    model_dir = save_model(tmp_path / "m", "tiny-content", config, build_codec(config).eval())
    whole = Tokenizer(load_model(model_dir), window_seconds=1000.0)
    chunked = Tokenizer(load_model(model_dir), window_seconds=0.5)
    xs = [speech_like(s, SR, f0=100 + 30 * i, seed=i) for i, s in enumerate((0.37, 2.3, 1.21, 0.8))]
    batch = whole.encode_batch(xs, SR, batch_seconds=2.5)  # by length: items 0 and 3, then 2, then 1
    for x, got in zip(xs, batch, strict=True):
        alone = whole.encode(x, SR)
        assert torch.equal(got.codes, alone.codes)
        assert torch.equal(chunked.encode(x, SR).codes, alone.codes)  # the running mean's window is context


def test_content_input_is_part_of_the_codes_identity_only_when_used() -> None:
    torch.manual_seed(0)
    plain = build_codec(_content_config(lifter=0, mean_seconds=0.0))
    assert "content_input" not in plain.analysis_settings()  # models trained before it keep their checksum
    liftered = build_codec(_content_config())
    liftered.load_state_dict(plain.state_dict())  # no weights of its own: its matrices follow from the config
    assert liftered.codes_checksum() != plain.codes_checksum()
    assert liftered.context_samples == plain.context_samples + 20 * 160
    with pytest.raises(ConfigError, match="family 'conditional'"):
        dataclasses.replace(tiny_config(), content=ContentInputConfig(lifter=6))
