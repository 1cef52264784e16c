"""What a training task is: the losses of one step, its data, its own state and random streams, its export."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from vqaudio.config import to_dict
from vqaudio.data.dataset import CropDataset, collate
from vqaudio.data.manifest import ManifestEntry
from vqaudio.models.conditional import ConditionalVQVAE
from vqaudio.training.config import TrainConfig
from vqaudio.training.discriminators import Discriminators, discriminator_loss, generator_losses


@dataclass
class StepResult:
    """Loss to minimise, scalars to log, and what the discriminators judge: generated and real audio
    ``[B, 1, T]``, or normalised log-mel ``[B, n_mels, F]`` for a spectral codec."""

    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)
    fake: torch.Tensor | None = None
    real: torch.Tensor | None = None


class Task(ABC):
    """Owns the model being trained, its losses, its discriminators (with their optimiser) and its random streams.

    The trainer seeds the :meth:`generators` and calls :meth:`build_discriminators` once, when it starts (after
    building the model's optimiser); checkpoints :meth:`state_dict` and the generators' states and restores them
    with :meth:`load_state_dict`; schedules the learning rate of :meth:`optimizers` with the model's; calls
    :meth:`train_step` every step and :meth:`export` at the end.
    """

    model: nn.Module
    produces_audio: bool = False
    # Set by a task that learns from speaker labels: each training speaker's index (see CropDataset).
    speaker_index: dict[str, int] | None = None

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        # Made by build_discriminators when loss.adversarial is set.
        self.disc: nn.Module | None = None
        self.disc_optimizer: torch.optim.Optimizer | None = None

    @abstractmethod
    def step(self, model: nn.Module, batch: Any) -> StepResult:
        """One forward pass of ``model`` (the possibly DDP-wrapped ``self.model``) on a batch of :meth:`dataset`."""

    def train_step(self, model: nn.Module, batch: Any, step: int, disc: nn.Module | None) -> StepResult:
        """:meth:`step` and, once ``step`` (the number of steps already taken) reaches ``loss.adv_start_step``,
        the adversarial part: the discriminators' update on this batch (detached generated audio), then the
        generator's adversarial and feature-matching terms added to the loss and logged (``disc``, ``adv``,
        ``fm``). ``disc`` is the module :meth:`build_discriminators` returned, possibly DDP-wrapped, or None."""
        result = self.step(model, batch)
        w = self.config.loss
        if disc is None or step < w.adv_start_step or result.fake is None or result.real is None:
            return result
        assert self.disc_optimizer is not None
        d_loss = discriminator_loss(disc(result.real), disc(result.fake.detach()))
        self.disc_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        nn.utils.clip_grad_norm_(disc.parameters(), self.config.optim.grad_clip)
        self.disc_optimizer.step()
        adv, fm = generator_losses(disc(result.real), disc(result.fake))
        loss = result.loss + w.adv_weight * adv + w.feature_matching * fm
        metrics = dict(result.metrics)
        metrics.update(disc=float(d_loss.detach()), adv=float(adv.detach()), fm=float(fm.detach()))
        return StepResult(loss, metrics, result.fake, result.real)

    def build_discriminators(self) -> nn.Module | None:
        """With ``loss.adversarial``: make the discriminators and their optimiser, and return the discriminators
        for the trainer to wrap (DDP) and hand back to :meth:`train_step`; None otherwise. The trainer calls it
        once, after building the model's optimiser: their initialisation draws from torch's global RNG."""
        if not self.config.loss.adversarial:
            return None
        o = self.config.optim
        self.disc = self.discriminators()
        self.disc_optimizer = torch.optim.AdamW(self.disc.parameters(), lr=o.lr, betas=o.betas)
        return self.disc

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """The task's own optimisers (the discriminators'), whose learning rate the trainer schedules with the
        model's."""
        return [] if self.disc_optimizer is None else [self.disc_optimizer]

    def generators(self) -> dict[str, torch.Generator]:
        """Random streams outside torch's global one, by checkpoint key: the trainer seeds each with
        ``config.seed`` and a checkpoint carries their states, for an exact resume."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """The task's own training state, as top-level checkpoint entries: the discriminators and their optimiser."""
        if self.disc is None or self.disc_optimizer is None:
            return {}
        return {"disc": self.disc.state_dict(), "disc_optimizer": self.disc_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s entries from a checkpoint; one without them (a run that was not
        adversarial) leaves the discriminators as they are."""
        if self.disc is not None and self.disc_optimizer is not None and "disc" in state:
            self.disc.load_state_dict(state["disc"])
            self.disc_optimizer.load_state_dict(state["disc_optimizer"])

    def training_card(self, steps: int) -> dict[str, Any]:
        """The card's record of the run: its steps and its whole config."""
        return {"training": {"steps": steps, "config": to_dict(self.config)}}

    @abstractmethod
    def export(self, out_dir: Path, *, steps: int) -> Path:
        """Save the trained model into ``out_dir`` after ``steps`` steps; returns ``out_dir``."""

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
            speakers=self.speaker_index,
        )
        return crops, collate

    def discriminators(self) -> nn.Module:
        """The discriminators for adversarial training of this task's output."""
        return Discriminators()
