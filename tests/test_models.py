"""Tests of the codec models (spectral and waveform families): shapes and rates, batching, gradients,
receptive field, and saving/loading model directories."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import make_model_dir, speech_like, tiny_config

from vqaudio.errors import ConfigError, ModelError
from vqaudio.losses import masked_l1
from vqaudio.models import CodecModel, CodecOutput, build_codec, load_model, save_model
from vqaudio.models.io import sha256_file

FAMILIES = ["spectral", "waveform"]
HOP = 320  # both tiny families: 160-sample mel hop x stride 2, and strides 2*4*5*8
K = 4


def _model(family: str, seed: int = 0) -> CodecModel:
    torch.manual_seed(seed)
    return build_codec(tiny_config(family)).eval()


def _audio(*lengths: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded batch ``[B, 1, max T]`` of speech-like clips and their lengths ``[B]``."""
    batch = torch.zeros(len(lengths), 1, max(lengths))
    for i, n in enumerate(lengths):
        batch[i, 0, :n] = torch.from_numpy(speech_like(n / 16000 + 0.01, f0=110.0 + 20 * i, seed=i))[:n]
    return batch, torch.tensor(lengths)


@pytest.fixture(scope="module", params=FAMILIES)
def model(request: pytest.FixtureRequest) -> CodecModel:
    return _model(request.param)


# --- shapes and rates ------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [1, 319, 320, 321, 5000, 16000])
def test_encode_gives_ceil_t_over_hop_frames(model: CodecModel, t: int) -> None:
    audio, _ = _audio(t, t)
    with torch.no_grad():
        codes = model.encode(audio)
    assert codes.shape == (2, K, math.ceil(t / HOP))
    assert codes.dtype == torch.int64
    assert int(codes.min()) >= 0 and int(codes.max()) < model.codebook_size
    assert model.num_frames(t) == math.ceil(t / HOP)


def test_encode_accepts_audio_without_channel_axis(model: CodecModel) -> None:
    audio, _ = _audio(3000)
    with torch.no_grad():
        assert torch.equal(model.encode(audio[:, 0]), model.encode(audio))


@pytest.mark.parametrize("n", [1, 2, 4])
def test_encode_with_fewer_codebooks_gives_a_prefix(model: CodecModel, n: int) -> None:
    audio, _ = _audio(4000)
    with torch.no_grad():
        full = model.encode(audio)
        assert torch.equal(model.encode(audio, n_codebooks=n), full[:, :n])


@pytest.mark.parametrize("n", [1, 4])
def test_decode_shape(model: CodecModel, n: int) -> None:
    codes = torch.randint(0, 64, (2, n, 13), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model.decode(codes)
    if model.family == "spectral":
        assert out.shape == (2, 40, 13 * 2)  # n_mels, two mel frames per code frame
    else:
        assert out.shape == (2, 1, 13 * HOP)
    assert torch.isfinite(out).all()


def test_rates_and_sizes(model: CodecModel) -> None:
    assert model.sample_rate == 16000
    assert model.hop_length == HOP
    assert model.frame_rate == 50.0
    assert model.num_codebooks == K
    assert model.codebook_size == 64
    # frame_rate x K x ceil(log2(codebook_size)) = 50 x 4 x 6
    assert model.bitrate() == 1200.0
    assert model.bitrate(1) == 300.0


@pytest.mark.parametrize("t", [320, 4321])
def test_forward_returns_matching_reconstruction_and_target(model: CodecModel, t: int) -> None:
    audio, lengths = _audio(t, t // 2 + 1)
    with torch.no_grad():
        out = model(audio, lengths)
    assert isinstance(out, CodecOutput)
    assert out.reconstruction.shape == out.target.shape
    if model.family == "spectral":
        assert out.target.shape == (2, 40, math.ceil(t / 160))
    else:
        assert out.target.shape == (2, 1, math.ceil(t / HOP) * HOP)
    assert out.mask.shape == (2, 1, out.target.shape[-1])
    assert out.quantizer.codes.shape == (2, K, math.ceil(t / HOP))
    # The mask marks each item's own length.
    unit = 160 if model.family == "spectral" else 1
    assert out.mask[1].sum() == math.ceil((t // 2 + 1) / unit)


# --- batching --------------------------------------------------------------------------------------------


LENGTHS = (16000, 9001, 321, 4000, 640)


def test_batched_codes_equal_codes_alone(model: CodecModel) -> None:
    audio, lengths = _audio(*LENGTHS)
    with torch.no_grad():
        batched = model.encode(audio, lengths)
        forward_codes = model(audio, lengths).quantizer.codes
        for i, n in enumerate(LENGTHS):
            alone = model.encode(audio[i : i + 1, :, :n])
            f = math.ceil(n / HOP)
            assert alone.shape[-1] == f
            assert torch.equal(batched[i : i + 1, :, :f], alone), f"item {i} ({n} samples)"
            assert torch.equal(forward_codes[i : i + 1, :, :f], alone), f"item {i} ({n} samples)"


def _garbage_padded(audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    noisy = audio.clone()
    noise = 0.5 * torch.randn(noisy.shape, generator=torch.Generator().manual_seed(1))
    for i, n in enumerate(lengths.tolist()):
        noisy[i, :, n:] = noise[i, :, n:]
    return noisy


def _check_garbage_padding(family: str) -> None:
    model = _model(family)
    audio, lengths = _audio(*LENGTHS)
    with torch.no_grad():
        assert torch.equal(model.encode(_garbage_padded(audio, lengths), lengths), model.encode(audio, lengths))


def test_samples_past_lengths_are_ignored_waveform() -> None:
    _check_garbage_padding("waveform")


def test_samples_past_lengths_are_ignored_spectral() -> None:
    _check_garbage_padding("spectral")


# --- training ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_reach_the_encoder(family: str) -> None:
    model = _model(family).train()
    audio, lengths = _audio(6400, 5000)
    out = model(audio, lengths)
    loss = masked_l1(out.reconstruction, out.target, out.mask) + out.quantizer.loss
    loss.backward()
    encoder_grads = [p.grad for p in model.encoder.parameters()]  # type: ignore[union-attr]
    assert all(g is not None and torch.isfinite(g).all() for g in encoder_grads)
    assert sum(float(g.abs().sum()) for g in encoder_grads if g is not None) > 0
    decoder_grads = [p.grad for p in model.decoder.parameters()]  # type: ignore[union-attr]
    assert all(g is not None for g in decoder_grads)


@pytest.mark.parametrize("family", FAMILIES)
def test_identity_quantizer_model_trains_a_step(family: str) -> None:
    torch.manual_seed(0)
    config = dataclasses.replace(tiny_config(family), quantizer="none")
    model = build_codec(config).train()
    assert model.quantizer.codebook_size == 0  # type: ignore[union-attr]
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    audio, lengths = _audio(3200, 2000)
    out = model(audio, lengths)
    loss = masked_l1(out.reconstruction, out.target, out.mask) + out.quantizer.loss
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


# --- receptive field --------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_audio_beyond_context_samples_does_not_change_codes(family: str) -> None:
    """What chunked encoding relies on: a code frame depends only on audio within ``context_samples`` of it."""
    model = _model(family)
    total, edge = 48000, 8000
    x = torch.from_numpy(speech_like(total / 16000))[None, None]
    changed = x.clone()
    noise = 0.3 * torch.randn(total, generator=torch.Generator().manual_seed(2))
    changed[0, 0, :edge] = noise[:edge]  # changes in [0, edge) and [total - edge, total)
    changed[0, 0, total - edge :] = noise[total - edge :]
    with torch.no_grad():
        differs = (model.encode(x) != model.encode(changed)).any(dim=1)[0]  # [F]
    context = model.context_samples
    # Frame f covers samples [f * hop, (f + 1) * hop); it must not move if its context misses both edits.
    far = [f for f in range(len(differs)) if f * HOP - context >= edge and (f + 1) * HOP + context <= total - edge]
    assert len(far) > 30
    assert not differs[far].any()
    assert differs.any()  # the edits do change the codes near them


# --- model configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"family": "mystery"},
        {"quantizer": "fsq"},
        {"rvq": dataclasses.replace(tiny_config().rvq, vq=dataclasses.replace(tiny_config().rvq.vq, dim=8))},
    ],
    ids=["family", "quantizer", "dim"],
)
def test_model_config_rejects_bad_values(change: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        dataclasses.replace(tiny_config(), **change)


# --- saving and loading -----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_codes_checksum_covers_what_decides_the_codes(family: str, tmp_path: Path) -> None:
    """Equal after a save and load; blind to the decoder; changed by the encoder, a codebook or the front end."""
    model = _model(family)
    reference = model.codes_checksum()
    loaded = load_model(save_model(tmp_path / "m", "tiny", tiny_config(family, vocoder=False), model)).codec
    assert loaded is not None and loaded.codes_checksum() == reference
    with torch.no_grad():
        next(iter(model.decoder.parameters())).add_(1.0)
    assert model.codes_checksum() == reference
    for part in ("encoder", "quantizer"):  # EMA codebooks are buffers, so perturb the state, not parameters
        other = _model(family)
        state = [t for t in getattr(other, part).state_dict().values() if t.is_floating_point()]
        state[0].add_(1.0)
        assert other.codes_checksum() != reference, part
    if family == "spectral":
        config = tiny_config(family)
        hop = dataclasses.replace(config.mel, stft=dataclasses.replace(config.mel.stft, hop_length=200))
        other = build_codec(dataclasses.replace(config, mel=hop)).eval()
        other.load_state_dict(model.state_dict())
        assert other.codes_checksum() != model.codes_checksum()


def test_saving_the_same_weights_gives_the_same_bytes(tmp_path: Path) -> None:
    """The weights checksum names the weights: exporting them again must not change it."""
    config = tiny_config("spectral", vocoder=False)
    model = _model("spectral")
    blobs = {
        (save_model(tmp_path / f"m{i}", "tiny", config, model) / "model.safetensors").read_bytes() for i in range(6)
    }
    assert len(blobs) == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_round_trip_is_bit_exact(family: str, tmp_path: Path) -> None:
    config = tiny_config(family, vocoder=False)
    model = _model(family)
    directory = save_model(tmp_path / "m", "tiny", config, model, card={"note": "test"})
    loaded = load_model(directory)
    assert loaded.name == "tiny" and loaded.config == config and loaded.card.extra == {"note": "test"}
    assert loaded.vocoder is None and loaded.codec is not None
    assert not loaded.codec.training
    assert loaded.checksum == sha256_file(directory / "model.safetensors")
    reference, restored = model.state_dict(), loaded.codec.state_dict()
    assert reference.keys() == restored.keys()
    for key in reference:
        assert reference[key].dtype == restored[key].dtype, key
        assert torch.equal(reference[key], restored[key]), key
    audio, _ = _audio(5000)
    with torch.no_grad():
        assert torch.equal(model.encode(audio), loaded.codec.encode(audio))


def test_half_precision_round_trip_is_close(tmp_path: Path) -> None:
    config = tiny_config("spectral")
    directory = make_model_dir(tmp_path / "full")
    full = load_model(directory)
    assert full.codec is not None and full.vocoder is not None
    half_dir = save_model(tmp_path / "half", "tiny", config, full.codec, full.vocoder, half=True)
    assert (half_dir / "model.safetensors").stat().st_size < 0.6 * (directory / "model.safetensors").stat().st_size
    half = load_model(half_dir)
    assert half.codec is not None and half.vocoder is not None
    for a, b in ((full.codec, half.codec), (full.vocoder, half.vocoder)):
        for key, value in a.state_dict().items():
            restored = b.state_dict()[key]
            assert restored.dtype == value.dtype, key  # cast back to float32 on load
            # float16 keeps 11 significant bits: relative error below 2^-11.
            assert torch.allclose(restored.float(), value.float(), rtol=1e-3, atol=1e-6), key
    audio, _ = _audio(8000)
    with torch.no_grad():
        codes = full.codec.encode(audio)
        # Measured: every code identical; allow a rare flip between two nearly equidistant codewords.
        assert (half.codec.encode(audio) == codes).float().mean() > 0.98
        assert torch.allclose(half.codec.decode(codes), full.codec.decode(codes), atol=0.02)


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("saved") / "tiny")


@pytest.fixture
def model_dir(saved_dir: Path, tmp_path: Path) -> Path:
    """A fresh copy of a saved tiny spectral model that a test may damage."""
    return Path(shutil.copytree(saved_dir, tmp_path / "model"))


def _edit_config(directory: Path, edit: Any) -> None:
    path = directory / "config.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def test_saved_directory_loads(model_dir: Path) -> None:
    loaded = load_model(model_dir)
    assert loaded.codec is not None and loaded.vocoder is not None
    assert loaded.path == model_dir


def test_load_refuses_directory_without_config(model_dir: Path) -> None:
    (model_dir / "config.json").unlink()
    with pytest.raises(ModelError, match="config.json"):
        load_model(model_dir)


def test_load_refuses_corrupt_json(model_dir: Path) -> None:
    (model_dir / "config.json").write_text('{"format": 1, "model": {')
    with pytest.raises(ModelError, match="config"):
        load_model(model_dir)


def test_load_refuses_changed_weight_bytes(model_dir: Path) -> None:
    weights = model_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit inside the tensor data: still a readable file
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum"):
        load_model(model_dir)


def test_load_refuses_missing_weights(model_dir: Path) -> None:
    (model_dir / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="missing"):
        load_model(model_dir)


@pytest.mark.parametrize("where", ["model", "spectral", "vq"])
def test_load_refuses_unknown_config_key(model_dir: Path, where: str) -> None:
    def edit(meta: dict[str, Any]) -> None:
        table = {"model": meta["model"], "spectral": meta["model"]["spectral"], "vq": meta["model"]["rvq"]["vq"]}
        table[where]["colour"] = "blue"

    _edit_config(model_dir, edit)
    with pytest.raises(ModelError, match="colour") as caught:
        load_model(model_dir)
    assert "newer vqaudio" in str(caught.value) and "\n" not in str(caught.value)


def test_load_refuses_future_format(model_dir: Path) -> None:
    _edit_config(model_dir, lambda meta: meta.update(format=2))
    with pytest.raises(ModelError, match="format 2"):
        load_model(model_dir)


@pytest.mark.parametrize("value", ["one", None])
def test_load_refuses_non_integer_format(model_dir: Path, value: object) -> None:
    _edit_config(model_dir, lambda meta: meta.update(format=value))
    with pytest.raises(ModelError):
        load_model(model_dir)


def test_load_refuses_config_that_does_not_match_the_weights(model_dir: Path) -> None:
    _edit_config(model_dir, lambda meta: meta["model"]["rvq"]["vq"].update(codebook_size=128))
    with pytest.raises(ModelError, match="match"):
        load_model(model_dir)


def test_vocoder_magnitude_prior_starts_at_the_mel_inverse(tmp_path: Path) -> None:
    """With magnitude_prior the untrained head's magnitude is the mel pseudo-inverse on its grid, the prior is
    rebuilt from the config rather than stored, and a saved model computes the same thing after loading."""
    from vqaudio.spectral import log_mel, mel_inverse_on_grid
    from vqaudio.vocoders import ISTFTVocoderConfig
    from vqaudio.vocoders.istft_vocoder import ISTFTVocoder

    config = tiny_config("spectral", vocoder=False)
    vocoder = ISTFTVocoder(config.mel, ISTFTVocoderConfig(channels=32, depth=2, n_fft=640, magnitude_prior=True))
    mel = log_mel(torch.randn(1, 8000), config.mel)
    expected = (mel_inverse_on_grid(config.mel, 640) @ mel.exp()).clamp_min(1e-5)
    with torch.inference_mode():
        assert torch.allclose(vocoder.spectrum(mel).abs(), expected.clamp(max=math.exp(6.0)), rtol=1e-4)
        audio = vocoder(mel)
    assert audio.shape == (1, mel.shape[-1] * config.mel.stft.hop_length) and torch.isfinite(audio).all()
    assert "prior" not in vocoder.state_dict()
    with_vocoder = dataclasses.replace(config, vocoder=vocoder.config)
    loaded = load_model(save_model(tmp_path / "m", "prior", with_vocoder, None, vocoder)).vocoder
    assert loaded is not None
    with torch.inference_mode():
        assert torch.equal(loaded(mel), audio)


@pytest.mark.parametrize("phase", ["direct", "integrated"])
def test_vocoder_head_renders_a_steady_tone_between_bins(phase: str) -> None:
    """A steady input gives the same head output at every frame. Only the integrated head turns that into a
    steady sinusoid between two bins: its phase advances by the bin's frequency plus the predicted deviation
    each hop, so overlapping frames add up. The direct head's phase cannot advance: for a bin whose centre
    turns by a quarter cycle per hop, its frames add up to a buzz at the frame rate instead of the tone."""
    from vqaudio.vocoders import ISTFTVocoderConfig
    from vqaudio.vocoders.istft_vocoder import ISTFTVocoder

    config = tiny_config("spectral", vocoder=False)
    vocoder = ISTFTVocoder(config.mel, ISTFTVocoderConfig(channels=8, depth=0, n_fft=640, phase=phase))
    n_bins, hop, bin_hz, k, deviation = 321, 160, 16000 / 640, 5, 0.75
    if phase == "integrated":  # untrained, every bin turns at its centre frequency
        assert not vocoder.head.weight[n_bins : 2 * n_bins].any() and not vocoder.head.bias[n_bins : 2 * n_bins].any()
    with torch.no_grad():  # a head that ignores its input: bin k only, and a constant deviation
        vocoder.head.weight.zero_()
        bias = torch.full((vocoder.head.out_channels,), -30.0)
        bias[k] = math.log(50.0)
        bias[n_bins:] = 0.0
        if phase == "integrated":
            bias[n_bins + k] = deviation
        vocoder.head.bias.copy_(bias)
        audio = vocoder(torch.zeros(1, config.mel.n_mels, 400))[0, 8000:56000].numpy()
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    peak_hz = np.argmax(spectrum) * 16000 / audio.size
    rms = [float(np.sqrt(np.mean(audio[i : i + 4000] ** 2))) for i in range(0, audio.size, 4000)]
    assert max(rms) / min(rms) < 1.01  # steady either way: the input is
    if phase == "integrated":
        assert peak_hz == pytest.approx(k * bin_hz + deviation / (2 * math.pi * hop) * 16000, abs=1.0)
    else:
        assert peak_hz == pytest.approx(16000 / hop, abs=1.0)  # 100 Hz, not bin 5's 125 Hz
