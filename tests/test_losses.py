"""Tests of the reconstruction losses: zero for identical signals, ordered by distortion, differentiable, masked."""

from __future__ import annotations

import pytest
import torch
from conftest import speech_like

from vqaudio.errors import ConfigError
from vqaudio.losses import (
    MelLoss,
    MultiResolutionSTFTLoss,
    PhaseLoss,
    loudness_l1,
    masked_asymmetric_l1,
    masked_l1,
    masked_mse,
)
from vqaudio.spectral import MelConfig, STFTConfig
from vqaudio.training.config import LossConfig


@pytest.fixture(scope="module")
def audio() -> torch.Tensor:
    """``[2, 1, T]`` half a second of speech-like audio, two different pitches."""
    return torch.stack([torch.from_numpy(speech_like(0.5, f0=f0))[None] for f0 in (120.0, 200.0)])


def _noisy(x: torch.Tensor, level: float) -> torch.Tensor:
    return x + level * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))


def _losses() -> list[torch.nn.Module]:
    mel = MelConfig(sample_rate=16000, stft=STFTConfig(n_fft=512, hop_length=160, win_length=400), n_mels=40)
    return [MultiResolutionSTFTLoss(), MelLoss(mel), PhaseLoss(STFTConfig(n_fft=400, hop_length=160))]


@pytest.mark.parametrize("loss", _losses(), ids=["mrstft", "mel", "phase"])
def test_loss_of_identical_signals_is_zero(loss: torch.nn.Module, audio: torch.Tensor) -> None:
    assert float(loss(audio, audio.clone())) < 1e-6


@pytest.mark.parametrize("loss", _losses(), ids=["mrstft", "mel", "phase"])
def test_loss_grows_with_noise(loss: torch.nn.Module, audio: torch.Tensor) -> None:
    values = [float(loss(_noisy(audio, level), audio)) for level in (0.001, 0.01, 0.1)]
    assert 0 < values[0] < values[1] < values[2]


@pytest.mark.parametrize("loss", _losses(), ids=["mrstft", "mel", "phase"])
def test_loss_accepts_audio_without_channel_axis(loss: torch.nn.Module, audio: torch.Tensor) -> None:
    noisy = _noisy(audio, 0.01)
    assert torch.allclose(loss(noisy[:, 0], audio[:, 0]), loss(noisy, audio))


@pytest.mark.parametrize("loss", _losses(), ids=["mrstft", "mel", "phase"])
def test_loss_is_differentiable(loss: torch.nn.Module, audio: torch.Tensor) -> None:
    estimate = _noisy(audio, 0.01).requires_grad_()
    value = loss(estimate, audio)
    assert value.dim() == 0
    value.backward()
    assert estimate.grad is not None
    assert torch.isfinite(estimate.grad).all()
    assert estimate.grad.abs().sum() > 0
    # A small step against the gradient lowers the loss.
    with torch.no_grad():
        stepped = estimate - 1e-4 * estimate.grad / estimate.grad.abs().max()
    assert float(loss(stepped, audio)) < float(value.detach())


@pytest.mark.parametrize("loss", _losses(), ids=["mrstft", "mel", "phase"])
def test_loss_gradient_is_finite_on_silence(loss: torch.nn.Module) -> None:
    estimate = torch.zeros(1, 1, 4000, requires_grad=True)
    loss(estimate, torch.zeros(1, 1, 4000)).backward()
    assert estimate.grad is not None and torch.isfinite(estimate.grad).all()


def test_phase_loss_sees_what_magnitude_losses_cannot(audio: torch.Tensor) -> None:
    """A flipped polarity leaves every magnitude alone and turns every phase by pi: each bin's phase is then
    as wrong as it can be (that term is 2), while differences between bins and frames are untouched."""
    phase = PhaseLoss(STFTConfig(n_fft=400, hop_length=160))
    assert float(MultiResolutionSTFTLoss()(-audio, audio)) < 1e-6
    assert float(phase(-audio, audio)) == pytest.approx(2.0, abs=1e-3)
    # A delay of one sample barely moves the magnitudes but turns every bin's phase in proportion to its
    # frequency: the magnitude loss ranks it below faint noise, the phase loss far above.
    delayed = torch.nn.functional.pad(audio, (1, 0))[..., :-1]
    faint = _noisy(audio, 0.001)
    assert float(MultiResolutionSTFTLoss()(delayed, audio)) < 0.2 * float(MultiResolutionSTFTLoss()(faint, audio))
    assert float(phase(delayed, audio)) > 3 * float(phase(faint, audio))


@pytest.mark.parametrize("fn", [masked_l1, masked_mse], ids=["l1", "mse"])
def test_masked_losses_ignore_masked_positions(fn: object) -> None:
    x = torch.randn(2, 3, 10, generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[0, :, 6:] += 100.0  # differences only where the mask is zero
    y[1, :, 9:] -= 50.0
    mask = torch.ones(2, 1, 10)
    mask[0, :, 6:] = 0
    mask[1, :, 9:] = 0
    assert float(fn(x, y, mask)) == 0.0  # type: ignore[operator]
    assert float(fn(x, y)) > 1.0  # type: ignore[operator]


def test_masked_l1_is_the_mean_over_valid_positions() -> None:
    x = torch.zeros(2, 3, 4)
    y = torch.zeros(2, 3, 4)
    y[0, :, 0] = 3.0  # valid
    y[1, :, 3] = 7.0  # masked
    mask = torch.tensor([[[1.0, 1.0, 0.0, 0.0]], [[1.0, 1.0, 1.0, 0.0]]])
    # 3 channels x 5 valid frames = 15 valid positions; 3 of them differ by 3.
    assert float(masked_l1(x, y, mask)) == pytest.approx(9.0 / 15.0)
    assert float(masked_mse(x, y, mask)) == pytest.approx(27.0 / 15.0)
    assert float(masked_l1(x, y)) == pytest.approx((9.0 + 21.0) / 24.0)


def test_loudness_l1_weighs_peaks_more_and_ignores_level_and_padding() -> None:
    torch.manual_seed(0)
    target = torch.randn(2, 8, 20) - 4.0
    assert float(loudness_l1(target, target)) == 0.0
    # The same log-domain error costs more on a peak than in a valley.
    peak, valley = target.clone(), target.clone()
    target[0, 0, 0], target[0, 1, 0] = 0.0, -8.0
    peak[0, 0, 0], valley[0, 1, 0] = -0.5, -8.5
    peak[0, 1, 0], valley[0, 0, 0] = -8.0, 0.0
    assert float(loudness_l1(peak, target)) > 10 * float(loudness_l1(valley, target))
    # A recording 20 dB louder (log-mel + ln 10) with the same relative error scores the same.
    est = target + 0.3 * torch.randn_like(target)
    torch.testing.assert_close(loudness_l1(est + 2.3026, target + 2.3026), loudness_l1(est, target))
    # Frames outside the mask do not count.
    mask = torch.ones(2, 1, 20)
    mask[:, :, 15:] = 0
    spoiled = est.clone()
    spoiled[..., 15:] += 5.0
    torch.testing.assert_close(loudness_l1(spoiled, target, mask), loudness_l1(est, target, mask))


def test_asymmetric_l1_weights_overshoot_and_errs_low() -> None:
    x = torch.tensor([[[1.0, -1.0, 0.0, 5.0]]])
    y = torch.zeros_like(x)
    mask = torch.tensor([[[1.0, 1.0, 1.0, 0.0]]])
    torch.testing.assert_close(masked_asymmetric_l1(x, y, mask), masked_l1(x, y, mask))
    torch.testing.assert_close(masked_asymmetric_l1(x, y, mask, over=0.5), torch.tensor((1.5 + 0.5 + 0.0) / 3))
    # Fitted to samples of a spread-out target, a constant settles below the median.
    target = torch.linspace(-1.0, 1.0, 101)[None, None]
    guess = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([guess], lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        masked_asymmetric_l1(guess.expand_as(target), target, over=0.4).backward()
        opt.step()
    assert -0.5 < float(guess.detach()) < -0.3  # the 0.3 quantile of the uniform target is -0.4


@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan"), True])
def test_mel_over_is_checked(bad: float) -> None:
    with pytest.raises(ConfigError, match="mel_over"):
        LossConfig(mel_over=bad)
    if not isinstance(bad, bool):
        with pytest.raises(ValueError):
            masked_asymmetric_l1(torch.ones(1, 1, 2), torch.zeros(1, 1, 2), over=bad)
