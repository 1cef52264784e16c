"""The codec interface downstream code depends on: rates, sizes, encode and decode."""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn

from vqaudio.quantizers.base import BaseQuantizer, QuantizerOutput
from vqaudio.tokenfile.packing import bitrate

# Version of the arithmetic that turns audio into codes beyond what the weights and settings record: the STFT
# and mel front end, the encoder's layers and the code search. Bump it when a change can alter a code; token
# files record it (``code_search``) and files of another version are refused rather than silently mixed.
CODES_VERSION = 1


@dataclass
class CodecOutput:
    """A training forward pass.

    Attributes:
        reconstruction: what the decoder produced (``[B, n_mels, F_mel]`` for spectral models, ``[B, 1, T]``
            for waveform models).
        target: the matching target, same shape.
        mask: ``[B, 1, time]`` validity of ``reconstruction``'s time axis (1 = real signal, 0 = batch padding).
        quantizer: the quantizer's output (codes ``[B, K', F]``, losses, perplexity).
        latent: the encoder's output before quantization, ``[B, D, F]``.
        latent_mask: ``[B, 1, F]`` validity of ``latent``'s frames.
    """

    reconstruction: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor
    quantizer: QuantizerOutput
    latent: torch.Tensor
    latent_mask: torch.Tensor


class CodecModel(nn.Module, ABC):
    """A VQ-VAE codec: audio ``[B, 1, T]`` <-> codes ``[B, K, F]``. Subclasses set ``self.quantizer``."""

    family: str = ""
    quantizer: BaseQuantizer

    @property
    @abstractmethod
    def sample_rate(self) -> int: ...

    @property
    @abstractmethod
    def hop_length(self) -> int:
        """Audio samples per code frame."""

    @property
    def num_codebooks(self) -> int:
        return self.quantizer.num_codebooks

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def codebook_counts(self) -> tuple[int, ...]:
        """The codebook counts codes can be made and decoded at (all of ``1..K``, except for multi-scale codes)."""
        return self.quantizer.codebook_counts

    @property
    def codebook_strides(self) -> tuple[int, ...]:
        """Multi-scale codes: each codebook's stride in finest code frames (``vqaudio.tokenfile.levels``), else ()."""
        return self.quantizer.codebook_strides

    @property
    @abstractmethod
    def context_samples(self) -> int:
        """Samples on each side of a code frame that can change its code or its decoded output.

        Chunked processing pads every window with at least this much real context, which is what makes chunked
        codes equal whole-file codes.
        """

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def bitrate(self, n_codebooks: int | None = None) -> float:
        """Bits per second when ``n_codebooks`` (default: all) codebooks are transmitted."""
        k = self.num_codebooks if n_codebooks is None else n_codebooks
        return bitrate(self.frame_rate, k, self.codebook_size)

    def num_frames(self, num_samples: int) -> int:
        return max(1, math.ceil(num_samples / self.hop_length))

    def analysis_settings(self) -> dict[str, object]:
        """The settings, besides weights, that decide which codes an input gets (JSON-ready)."""
        return {"family": self.family, "sample_rate": self.sample_rate, "hop_length": self.hop_length}

    def codes_checksum(self) -> str:
        """sha256 over what decides the codes: :meth:`analysis_settings` and every tensor outside the decoder.

        Token files record it, so a release that retrains only the decoder (against frozen codes) or only the
        vocoder still decodes the token files written with the one before it. Changing the encoder, the
        codebooks or the input normalisation changes it.
        """
        h = hashlib.sha256(json.dumps(self.analysis_settings(), sort_keys=True).encode())
        for key, value in sorted(self.state_dict().items()):
            if key.startswith("decoder."):
                continue
            t = value.detach().cpu().contiguous().flatten()
            h.update(f"{key}|{t.dtype}|{tuple(value.shape)}|".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    @abstractmethod
    def latents(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio ``[B, 1, T]`` -> the encoder's output before quantization ``[B, D, F]`` and its mask ``[B, 1, F]``."""

    @abstractmethod
    def forward(
        self, audio: torch.Tensor, lengths: torch.Tensor | None = None, n_codebooks: int | None = None
    ) -> CodecOutput:
        """Training pass on audio ``[B, 1, T]`` with per-item ``lengths`` ``[B]`` (samples).

        ``n_codebooks`` fixes how many codebooks quantize; by default a training quantizer draws it.
        """

    @abstractmethod
    def encode(
        self, audio: torch.Tensor, lengths: torch.Tensor | None = None, n_codebooks: int | None = None, *, beam: int = 1
    ) -> torch.Tensor:
        """Audio ``[B, 1, T]`` -> codes ``[B, K, F]`` with ``F = ceil(T / hop_length)``; ``beam`` as in
        :meth:`vqaudio.quantizers.rvq.ResidualVectorQuantizer.encode`."""

    @abstractmethod
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, K, F]`` -> decoder output (log-mel ``[B, n_mels, F * stride]`` or audio ``[B, 1, F * hop]``)."""

    @property
    def has_postfilter(self) -> bool:
        return False

    def postfilter(self, decoded: torch.Tensor) -> torch.Tensor:
        """What inference applies to :meth:`decode`'s output before the vocoder; training never does."""
        return decoded
