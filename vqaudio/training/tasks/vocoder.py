"""The vocoder task: a back end trained on true or a codec's decoded log-mel."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vqaudio.data.dataset import Batch
from vqaudio.errors import VQAudioError
from vqaudio.losses import (
    MelLoss,
    MultiResolutionSTFTLoss,
    PhaseLoss,
    loudness_l1,
)
from vqaudio.models.builders import build_vocoder
from vqaudio.models.io import load_model, save_model
from vqaudio.models.spectral import SpectralVQVAE
from vqaudio.quantizers.rvq import draw_num_codebooks
from vqaudio.spectral import STFTConfig, istft_frames, log_mel, mel_basis, stft_frames
from vqaudio.training.config import TrainConfig
from vqaudio.training.tasks.base import StepResult, Task
from vqaudio.vocoders.istft_vocoder import ISTFTVocoder


class VocoderTask(Task):
    """Trains the learned vocoder on true log-mel features of the training audio."""

    produces_audio = True

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        vocoder = build_vocoder(config.model)
        assert vocoder is not None  # TrainConfig checks the section exists
        self.model: ISTFTVocoder = vocoder
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

    def generators(self) -> dict[str, torch.Generator]:
        """The bitrate drawn per batch for the codec that feeds it, if one does."""
        return {} if self.codec is None else {"task_rng": self.generator}

    def export(self, out_dir: Path, *, steps: int) -> Path:
        return save_model(
            out_dir, self.config.name, self.config.model, None, self.model, card=self.training_card(steps)
        )
