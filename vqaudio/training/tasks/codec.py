"""The codec task: a VQ-VAE trained on audio crops (and, for a frozen encoder, its decoder or a distilled encoder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from vqaudio.data.dataset import Batch
from vqaudio.data.manifest import collect_entries
from vqaudio.errors import ConfigError, VQAudioError
from vqaudio.losses import (
    MelLoss,
    MultiResolutionSTFTLoss,
    loudness_l1,
    masked_asymmetric_l1,
    masked_l1,
    masked_mse,
)
from vqaudio.models.base import CodecModel
from vqaudio.models.builders import build_codec
from vqaudio.models.conditional import ConditionalVQVAE
from vqaudio.models.io import load_model, save_model
from vqaudio.models.spectral import SpectralVQVAE
from vqaudio.quantizers.multiscale import draw_num_codebooks as draw_multiscale
from vqaudio.quantizers.rvq import draw_num_codebooks
from vqaudio.training.config import TrainConfig
from vqaudio.training.discriminators import Discriminators, MelDiscriminators
from vqaudio.training.speaker_adversary import SpeakerAdversary, average_gradients, confusion_loss
from vqaudio.training.tasks.base import StepResult, Task

# Tilt of a drawn noise floor across the bands (top band minus bottom band, log magnitude): silences in the
# shared LibriSpeech readings fall by about 3 from the lowest bands to the highest.
CONTENT_NOISE_TILT = (-4.0, 1.0)


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
        kind = config.model.quantizer
        self.dropout = {"rvq": config.model.rvq.dropout, "multiscale": config.model.multiscale.dropout}.get(kind, 0.0)
        self.draw_codebooks = "quantizer" in config.freeze and self.dropout > 0
        self.generator = torch.Generator().manual_seed(config.seed)
        self.teacher = None if config.teacher is None else load_teacher(config.teacher, self.model)
        # Made by build_discriminators when loss.speaker_adversarial is set.
        self.adversary: SpeakerAdversary | None = None
        self.steps_taken = 0
        self.adversary_optimizer: torch.optim.Optimizer | None = None
        if config.loss.speaker_adversarial:
            if not isinstance(self.model, ConditionalVQVAE):
                raise ConfigError("loss.speaker_adversarial needs a speaker-conditioned codec (family conditional)")
            d = config.data
            names = sorted({e.speaker for e in collect_entries(d.train, d.exclude_list, d.min_sample_rate)})
            if len(names) < 2:
                raise ConfigError("loss.speaker_adversarial needs training audio of at least two speakers")
            self.speaker_index = {name: i for i, name in enumerate(names)}

    def _draw_codebooks(self) -> int:
        """A prefix of the codebooks for one batch, as quantizer dropout draws it (for a multi-scale quantizer:
        whole codebooks, counted in rows of its codes)."""
        model = self.config.model
        if model.quantizer == "multiscale":
            return model.multiscale.layout.row_counts[draw_multiscale(model.multiscale, self.generator) - 1]
        return draw_num_codebooks(model.rvq, self.generator)

    def _noise_floor(self, batch: int, n_mels: int) -> torch.Tensor | None:
        """Log-mel magnitudes ``[B, n_mels]`` of the noise floors added to the encoder's input, or None."""
        if self.config.content_noise is None:
            return None
        (low, high), (t_low, t_high) = self.config.content_noise, CONTENT_NOISE_TILT
        level = low + (high - low) * torch.rand(batch, 1, generator=self.generator)
        tilt = t_low + (t_high - t_low) * torch.rand(batch, 1, generator=self.generator)
        return level + tilt * (torch.linspace(0.0, 1.0, n_mels)[None] - 0.5)

    def step(self, model: nn.Module, batch: Batch) -> StepResult:
        w = self.config.loss
        n_codebooks = None
        if self.draw_codebooks and float(torch.rand((), generator=self.generator)) < self.dropout:
            n_codebooks = self._draw_codebooks()
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
                noise=self._noise_floor(batch.audio.shape[0], self.config.model.mel.n_mels),
            )
        q = out.quantizer
        metrics = {"perplexity": float(q.perplexity.mean()), "n_codebooks": float(q.codes.shape[1])}
        speaker_term = self._speaker_adversary(out.quantizer.quantized, out.latent_mask, batch.speaker, metrics)
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
        loss = loss + w.quantizer * q.loss + w.speaker_adversarial * speaker_term
        metrics["commitment"] = float(q.commitment_loss.detach())
        if self.teacher is not None:
            with torch.no_grad():
                target, _ = self.teacher.latents(batch.audio, batch.lengths)
            distill = masked_mse(out.latent, target, out.latent_mask)
            loss = loss + w.distill * distill
            metrics["distill"] = float(distill.detach())
        return StepResult(loss, metrics, fake, real)

    def _speaker_adversary(
        self, units: torch.Tensor, mask: torch.Tensor, speaker: torch.Tensor | None, metrics: dict[str, float]
    ) -> torch.Tensor:
        """With a speaker adversary: update it on this batch's units ``[B, D, F]`` (detached), then return the
        encoder's term, the adversary's confusion on the same units (zero without one)."""
        if self.adversary is None or speaker is None:
            return units.new_zeros(())
        assert self.adversary_optimizer is not None
        logits = self.adversary(units.detach(), mask)
        ce = nn.functional.cross_entropy(logits, speaker)
        self.adversary_optimizer.zero_grad(set_to_none=True)  # also drops what the last confusion term left
        ce.backward()
        average_gradients(self.adversary)
        nn.utils.clip_grad_norm_(self.adversary.parameters(), self.config.optim.grad_clip)
        self.adversary_optimizer.step()
        metrics.update(speaker_ce=float(ce.detach()), speaker_acc=float((logits.argmax(-1) == speaker).float().mean()))
        if self.steps_taken < self.config.loss.speaker_adversarial_start:
            return units.new_zeros(())
        return confusion_loss(self.adversary(units, mask))

    def train_step(self, model: nn.Module, batch: Batch, step: int, disc: nn.Module | None) -> StepResult:
        self.steps_taken = step  # the speaker adversary's start counts in the trainer's steps
        return super().train_step(model, batch, step, disc)

    def build_discriminators(self) -> nn.Module | None:
        """The discriminators (see :class:`Task`) and, with ``loss.speaker_adversarial``, the speaker adversary
        and its optimiser, made here for the same reason: after the model's optimiser, from torch's global RNG."""
        disc = super().build_discriminators()
        if self.speaker_index is not None:
            o = self.config.optim
            self.adversary = SpeakerAdversary(self.model.quantizer.dim, len(self.speaker_index))
            self.adversary_optimizer = torch.optim.AdamW(self.adversary.parameters(), lr=o.lr, betas=o.betas)
        return disc

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [*super().optimizers(), *([self.adversary_optimizer] if self.adversary_optimizer else [])]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.adversary is not None and self.adversary_optimizer is not None:
            state["speaker_adversary"] = self.adversary.state_dict()
            state["speaker_optimizer"] = self.adversary_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if self.adversary is not None and self.adversary_optimizer is not None and "speaker_adversary" in state:
            self.adversary.load_state_dict(state["speaker_adversary"])
            self.adversary_optimizer.load_state_dict(state["speaker_optimizer"])

    def discriminators(self) -> nn.Module:
        return Discriminators() if self.produces_audio else MelDiscriminators()

    def generators(self) -> dict[str, torch.Generator]:
        """The quantizer's dropout draws (a residual quantizer's own generator) and the task's own (bitrate per
        batch for a frozen quantizer, content warp)."""
        found = {"quantizer_rng": getattr(self.model.quantizer, "generator", None), "task_rng": self.generator}
        return {k: g for k, g in found.items() if isinstance(g, torch.Generator)}

    def export(self, out_dir: Path, *, steps: int) -> Path:
        codec = self.model
        if isinstance(codec, ConditionalVQVAE):
            # The voice decoded when none is given: fitted on the training audio.
            from vqaudio.training.export import fit_default_speaker

            d = self.config.data
            files = [e.path for e in collect_entries(d.train, d.exclude_list, d.min_sample_rate)]
            was_training = codec.training
            codec.eval()
            codec.decoder.default_speaker.copy_(fit_default_speaker(codec, files))
            codec.train(was_training)
        return save_model(out_dir, self.config.name, self.config.model, codec, None, card=self.training_card(steps))


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
