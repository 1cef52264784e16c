"""The prior task: a token prior trained on the codes a codec makes of the training audio."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from vqaudio.data.codes import CodeBatch, CodeCropDataset, collate_codes
from vqaudio.data.manifest import ManifestEntry
from vqaudio.errors import ConfigError
from vqaudio.models.base import CODES_VERSION
from vqaudio.models.io import load_model
from vqaudio.prior.io import save_prior
from vqaudio.prior.model import TokenPrior
from vqaudio.tokenfile import code_search_id
from vqaudio.training.config import TrainConfig
from vqaudio.training.tasks.base import StepResult, Task


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

    def export(self, out_dir: Path, *, steps: int) -> Path:
        """``prior.json`` and ``prior.safetensors``, naming the codec whose codes the prior models."""
        tok = self.tokenizer
        save_prior(
            out_dir,
            self.model,
            name=self.config.name,
            codec=tok.name,
            codes_checksum=tok.codes_checksum,
            code_search=code_search_id(tok.default_beam, CODES_VERSION),
            card=self.training_card(steps),
        )
        return out_dir
