"""What one training step computes, per kind of model. The trainer owns everything else."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from vqaudio.data.codes import CodeBatch, CodeCropDataset, collate_codes
from vqaudio.data.dataset import Batch, CropDataset, collate
from vqaudio.data.manifest import ManifestEntry
from vqaudio.errors import ConfigError, VQAudioError
from vqaudio.losses import (
    MelLoss,
    MultiResolutionSTFTLoss,
    PhaseLoss,
    loudness_l1,
    masked_asymmetric_l1,
    masked_l1,
    masked_mse,
)
from vqaudio.models.base import CodecModel
from vqaudio.models.builders import build_codec, build_vocoder
from vqaudio.models.conditional import ConditionalVQVAE
from vqaudio.models.io import load_model
from vqaudio.models.spectral import SpectralVQVAE
from vqaudio.prior.model import TokenPrior
from vqaudio.quantizers.rvq import draw_num_codebooks
from vqaudio.spectral import STFTConfig, istft_frames, log_mel, mel_basis, stft_frames
from vqaudio.training.config import TrainConfig
from vqaudio.training.discriminators import Discriminators, MelDiscriminators
from vqaudio.vocoders.base import Vocoder


@dataclass
class StepResult:
    """Loss to minimise, scalars to log, and what the discriminators judge: generated and real audio
    ``[B, 1, T]``, or normalised log-mel ``[B, n_mels, F]`` for a spectral codec."""

    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)
    fake: torch.Tensor | None = None
    real: torch.Tensor | None = None


class Task(ABC):
    """Owns the model being trained and its losses."""

    model: nn.Module
    produces_audio: bool = False

    def __init__(self, config: TrainConfig) -> None:
        self.config = config

    @abstractmethod
    def step(self, model: nn.Module, batch: Any) -> StepResult:
        """One forward pass of ``model`` (the possibly DDP-wrapped ``self.model``) on a batch of :meth:`dataset`."""

    def dataset(
        self, entries: Sequence[ManifestEntry], *, rank: int = 0, world_size: int = 1
    ) -> tuple[Dataset[Any], Callable[[list[Any]], Any]]:
        """The training items and their collate function: random audio crops (:class:`Batch`) by default."""
        d = self.config.data
        sr = self.config.model.sample_rate
        # Waveform codecs need whole code frames; spectral ones whole mel hops. Round up to the model hop.
        hop = int(getattr(self.model, "hop_length", 1))
        segment = math.ceil(int(d.segment_seconds * sr) / hop) * hop
        # A speaker-conditioned codec also learns from a reference clip of each crop's speaker.
        reference = int(d.reference_seconds * sr) if isinstance(self.model, ConditionalVQVAE) else 0
        crops = CropDataset(
            entries,
            sr,
            segment,
            seed=self.config.seed,
            rank=rank,
            world_size=world_size,
            cache=d.cache,
            speed=d.speed,
            reference=reference,
        )
        return crops, collate

    def discriminators(self) -> nn.Module:
        """The discriminators for adversarial training of this task's output."""
        return Discriminators()


class CodecTask(Task):
    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        self.model: CodecModel = build_codec(config.model)
        self.produces_audio = self.model.family == "waveform"
        if self.produces_audio and config.loss.mel_over:
            raise ConfigError("loss.mel_over applies to spectral codecs (their log-mel L1), not waveform ones")
        self.stft_loss = MultiResolutionSTFTLoss()
        self.mel_loss = MelLoss(config.model.mel)
        # A frozen quantizer runs in eval mode and so skips quantizer dropout: draw the bitrate here instead,
        # from a generator of its own, so the decoder still learns every prefix of the codebooks.
        # (The identity quantizer of tests has nothing to drop.)
        rvq = config.model.quantizer == "rvq"
        self.draw_codebooks = rvq and "quantizer" in config.freeze and config.model.rvq.dropout > 0
        self.generator = torch.Generator().manual_seed(config.seed)
        self.teacher = None if config.teacher is None else load_teacher(config.teacher, self.model)

    def step(self, model: nn.Module, batch: Batch) -> StepResult:
        w = self.config.loss
        n_codebooks = None
        if self.draw_codebooks and float(torch.rand((), generator=self.generator)) < self.config.model.rvq.dropout:
            n_codebooks = draw_num_codebooks(self.config.model.rvq, self.generator)
        if batch.reference is None:
            out = model(batch.audio, batch.lengths, n_codebooks)
        else:
            low, high = self.config.content_warp
            warp = None
            if high > low:
                warp = low + (high - low) * torch.rand(batch.audio.shape[0], generator=self.generator)
            out = model(
                batch.audio,
                batch.lengths,
                n_codebooks,
                reference=batch.reference,
                reference_lengths=batch.reference_lengths,
                warp=warp,
            )
        q = out.quantizer
        metrics = {"perplexity": float(q.perplexity.mean()), "n_codebooks": float(q.codes.shape[1])}
        if self.produces_audio:
            rec = self.stft_loss(out.reconstruction, out.target)
            mel = self.mel_loss(out.reconstruction, out.target)
            loss = w.stft * rec + w.mel_audio * mel
            metrics.update(stft=float(rec.detach()), mel_audio=float(mel.detach()))
            fake, real = out.reconstruction, out.target
        else:
            l1 = masked_l1(out.reconstruction, out.target, out.mask)
            l2 = masked_mse(out.reconstruction, out.target, out.mask)
            if w.mel_over:
                # The logged mel_l1 stays the symmetric one, comparable across runs.
                asym = masked_asymmetric_l1(out.reconstruction, out.target, out.mask, w.mel_over)
                loss = w.mel_l1 * asym + w.mel_l2 * l2
            else:
                loss = w.mel_l1 * l1 + w.mel_l2 * l2
            metrics.update(mel_l1=float(l1.detach()), mel_l2=float(l2.detach()))
            if w.mel_loudness:
                loud = loudness_l1(out.reconstruction, out.target, out.mask, w.loudness_exponent)
                loss = loss + w.mel_loudness * loud
                metrics["mel_loudness"] = float(loud.detach())
            fake = real = None
            if w.adversarial:
                # Normalised and masked alike, so padding looks the same on both sides.
                assert isinstance(self.model, SpectralVQVAE)
                fake = self.model.normalize(out.reconstruction) * out.mask
                real = self.model.normalize(out.target) * out.mask
        loss = loss + w.quantizer * q.loss
        metrics["commitment"] = float(q.commitment_loss.detach())
        if self.teacher is not None:
            with torch.no_grad():
                target, _ = self.teacher.latents(batch.audio, batch.lengths)
            distill = masked_mse(out.latent, target, out.latent_mask)
            loss = loss + w.distill * distill
            metrics["distill"] = float(distill.detach())
        return StepResult(loss, metrics, fake, real)

    def discriminators(self) -> nn.Module:
        return Discriminators() if self.produces_audio else MelDiscriminators()


def load_teacher(directory: str, student: CodecModel) -> CodecModel:
    """The codec whose encoder a student encoder imitates: frozen, in eval mode, and reading the same input
    the same way (family, rate, hop, features, normalisation) into latents of the same size."""
    loaded = load_model(directory)
    teacher = loaded.codec
    if teacher is None:
        raise VQAudioError(f"{directory}: has no codec to learn from")
    if teacher.analysis_settings() != student.analysis_settings():
        raise VQAudioError(f"{directory}: the teacher's input settings differ from this config's codec")
    if teacher.quantizer.dim != student.quantizer.dim:
        raise VQAudioError(
            f"{directory}: the teacher's latents have {teacher.quantizer.dim} channels, not {student.quantizer.dim}"
        )
    return teacher.float().eval().requires_grad_(False)


class VocoderTask(Task):
    """Trains the learned vocoder on true log-mel features of the training audio."""

    produces_audio = True

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        vocoder = build_vocoder(config.model)
        assert vocoder is not None  # TrainConfig checks the section exists
        self.model: Vocoder = vocoder
        self.stft_loss = MultiResolutionSTFTLoss()
        self.mel_loss = MelLoss(config.model.mel)
        mel_stft = config.model.mel.stft
        self.phase_loss = PhaseLoss(STFTConfig(n_fft=mel_stft.window_length, hop_length=mel_stft.hop_length))
        self.codec: SpectralVQVAE | None = None
        if config.codec_model is not None:
            loaded = load_model(config.codec_model)
            if loaded.codec is None or not isinstance(loaded.codec, SpectralVQVAE):
                raise VQAudioError(f"{config.codec_model}: not a spectral codec")
            if loaded.config.mel != config.model.mel:
                raise VQAudioError(f"{config.codec_model}: its mel features differ from the vocoder's")
            if config.codec_postfilter and not loaded.codec.has_postfilter:
                raise VQAudioError(f"{config.codec_model}: codec_postfilter is set but the codec has no post-filter")
            self.codec = loaded.codec.eval().requires_grad_(False)
            self.codec_config = loaded.config
            # Its own generator, so drawing the number of codebooks does not disturb the global RNG stream.
            self.generator = torch.Generator().manual_seed(config.seed)

    def features(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """True log-mel ``[B, n_mels, F]``, or the codec's reconstruction of it at a random bitrate."""
        return self._features(audio, lengths)[0]

    def _features(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`features` and, when the post-filter runs, what it added to the decoded log-mel (same shape)."""
        with torch.no_grad():
            target = log_mel(audio[:, 0], self.config.model.mel)
            if self.codec is None:
                return target, None
            k = draw_num_codebooks(self.codec_config.rvq, self.generator) if self.codec_config.quantizer == "rvq" else 1
            decoded = self.codec.decode(self.codec.encode(audio, lengths, n_codebooks=k))[..., : target.shape[-1]]
            if not self.config.codec_postfilter:
                return decoded, None
            filtered = self.codec.postfilter(decoded)
            return filtered, filtered - decoded

    def filtered_target(self, audio: torch.Tensor, added: torch.Tensor) -> torch.Tensor:
        """The target audio ``[B, 1, T]`` with the post-filter's log-mel change ``added`` ``[B, n_mels, F]`` put on
        it as a gain per STFT bin and frame, each bin taking the mean of its mel bands' changes weighted by
        the filterbank (bins no band covers keep their level)."""
        mel_config = self.config.model.mel
        with torch.no_grad():
            basis = mel_basis(mel_config).to(audio.device)  # [n_mels, n_freqs]
            weights = basis / basis.sum(0, keepdim=True).clamp_min(1e-12)
            spec = stft_frames(audio[:, 0], mel_config.stft)  # [B, F, n_freqs]
            gain = torch.exp(torch.matmul(added.transpose(1, 2), weights))[:, : spec.shape[1]]
            return istft_frames(spec * gain, mel_config.stft, audio.shape[-1])[:, None]

    def step(self, model: nn.Module, batch: Batch) -> StepResult:
        w = self.config.loss
        real = batch.audio
        features, added = self._features(real, batch.lengths)
        if self.config.postfilter_target and added is not None:
            real = self.filtered_target(real, added)
        fake = model(features)[:, None, : real.shape[-1]]
        rec = self.stft_loss(fake, real)
        mel = self.mel_loss(fake, real)
        loss = w.stft * rec + w.mel_audio * mel
        metrics = {"stft": float(rec.detach()), "mel_audio": float(mel.detach())}
        if w.mel_loudness:
            # The codec's loudness-domain term on the generated audio's mel: the log-domain terms above let
            # the vocoder flatten spectral peaks it is unsure of, which PESQ hears.
            mel_config = self.config.model.mel
            loud = loudness_l1(
                log_mel(fake[:, 0], mel_config), log_mel(real[:, 0], mel_config), None, w.loudness_exponent
            )
            loss = loss + w.mel_loudness * loud
            metrics["mel_loudness"] = float(loud.detach())
        if w.phase:
            phase = self.phase_loss(fake, real)
            loss = loss + w.phase * phase
            metrics["phase"] = float(phase.detach())
        return StepResult(loss, metrics, fake, real)


class PriorTask(Task):
    """A token prior over a frozen codec's codes, found from each training crop by the codec's own search
    (the card's default beam), as tokenize finds them."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        from vqaudio.tokenizer import Tokenizer

        assert config.codec_model is not None  # TrainConfig checks it
        self.tokenizer = Tokenizer(load_model(config.codec_model))
        codec = self.tokenizer.model
        p = config.prior
        if codec.sample_rate != config.model.sample_rate:
            raise ConfigError(
                f"codec_model runs at {codec.sample_rate} Hz, the config's model.mel at {config.model.sample_rate}"
            )
        if p.num_codebooks > codec.num_codebooks or p.codebook_size != codec.codebook_size:
            raise ConfigError(
                f"prior models {p.num_codebooks} codebooks of {p.codebook_size}; codec_model has "
                f"{codec.num_codebooks} of {codec.codebook_size}"
            )
        self.codec = codec.eval().requires_grad_(False)
        self.model: TokenPrior = TokenPrior(p)

    @torch.no_grad()
    def codes(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio ``[B, 1, T]`` -> the codec's codes ``[B, K, F]`` and the valid-frame mask ``[B, F]``."""
        k = self.config.prior.num_codebooks
        codes = self.codec.encode(audio, lengths, n_codebooks=k, beam=self.tokenizer.default_beam)
        n = codes.shape[-1]
        valid = (
            torch.full((audio.shape[0],), n)
            if lengths is None
            else (lengths + self.codec.hop_length - 1) // self.codec.hop_length
        )
        mask = torch.arange(n)[None] < valid[:, None]
        return codes, mask

    def dataset(
        self, entries: Sequence[ManifestEntry], *, rank: int = 0, world_size: int = 1
    ) -> tuple[Dataset[Any], Callable[[list[Any]], Any]]:
        """Crops of the codes of every training file, found once (whole files, as tokenize finds them) at the
        speeds ``data.speed`` spans (its ends and 1): the codec's search costs far more than the prior's step."""
        from vqaudio.audio import load_audio, resample

        d = self.config.data
        sr = self.codec.sample_rate
        speeds = sorted({d.speed[0], 1.0, d.speed[1]})
        sequences = []
        for e in entries:
            audio = load_audio(e.path, sample_rate=sr, mono=True).samples
            for factor in speeds:
                x = audio if factor == 1.0 else resample(audio, sr * factor, sr)
                k = self.config.prior.num_codebooks
                sequences.append(self.tokenizer.encode(x[0], sr, n_codebooks=k).codes)
        frames = max(1, round(d.segment_seconds * self.codec.frame_rate))
        return CodeCropDataset(
            sequences, frames, seed=self.config.seed, rank=rank, world_size=world_size
        ), collate_codes

    def step(self, model: nn.Module, batch: CodeBatch) -> StepResult:
        codes = batch.codes
        mask = torch.arange(codes.shape[-1])[None] < batch.lengths[:, None]
        out = model(codes, mask)
        metrics = {f"bits@{k}": float(b) for k, b in enumerate(out.bits.detach())}
        return StepResult(out.bits.mean(), metrics)


def build_task(config: TrainConfig) -> Task:
    if config.task == "prior":
        return PriorTask(config)
    return CodecTask(config) if config.task == "codec" else VocoderTask(config)
