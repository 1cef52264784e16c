"""Tests of vqaudio.spectral: the framing rule, the STFT round trip, log-mel features and config validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vqaudio.errors import ConfigError
from vqaudio.spectral import (
    LogMel,
    MelConfig,
    STFTConfig,
    istft,
    istft_frames,
    log_mel,
    mel_basis,
    mel_inverse_on_grid,
    mel_to_magnitude,
    stft,
    stft_frames,
)

STFT_CONFIGS = [
    STFTConfig(n_fft=1024, hop_length=160, win_length=640),
    STFTConfig(n_fft=512, hop_length=160, win_length=400),
    STFTConfig(n_fft=512, hop_length=128),
    STFTConfig(n_fft=256, hop_length=64),
    STFTConfig(n_fft=400, hop_length=100, win_length=300),
    STFTConfig(n_fft=64, hop_length=32),  # hop = window / 2, the sparsest overlap the inverse allows
]


def _noise(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("hop", [160, 128, 64])
@pytest.mark.parametrize("k", [1, 2, 7])
@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_frame_count_is_ceil_of_length_over_hop(hop: int, k: int, offset: int) -> None:
    config = STFTConfig(n_fft=4 * hop, hop_length=hop)
    t = k * hop + offset
    spec = stft(_noise(t), config)
    assert spec.shape == (config.n_freqs, math.ceil(t / hop))
    assert config.num_frames(t) == math.ceil(t / hop)


@pytest.mark.parametrize("t", [1, 2, 80, 159, 160, 161, 320, 321, 999, 16000, 16001])
def test_frame_count_for_short_and_odd_lengths(t: int) -> None:
    config = STFTConfig(n_fft=1024, hop_length=160, win_length=640)
    assert stft(_noise(t), config).shape[-1] == math.ceil(t / 160)


@pytest.mark.parametrize("config", STFT_CONFIGS, ids=lambda c: f"{c.n_fft}-{c.hop_length}-{c.window_length}")
@pytest.mark.parametrize("t", [1, 100, 4000, 4001])
def test_istft_inverts_stft(config: STFTConfig, t: int) -> None:
    x = _noise(t)
    y = istft(stft(x, config), config, length=t)
    assert y.shape == (t,)
    assert torch.allclose(y, x, atol=1e-5)


def test_istft_default_length_is_frames_times_hop() -> None:
    config = STFTConfig(n_fft=512, hop_length=160, win_length=400)
    x = _noise(1000)
    y = istft(stft(x, config), config)
    assert y.shape == (7 * 160,)
    assert torch.allclose(y[:1000], x, atol=1e-5)
    # The framing pads with zeros past the end, so the extra samples reconstruct that silence.
    assert y[1000:].abs().max() < 1e-5


def test_istft_rejects_wrong_number_of_bins() -> None:
    config = STFTConfig(n_fft=512, hop_length=128)
    with pytest.raises(ValueError, match="257"):
        istft(torch.zeros(100, 5, dtype=torch.complex64), config)


@pytest.mark.parametrize("lead", [(), (3,), (2, 3)])
def test_batch_shapes_are_preserved(lead: tuple[int, ...]) -> None:
    config = STFTConfig(n_fft=256, hop_length=64)
    x = _noise(*lead, 1000)
    spec = stft(x, config)
    assert spec.shape == (*lead, 129, math.ceil(1000 / 64))
    assert istft(spec, config, 1000).shape == x.shape


def test_batched_stft_equals_one_at_a_time() -> None:
    config = STFTConfig(n_fft=512, hop_length=160, win_length=400)
    x = _noise(2, 3, 2000)
    spec = stft(x, config)
    for i in range(2):
        for j in range(3):
            assert torch.allclose(spec[i, j], stft(x[i, j], config), atol=1e-5)


@pytest.mark.parametrize("config", STFT_CONFIGS, ids=lambda c: f"{c.n_fft}-{c.hop_length}-{c.window_length}")
@pytest.mark.parametrize("t", [1, 999, 1000])
def test_zero_padding_does_not_change_frames(config: STFTConfig, t: int) -> None:
    x = _noise(t)
    padded = torch.cat([x, torch.zeros(3 * config.n_fft + 17)])
    short, long = stft(x, config), stft(padded, config)
    assert torch.allclose(long[..., : short.shape[-1]], short, atol=1e-5)


def test_log_mel_shape_and_floor() -> None:
    config = MelConfig(sample_rate=16000, stft=STFTConfig(n_fft=512, hop_length=160, win_length=400), n_mels=40)
    x = _noise(2, 3201)
    mel = log_mel(x, config)
    assert mel.shape == (2, 40, 21)
    # Silence sits exactly on the log floor instead of -inf.
    silent = log_mel(torch.zeros(320), config)
    assert torch.isfinite(silent).all()
    assert torch.allclose(silent, torch.full_like(silent, math.log(1e-5)))


def test_log_mel_without_autograd_matches_the_complex_modulus() -> None:
    # Inference computes the modulus as sqrt(re^2 + im^2) on the frame-major spectrum; it must agree with
    # the definition, log(mel_basis @ |stft|), to float32 rounding.
    config = MelConfig(sample_rate=16000, stft=STFTConfig(n_fft=1024, hop_length=160, win_length=640), n_mels=80)
    x = _noise(2, 16000) * 0.1
    reference = torch.log(torch.clamp(mel_basis(config) @ stft(x, config.stft).abs(), min=1e-5))
    with torch.inference_mode():
        fast = log_mel(x, config)
    assert fast.is_contiguous()
    assert torch.allclose(fast, reference, atol=1e-5, rtol=0)


def test_log_mel_gradient_is_finite_through_digital_silence() -> None:
    # Zero bins have an infinite square-root gradient; the autograd path must keep abs's zero gradient there.
    config = MelConfig(sample_rate=16000, stft=STFTConfig(n_fft=512, hop_length=160, win_length=400), n_mels=40)
    x = torch.cat([torch.zeros(1600), _noise(1, 1600)[0]]).requires_grad_(True)
    log_mel(x, config).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_log_mel_module_accepts_channel_axis() -> None:
    config = MelConfig(stft=STFTConfig(n_fft=512, hop_length=160), n_mels=40)
    x = _noise(2, 1, 1600)
    assert torch.equal(LogMel(config)(x), log_mel(x[:, 0], config))


def test_mel_to_magnitude_iterations_bring_the_mel_closer() -> None:
    config = MelConfig(sample_rate=16000, stft=STFTConfig(n_fft=512, hop_length=160, win_length=400), n_mels=40)
    t = torch.arange(8000) / 16000
    x = sum(torch.sin(2 * math.pi * 150 * k * t) / k for k in range(1, 20)) + 0.01 * _noise(8000)
    target = log_mel(x, config)
    basis = mel_basis(config)

    def mel_error(mag: torch.Tensor) -> float:
        return float(torch.linalg.norm(basis @ mag - target.exp()) / torch.linalg.norm(target.exp()))

    plain = mel_to_magnitude(target, config)
    refined = mel_to_magnitude(target, config, iterations=30)
    assert plain.shape == refined.shape == (config.stft.n_freqs, target.shape[-1])
    assert (refined >= 0).all() and (plain >= 0).all()
    assert mel_error(refined) < mel_error(plain)


def test_mel_to_magnitude_without_autograd_takes_the_same_steps_through_the_sparse_basis() -> None:
    """Inference runs the projected-gradient steps through the sparse mel basis: the same result up to float
    rounding, with and without batch dimensions, and the dense path stays for autograd."""
    config = MelConfig(sample_rate=16000, stft=STFTConfig(n_fft=1024, hop_length=160, win_length=640))
    target = log_mel(_noise(2, 3, 4000), config)  # [2, 3, n_mels, F]
    with torch.enable_grad():  # the dense loop, as autograd would run it
        dense = mel_to_magnitude(target.clone().requires_grad_(True), config, iterations=30).detach()
    with torch.inference_mode():
        sparse = mel_to_magnitude(target, config, iterations=30)
        one = mel_to_magnitude(target[1, 2], config, iterations=30)
    assert sparse.shape == dense.shape == (2, 3, config.stft.n_freqs, target.shape[-1])
    assert (sparse >= 0).all() and torch.allclose(sparse, dense, rtol=1e-5, atol=1e-6 * float(dense.max()))
    assert torch.allclose(one, sparse[1, 2], rtol=1e-5, atol=1e-6 * float(dense.max()))
    # Outside inference mode too, as long as the input needs no gradient: the output does not depend on the mode.
    assert torch.equal(mel_to_magnitude(target, config, iterations=30), sparse) and sparse.is_contiguous()
    leaf = target.clone().requires_grad_(True)
    mel_to_magnitude(leaf, config, iterations=2).sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


def test_mel_inverse_on_grid_is_the_pseudo_inverse_resampled() -> None:
    config = MelConfig(sample_rate=16000, stft=STFTConfig(n_fft=1024, hop_length=160, win_length=640))
    x = torch.randn(1, 4000)
    target = log_mel(x, config)
    same = mel_inverse_on_grid(config, 1024)
    assert same.shape == (513, 80)
    # On the features' own grid it is exactly the zero-iteration inverse (before clamping).
    assert torch.allclose((same @ target.exp()).clamp_min(0), mel_to_magnitude(target, config), atol=1e-5)
    coarse = mel_inverse_on_grid(config, 640)
    assert coarse.shape == (321, 80)
    # Where the grids meet (every 125 Hz: bin 5j at 25 Hz spacing, bin 8j at 15.625 Hz) the values agree.
    on_coarse, on_fine = (coarse @ target.exp())[..., ::5, :], (same @ target.exp())[..., ::8, :]
    assert torch.allclose(on_coarse, on_fine, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_fft": 0},
        {"hop_length": 0},
        {"hop_length": -160},
        {"n_fft": 512, "hop_length": 160, "win_length": 1024},  # window longer than the FFT
        {"n_fft": 512, "hop_length": 161},  # n_fft - hop odd: asymmetric padding
        {"n_fft": 512, "hop_length": 300, "win_length": 200},  # hop longer than the window leaves gaps
    ],
)
def test_stft_config_rejects_bad_values(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        STFTConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sample_rate": 0},
        {"n_mels": 0},
        {"f_max": 9000.0},  # above Nyquist at 16 kHz
        {"f_min": -1.0},
        {"f_min": 4000.0, "f_max": 4000.0},
        {"f_min": 9000.0},
    ],
)
def test_mel_config_rejects_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        MelConfig(**kwargs)  # type: ignore[arg-type]


def test_mel_config_derived_values() -> None:
    config = MelConfig(sample_rate=16000, stft=STFTConfig(n_fft=1024, hop_length=160))
    assert config.upper_frequency == 8000.0
    assert config.frame_rate == 100.0
    assert config.stft.window_length == 1024
    assert config.stft.pad == (1024 - 160) // 2


@pytest.mark.parametrize(
    ("n_fft", "hop", "win"), [(1024, 160, 640), (640, 160, None), (512, 128, None), (400, 160, 400)]
)
def test_frame_major_stft_matches(n_fft: int, hop: int, win: int | None) -> None:
    """stft_frames / istft_frames (Griffin-Lim's layout) frame and invert exactly as stft / istft do."""
    cfg = STFTConfig(n_fft=n_fft, hop_length=hop, win_length=win)
    x = torch.randn(2, 3, 8000 + 37, generator=torch.Generator().manual_seed(1))
    spec = stft(x, cfg)
    frames = stft_frames(x, cfg)
    assert frames.shape == (2, 3, spec.shape[-1], cfg.n_freqs)
    assert torch.equal(frames.transpose(-1, -2), spec)
    y = istft_frames(frames, cfg, x.shape[-1])
    assert torch.allclose(y, x, atol=1e-5)
    assert torch.allclose(istft(spec, cfg, x.shape[-1]), y, atol=1e-6)


@pytest.mark.parametrize(
    ("sample_rate", "n_fft", "n_mels", "f_min", "f_max"),
    [
        (16000, 1024, 80, 0.0, 8000.0),
        (16000, 512, 40, 0.0, 8000.0),
        (24000, 1024, 100, 0.0, 12000.0),
        (16000, 400, 40, 0.0, 8000.0),
        (22050, 2048, 128, 30.0, 9000.0),
    ],
)
def test_mel_filterbank_is_librosas_bit_for_bit(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float
) -> None:
    """The filterbank is computed without librosa (whose import costs the CLI two seconds) and must be librosa's
    exactly: the codes of every shipped model depend on it."""
    import librosa

    from vqaudio.spectral import slaney_mel_filterbank

    ours = slaney_mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max)
    theirs = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max, norm="slaney")
    assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)


def test_cli_start_does_not_import_librosa() -> None:
    import subprocess
    import sys

    code = "import sys, vqaudio.cli, vqaudio.models.dvector; print('librosa' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
