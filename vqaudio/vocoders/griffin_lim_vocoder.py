"""Griffin-Lim as a :class:`~vqaudio.vocoders.base.Vocoder`: mel -> linear magnitude -> phase estimation; and
the same started from a learned vocoder's phase."""

from __future__ import annotations

import torch

from vqaudio.spectral import MelConfig, mel_to_magnitude, stft
from vqaudio.vocoders.base import Synthesis, Vocoder
from vqaudio.vocoders.griffin_lim import GriffinLimConfig, griffin_lim


class GriffinLimVocoder(Vocoder):
    name = "griffin-lim"
    low_precision_ok = False

    def __init__(
        self, mel: MelConfig, config: GriffinLimConfig = GriffinLimConfig(), mel_inversion_iters: int = 30
    ) -> None:
        super().__init__(mel)
        self.config = config
        self.mel_inversion_iters = mel_inversion_iters

    @property
    def context_frames(self) -> int:
        # Each iteration spreads phase information by one window; chunking is approximate (see docs/cli.md).
        return 2 * self.mel_config.stft.n_fft // self.hop_length + 8

    def forward(self, log_mel: torch.Tensor, initial_phase: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, n_mels, F]`` -> ``[B, F * hop]``; ``initial_phase`` (complex ``[B, n_freqs, F]``) replaces the
        configured start (see :func:`griffin_lim`)."""
        mag = mel_to_magnitude(log_mel, self.mel_config, self.mel_inversion_iters)
        length = log_mel.shape[-1] * self.hop_length
        return griffin_lim(mag, self.mel_config.stft, self.config, length, initial_phase=initial_phase)


class WarmStartGriffinLim(Vocoder):
    """Griffin-Lim that starts from the phase of a learned vocoder's output instead of zero phase.

    The learned vocoder's phase is close enough that the iterations refine it rather than build one from
    nothing; on the dev list it scores a little above plain Griffin-Lim at every bitrate
    (docs/results.md). The magnitude is still the mel's own inversion, as in plain Griffin-Lim.

    The learned vocoder is shared with the tokenizer's ``learned`` back end, not owned: it is kept out of
    this module's submodules, so ``state_dict``, ``.to()`` or ``.train()`` here never touch it.
    """

    name = "hybrid"
    low_precision_ok = False
    learned: Vocoder

    def __init__(
        self,
        mel: MelConfig,
        learned: Vocoder,
        config: GriffinLimConfig = GriffinLimConfig(),
        mel_inversion_iters: int = 30,
    ) -> None:
        super().__init__(mel)
        if learned.mel_config != mel:
            raise ValueError("the learned vocoder must read the same mel features")
        object.__setattr__(self, "learned", learned)  # a reference, not a submodule (see above)
        self.griffin_lim = GriffinLimVocoder(mel, config, mel_inversion_iters)

    @property
    def context_frames(self) -> int:
        return self.griffin_lim.context_frames + self.learned.context_frames

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        return self.synthesize(log_mel).audio

    def synthesize(
        self, log_mel: torch.Tensor, anchor: tuple[int, torch.Tensor] | None = None, probe: int | None = None
    ) -> Synthesis:
        """As :meth:`Vocoder.synthesize`; the running phase (``anchor`` / ``probe``) is the learned vocoder's,
        so a warm start from an integrated-phase head continues across windows as that head does."""
        length = log_mel.shape[-1] * self.hop_length
        made = self.learned.synthesize(log_mel, anchor, probe)
        start = made.audio.float()[..., :length]
        phase = stft(start, self.mel_config.stft)[..., : log_mel.shape[-1]]
        return Synthesis(self.griffin_lim(log_mel, initial_phase=phase), made.phase)
