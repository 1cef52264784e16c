"""Objective quality measures for comparing a decoded signal with its original.

Every measure takes two mono signals as 1-D float arrays ``[T]`` at the same sample rate. Codecs delay
their output (Codec2 and Opus by a few milliseconds, a vocoder by its padding), and SI-SDR punishes a
one-sample lag as hard as noise, so :func:`score` first finds that delay with :func:`align_delay` and
then runs all four measures on the aligned pair.

PESQ and STOI come from the optional ``pesq`` and ``pystoi`` packages (``pip install vqaudio[eval]``);
librosa is imported only when the mel distance is computed, so importing this module stays cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vqaudio.errors import AudioError, ConfigError, VQAudioError

__all__ = [
    "AlignResult",
    "QualityScores",
    "align_delay",
    "mel_distance",
    "pesq_wb",
    "score",
    "si_sdr",
    "stoi",
]

# PESQ is defined at 8 and 16 kHz only; wideband mode needs 16 kHz.
_PESQ_RATE = 16000
# The mel distance uses a 1024/256 STFT at 16 kHz; other rates scale both so the window spans 64 ms.
_MEL_RATE = 16000
_MEL_N_FFT = 1024
_MEL_HOP = 256
_LOG_FLOOR = 1e-5
# Added to both energies of SI-SDR so that silence gives a finite number instead of 0/0; far below the
# energy of any real signal, so identical signals still score well above 100 dB.
_SI_SDR_EPS = 1e-10
# Below this waveform correlation coefficient the output is taken not to follow the input's waveform
# (measured: Opus 6 kbit/s 0.86, Codec2 and Griffin-Lim about 0.1), and the delay comes from envelopes.
_WAVEFORM_MATCH = 0.5
# RMS window of that envelope: 5 ms, short enough to place syllable onsets to about a millisecond.
_ENVELOPE_MS = 5.0


@dataclass(frozen=True)
class AlignResult:
    """Two signals shifted into register and trimmed to the same length.

    Attributes:
        reference: ``[T']`` the reference, trimmed at the start when the estimate was early.
        estimate: ``[T']`` the estimate, trimmed at the start when it was late.
        delay: samples by which the estimate lagged the reference (negative: it was early).
        method: ``"waveform"`` when the waveforms matched, ``"envelope"`` when the RMS envelopes were used.
    """

    reference: np.ndarray
    estimate: np.ndarray
    delay: int
    method: str


@dataclass(frozen=True)
class QualityScores:
    """The four measures of one decoded signal against its original.

    Attributes:
        pesq_wb: wideband PESQ (MOS-LQO, about 1.0 to 4.64); NaN when PESQ finds no speech.
        stoi: short-time objective intelligibility, 0 to 1.
        si_sdr: scale-invariant signal-to-distortion ratio in dB.
        mel_distance: mean absolute difference of log10 mel spectrograms (0 for identical signals).
    """

    pesq_wb: float
    stoi: float
    si_sdr: float
    mel_distance: float


def _as_signal(x: np.ndarray, name: str) -> np.ndarray:
    """Return ``x`` as a float64 ``[T]`` array, refusing what no measure can use."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise AudioError(f"{name}: expected a 1-D mono signal [T], got shape {tuple(arr.shape)}; downmix first")
    if arr.size == 0:
        raise AudioError(f"{name}: the signal is empty")
    if not np.all(np.isfinite(arr)):
        raise AudioError(f"{name}: the signal holds NaN or Inf samples")
    return arr


def _as_pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = _as_signal(reference, "reference")
    est = _as_signal(estimate, "estimate")
    if ref.shape != est.shape:
        raise AudioError(
            f"reference has {ref.size} samples but estimate has {est.size}; align them first (align_delay)"
        )
    return ref, est


def _check_rate(sample_rate: int) -> None:
    if sample_rate <= 0:
        raise ConfigError(f"sample_rate must be positive, got {sample_rate}")


def _xcorr_best_lag(reference: np.ndarray, estimate: np.ndarray, max_delay: int) -> tuple[int, float]:
    """The lag ``d`` in ``[-max_delay, max_delay]`` maximising ``sum_n reference[n] * estimate[n + d]``.

    Returns the lag and its correlation normalised by both signals' whole energies (a lower bound of the
    correlation coefficient over the overlap). Ties go to the smallest ``|d|``; when no lag correlates
    positively the lag is 0.
    """
    # Linear (not circular) correlation needs an FFT at least as long as both signals together.
    n_fft = 1 << (reference.size + estimate.size - 1).bit_length()
    spectrum = np.fft.rfft(estimate, n_fft) * np.conj(np.fft.rfft(reference, n_fft))
    corr = np.fft.irfft(spectrum, n_fft)
    # Lag d sits at index d for d >= 0 and wraps to n_fft + d for d < 0. Lags beyond either signal's
    # length have no overlap at all, so they are never candidates.
    lags = np.arange(-min(max_delay, reference.size - 1), min(max_delay, estimate.size - 1) + 1)
    # Order by |d| so that argmax, which returns the first maximum, prefers the smallest shift.
    lags = lags[np.argsort(np.abs(lags), kind="stable")]
    values = corr[lags % n_fft]
    best = int(np.argmax(values))
    if values[best] <= 0:
        return 0, 0.0
    norm = math.sqrt(float(np.dot(reference, reference)) * float(np.dot(estimate, estimate)))
    return int(lags[best]), float(values[best]) / norm


def _envelope(x: np.ndarray, window: int) -> np.ndarray:
    """``[T]`` -> ``[T]`` zero-mean RMS envelope over a centred ``window``-sample box (O(T) via cumsum)."""
    power = np.concatenate([[0.0], np.cumsum(x * x)])
    half = window // 2
    hi = np.minimum(np.arange(x.size) + window - half, x.size)
    lo = np.maximum(np.arange(x.size) - half, 0)
    env = np.sqrt(np.maximum(power[hi] - power[lo], 0.0) / window)
    return env - env.mean()


def align_delay(
    reference: np.ndarray, estimate: np.ndarray, max_delay: int, *, envelope_window: int = 80
) -> AlignResult:
    """Shift ``estimate`` by the lag that best matches ``reference`` and trim both to a common length.

    The lag is the integer ``d`` in ``[-max_delay, max_delay]`` that maximises the cross-correlation
    ``sum_n reference[n] * estimate[n + d]``, computed for all lags at once with one FFT product.

    Waveform correlation only finds the delay of codecs that keep the waveform (Opus, a VQ-VAE with a
    waveform decoder). Parametric coders and phase-reconstructing back ends (Codec2, Griffin-Lim, most
    vocoders) return a signal whose waveform barely correlates with the input, and the maximum then
    lands on a spurious lag (Codec2 3200 came out 8 ms off on a LibriSpeech file). So when the best waveform
    correlation coefficient is below 0.5, the lag is taken from the cross-correlation of the two RMS
    envelopes instead, which such coders keep.

    Args:
        reference: ``[T1]`` the original signal.
        estimate: ``[T2]`` the decoded signal; need not be as long as ``reference``.
        max_delay: the largest lag in samples to consider, either way.
        envelope_window: RMS window in samples for the envelope fallback (80 is 5 ms at 16 kHz).

    Returns:
        :class:`AlignResult` with both signals ``[T']`` as float64, the chosen delay and how it was found.
    """
    if max_delay < 0:
        raise ConfigError(f"max_delay must be >= 0 samples, got {max_delay}")
    if envelope_window < 1:
        raise ConfigError(f"envelope_window must be >= 1 sample, got {envelope_window}")
    ref = _as_signal(reference, "reference")
    est = _as_signal(estimate, "estimate")

    delay, coefficient = _xcorr_best_lag(ref, est, max_delay)
    method = "waveform"
    if coefficient < _WAVEFORM_MATCH:
        delay, _ = _xcorr_best_lag(_envelope(ref, envelope_window), _envelope(est, envelope_window), max_delay)
        method = "envelope"

    #   delay > 0: estimate[n + delay] lines up with reference[n] -> drop the estimate's first samples
    #   delay < 0: estimate[n] lines up with reference[n - delay]  -> drop the reference's first samples
    if delay >= 0:
        est = est[delay:]
    else:
        ref = ref[-delay:]
    length = min(ref.size, est.size)
    return AlignResult(reference=ref[:length], estimate=est[:length], delay=delay, method=method)


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al., "SDR - half-baked or well done?", 2019).

    Both signals are made zero-mean; the reference is scaled to its best least-squares fit of the
    estimate, and the ratio of that target's energy to the residual's energy is returned in dB.
    Rescaling the estimate therefore does not change the result.

    Args:
        reference: ``[T]`` the original signal.
        estimate: ``[T]`` the decoded signal, already aligned to ``reference``.
    """
    ref, est = _as_pair(reference, estimate)
    ref = ref - ref.mean()
    est = est - est.mean()
    alpha = float(np.dot(est, ref)) / (float(np.dot(ref, ref)) + _SI_SDR_EPS)
    target = alpha * ref
    residual = est - target
    ratio = (float(np.dot(target, target)) + _SI_SDR_EPS) / (float(np.dot(residual, residual)) + _SI_SDR_EPS)
    return 10.0 * math.log10(ratio)


def _resample(x: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    if sample_rate == target_rate:
        return x
    import soxr

    return np.asarray(soxr.resample(x, sample_rate, target_rate), dtype=np.float64)


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Wideband PESQ (ITU-T P.862.2) of ``estimate`` against ``reference``.

    Signals at other rates are resampled to 16 kHz first. PESQ refuses clips with no speech-like
    activity or shorter than about a quarter second; those give NaN so that an average over many files
    can skip them.

    Args:
        reference: ``[T]`` the original signal.
        estimate: ``[T]`` the decoded signal, already aligned to ``reference``.
        sample_rate: rate of both signals in Hz.
    """
    try:
        import pesq as _pesq
    except ImportError as exc:
        raise VQAudioError("PESQ needs the optional package 'pesq': pip install vqaudio[eval]") from exc
    _check_rate(sample_rate)
    ref, est = _as_pair(reference, estimate)
    ref = _resample(ref, sample_rate, _PESQ_RATE)
    est = _resample(est, sample_rate, _PESQ_RATE)
    # pesq divides both signals by their joint peak; two silent signals would make that 0/0.
    if not (np.any(ref) or np.any(est)):
        return math.nan
    try:
        return float(_pesq.pesq(_PESQ_RATE, ref, est, "wb"))
    except _pesq.PesqError:
        # NoUtterancesError, BufferTooShortError and friends: PESQ has nothing to measure here.
        return math.nan


def stoi(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Short-time objective intelligibility (Taal et al. 2011, not the extended variant), 0 to 1.

    Args:
        reference: ``[T]`` the original signal.
        estimate: ``[T]`` the decoded signal, already aligned to ``reference``.
        sample_rate: rate of both signals in Hz (pystoi resamples to 10 kHz itself).
    """
    try:
        import pystoi
    except ImportError as exc:
        raise VQAudioError("STOI needs the optional package 'pystoi': pip install vqaudio[eval]") from exc
    _check_rate(sample_rate)
    ref, est = _as_pair(reference, estimate)
    return float(pystoi.stoi(ref, est, sample_rate, extended=False))


def mel_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, n_mels: int = 80) -> float:
    """Mean absolute difference between the log10 mel spectrograms of two signals.

    Magnitude mel spectrograms with ``n_fft`` 1024 and hop 256 at 16 kHz (both scaled with the rate),
    floored at 1e-5 before the log so that silence does not dominate.

    Args:
        reference: ``[T]`` the original signal.
        estimate: ``[T]`` the decoded signal, already aligned to ``reference``.
        sample_rate: rate of both signals in Hz.
        n_mels: number of mel bands.
    """
    import librosa

    _check_rate(sample_rate)
    if n_mels <= 0:
        raise ConfigError(f"n_mels must be positive, got {n_mels}")
    ref, est = _as_pair(reference, estimate)
    n_fft = max(16, round(_MEL_N_FFT * sample_rate / _MEL_RATE))
    hop = max(1, round(_MEL_HOP * sample_rate / _MEL_RATE))

    def log_mel(x: np.ndarray) -> np.ndarray:
        mel = librosa.feature.melspectrogram(
            y=x.astype(np.float32), sr=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels, power=1.0
        )
        return np.log10(np.maximum(mel, _LOG_FLOOR))

    return float(np.mean(np.abs(log_mel(ref) - log_mel(est))))


def score(
    reference: np.ndarray, estimate: np.ndarray, sample_rate: int, *, max_delay_ms: float = 50.0
) -> QualityScores:
    """Delay-align ``estimate`` to ``reference``, then measure PESQ-WB, STOI, SI-SDR and mel distance.

    Args:
        reference: ``[T1]`` the original mono signal.
        estimate: ``[T2]`` the decoded mono signal; its length may differ slightly.
        sample_rate: rate of both signals in Hz.
        max_delay_ms: the largest codec delay searched for, either way.
    """
    _check_rate(sample_rate)
    if max_delay_ms < 0:
        raise ConfigError(f"max_delay_ms must be >= 0, got {max_delay_ms}")
    aligned = align_delay(
        reference,
        estimate,
        round(max_delay_ms * sample_rate / 1000.0),
        envelope_window=max(1, round(_ENVELOPE_MS * sample_rate / 1000.0)),
    )
    ref, est = aligned.reference, aligned.estimate
    return QualityScores(
        pesq_wb=pesq_wb(ref, est, sample_rate),
        stoi=stoi(ref, est, sample_rate),
        si_sdr=si_sdr(ref, est),
        mel_distance=mel_distance(ref, est, sample_rate),
    )
