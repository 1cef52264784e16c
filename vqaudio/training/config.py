"""Typed training configuration, loaded from TOML."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # tomllib is 3.11's; tomli is the same parser, packaged for 3.10
    import tomli as tomllib

from vqaudio.config import from_dict
from vqaudio.errors import ConfigError
from vqaudio.models.builders import ModelConfig
from vqaudio.prior.model import PriorConfig


@dataclass(frozen=True)
class DataConfig:
    """Where training audio comes from.

    ``train`` lists manifests (``.tsv``) and/or folders to scan (a LibriSpeech root works as a folder);
    relative paths are resolved against the config file's folder. Files whose path ends with an entry of
    ``exclude_list`` (e.g. ``speech/dev.list``) are never used.
    """

    train: tuple[str, ...] = ()
    exclude_list: str | None = None
    valid: tuple[str, ...] = ()  # files/folders/manifests for the validation loss
    max_valid_files: int = 8
    segment_seconds: float = 2.0
    batch_size: int = 16
    num_workers: int = 0
    min_sample_rate: int = 0
    cache: bool = True
    # Speed perturbation: each crop is played at a speed drawn uniformly from this range (see CropDataset).
    speed: tuple[float, float] = (1.0, 1.0)
    # Speaker-conditioned codecs: seconds of another stretch of each crop's recording, the voice reference.
    reference_seconds: float = 3.0

    def __post_init__(self) -> None:
        if self.reference_seconds <= 0:
            raise ConfigError("data.reference_seconds must be positive")
        if self.segment_seconds <= 0 or self.batch_size < 1 or self.num_workers < 0:
            raise ConfigError("segment_seconds and batch_size must be positive, num_workers >= 0")
        speed = self.speed
        numbers = isinstance(speed, (tuple, list)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in speed
        )
        if not (numbers and len(speed) == 2 and 0.5 <= speed[0] <= speed[1] <= 2.0):
            raise ConfigError(f"data.speed must be [low, high] with 0.5 <= low <= high <= 2, got {speed!r}")


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 500
    min_lr_ratio: float = 0.05  # cosine decay ends at lr * min_lr_ratio
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.warmup_steps < 0 or not 0 <= self.min_lr_ratio <= 1 or self.grad_clip <= 0:
            raise ConfigError("invalid optimizer settings")


@dataclass(frozen=True)
class LossConfig:
    """Loss weights. Spectral codecs use the log-mel terms; waveform models and vocoders the audio terms."""

    mel_l1: float = 1.0
    mel_l2: float = 1.0
    # Spectral codecs and vocoders: L1 on compressed mel magnitude (see ``losses.loudness_l1``) of the decoded
    # mel or the generated audio; it keeps spectral peaks as high as the real ones, where the log-domain terms
    # let them sag.
    mel_loudness: float = 0.0
    loudness_exponent: float = 0.5
    # Spectral codecs: makes the log-mel L1 asymmetric, weighting a decoded value above the real one by
    # ``1 + mel_over`` and one below it by ``1 - mel_over`` (a quantile loss below the median). Where the
    # decoder cannot tell, it then errs low: PESQ hears added energy in pauses and valleys more than missing.
    mel_over: float = 0.0
    stft: float = 1.0  # multi-resolution STFT (audio outputs)
    mel_audio: float = 15.0  # log-mel L1 of generated audio (audio outputs)
    # Vocoder task: phase distance (instantaneous phase, group delay, instantaneous frequency) to the real
    # audio, on an STFT with the mel's window and hop. 0 leaves the phase to the magnitude losses.
    phase: float = 0.0
    quantizer: float = 1.0  # commitment (+ codebook) losses
    # Codec task with a ``teacher``: mean squared distance of the encoder's latents to the teacher's.
    distill: float = 0.0
    adversarial: bool = False
    adv_weight: float = 1.0
    feature_matching: float = 2.0
    adv_start_step: int = 0
    # Speaker-conditioned codecs: weight of the encoder's term against a speaker classifier that learns to name
    # each crop's training speaker from its units (vqaudio/training/speaker_adversary.py). 0: no classifier.
    speaker_adversarial: float = 0.0
    # Steps in which the classifier learns alone before the encoder answers it: a classifier that cannot yet tell
    # speakers apart gives the encoder nothing to remove, only noise to follow.
    speaker_adversarial_start: int = 0

    def __post_init__(self) -> None:
        if not self.speaker_adversarial >= 0.0:
            raise ConfigError(f"loss.speaker_adversarial must be >= 0, got {self.speaker_adversarial}")
        if isinstance(self.mel_over, bool) or not 0.0 <= self.mel_over < 1.0:
            raise ConfigError(f"loss.mel_over must be in [0, 1), got {self.mel_over}")


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run. ``task`` is ``codec`` (train the VQ-VAE), ``vocoder`` (train its vocoder) or
    ``prior`` (train a token prior over ``codec_model``'s codes)."""

    name: str = "model"
    task: str = "codec"
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    loss: LossConfig = LossConfig()
    steps: int = 10000
    log_every: int = 25
    checkpoint_every: int = 250
    valid_every: int = 1000
    seed: int = 0
    threads: int = 0  # torch threads per process; 0 = torch's default
    # A model directory whose weights (codec and/or vocoder, as the task needs) start the training.
    init_from: str | None = None
    # Vocoder task only: a codec model directory. The vocoder then learns from that codec's decoded log-mel
    # (random number of codebooks per batch) instead of the true log-mel, so it learns to undo the codec's
    # smoothing rather than only to invert clean features.
    codec_model: str | None = None
    # Vocoder task only: run ``codec_model``'s spectral post-filter on its decoded log-mel, as inference does
    # before the back end, so the vocoder learns from the features it will be given.
    codec_postfilter: bool = False
    # Vocoder task only, with ``codec_postfilter``: what the post-filter adds to the decoded log-mel is also
    # put on the target audio (spread over its STFT bins), so the vocoder learns to keep the filter's contrast
    # instead of learning to undo it, as it does when the target is the untouched original. With adversarial
    # losses the discriminators then see that target as the real audio.
    postfilter_target: bool = False
    # Submodules of the model (top-level names such as "encoder", "quantizer") to take from ``init_from``;
    # empty takes everything. Lets a resized decoder start from a finished encoder and codebooks.
    init_modules: tuple[str, ...] = ()
    # Submodules held fixed: no gradient, and kept in eval mode so EMA codebooks do not move. Freezing the
    # encoder and quantizer of a finished codec trains a new decoder for the very same tokens.
    freeze: tuple[str, ...] = ()
    # Codec task only: a codec model directory (same family and input settings) whose encoder this run's
    # encoder learns to imitate (``loss.distill``). With its decoder and codebooks taken over and frozen, a
    # smaller encoder learns to pick the teacher's codes from a dense target, not through the quantizer alone.
    teacher: str | None = None
    # Speaker-conditioned codecs: each item's encoder input is warped along frequency by a factor drawn from
    # this range (vocal-tract-length perturbation); the target and the voice reference are not.
    content_warp: tuple[float, float] = (1.0, 1.0)
    # Speaker-conditioned codecs: a stationary noise floor added (in power) to each item's encoder input, its
    # level (mean log-mel magnitude over the bands) drawn from this range and its tilt across the bands from
    # CONTENT_NOISE_TILT; the target and the voice reference stay clean. A recording's own noise floor told
    # the units which recording (the speaker) they came from; units that must ignore a drawn one cannot.
    content_noise: tuple[float, float] | None = None
    # Prior task only: the network over codec_model's codes (which it encodes from the training audio).
    prior: PriorConfig = PriorConfig()

    def __post_init__(self) -> None:
        if self.task not in ("codec", "vocoder", "prior"):
            raise ConfigError(f"task must be 'codec', 'vocoder' or 'prior', got {self.task!r}")
        if self.task == "prior" and self.codec_model is None:
            raise ConfigError("task 'prior' needs codec_model, the codec whose codes it models")
        if self.task == "vocoder" and self.model.vocoder is None:
            raise ConfigError("task 'vocoder' needs a [model.vocoder] section")
        if self.codec_model is not None and self.task not in ("vocoder", "prior"):
            raise ConfigError("codec_model applies to the vocoder and prior tasks only")
        if self.codec_postfilter and self.codec_model is None:
            raise ConfigError("codec_postfilter needs codec_model")
        if self.postfilter_target and not self.codec_postfilter:
            raise ConfigError("postfilter_target needs codec_postfilter")
        if self.teacher is not None and self.task != "codec":
            raise ConfigError("teacher applies to the codec task only")
        if self.teacher is not None and not self.loss.distill > 0:
            raise ConfigError("a teacher needs loss.distill > 0")
        if self.teacher is None and self.loss.distill != 0:
            raise ConfigError("loss.distill needs a teacher")
        low, high = self.content_warp
        if not 0.5 <= low <= high <= 2.0:
            raise ConfigError(f"content_warp must be [low, high] with 0.5 <= low <= high <= 2, got {self.content_warp}")
        if self.content_noise is not None and not self.content_noise[0] <= self.content_noise[1]:
            raise ConfigError(f"content_noise must be [low, high] with low <= high, got {self.content_noise}")
        if self.content_noise is not None and self.model.family != "conditional":
            raise ConfigError("content_noise applies to speaker-conditioned codecs (model.family 'conditional')")
        if self.init_modules and self.init_from is None:
            raise ConfigError("init_modules needs init_from")
        # The d-vector network is frozen and its weights come only from a converted model: without one the run
        # would quietly train a decoder on the voices of a random network.
        dvector = self.model.family == "conditional" and self.model.speaker.encoder == "dvector"
        if self.task == "codec" and dvector and self.init_from is None:
            raise ConfigError(
                "model.speaker.encoder 'dvector' needs init_from: set it to a model made by scripts/convert_dvector.py"
            )
        if self.steps < 1 or self.log_every < 1 or self.checkpoint_every < 1 or self.valid_every < 1:
            raise ConfigError("steps and the *_every intervals must be >= 1")


def parse_override(text: str) -> tuple[str, object]:
    """``key.path=value`` with a TOML value (bare words are taken as strings)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value, got {text!r}")
    try:
        parsed: object = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key.strip(), parsed


def _resolve(paths: tuple[str, ...], base: Path) -> tuple[str, ...]:
    return tuple(str(p if Path(p).is_absolute() else (base / p)) for p in paths)


def load_config(path: str | Path, overrides: dict[str, object] | None = None) -> TrainConfig:
    """Read a TOML training config; data paths are resolved relative to the file's folder."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML ({e})") from None
    # Paths in the file are relative to the file; paths given as overrides are relative to the caller's cwd.
    data = raw.get("data", {})
    base = path.parent
    for key in ("train", "valid"):
        if key in data:
            data[key] = _resolve(tuple(data[key]), base)
    if data.get("exclude_list"):
        data["exclude_list"] = _resolve((data["exclude_list"],), base)[0]
    # Model paths written in the file are relative to it too, like the data (a shipped model's name, which is
    # not a path, is left as it is).
    for key in ("init_from", "codec_model", "teacher"):
        value = raw.get(key)
        if isinstance(value, str) and (value.startswith(".") or "/" in value):
            raw[key] = _resolve((value,), base)[0]
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {dotted}: {p} is not a table")
        node[leaf] = value
    return from_dict(TrainConfig, raw, str(path))
