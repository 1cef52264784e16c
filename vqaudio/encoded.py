"""What encoding gives: codes ``[K, F]`` with everything needed to decode them and to write them to a token file."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vqaudio.tokenfile import TokenHeader, bitrate
from vqaudio.tokenfile.levels import CodeLayout


@dataclass
class Encoded:
    """Codes and what is needed to decode them.

    Attributes:
        codes: ``[K, F]`` int64.
        sample_rate: the model's rate; ``original_length`` samples at this rate are decoded.
        frame_rate: code frames per second.
        original_length: input length in samples at the model's rate.
        original_sample_rate, original_channels: the input before resampling and downmixing.
        model_id, model_checksum: the model that made the codes.
        codebook_size: entries per codebook.
        codes_checksum: the model's checksum of what decides the codes (encoder, codebooks, front end).
        code_search: the search that picked them and the codes version (``"v1 beam 8"``).
        codebook_strides: multi-scale codes only (else empty): each codebook's stride in finest frames. ``codes``
            are then in the superframe layout (``vqaudio.tokenfile.levels``: ``K`` counts rows, ``F`` superframes,
            ``frame_rate`` is the superframe rate); :attr:`levels` gives one ``[K_l, F_l]`` array per frame rate.
    """

    codes: torch.Tensor
    sample_rate: int
    frame_rate: float
    original_length: int
    original_sample_rate: int
    original_channels: int
    model_id: str
    model_checksum: str
    codebook_size: int
    codes_checksum: str = ""
    code_search: str = ""
    codebook_strides: tuple[int, ...] = ()

    @property
    def levels(self) -> list[torch.Tensor]:
        """The codes of each frame rate, coarsest first: ``[K_l, F_l]`` each (one level for single-rate codes)."""
        if not self.codebook_strides:
            return [self.codes]
        return [torch.from_numpy(lv) for lv in CodeLayout(self.codebook_strides).split(self.codes.cpu().numpy())]

    @property
    def level_frame_rates(self) -> list[float]:
        """Frame rate of each of :attr:`levels`."""
        return [rate for rate, _, _ in self.header().levels()]

    @property
    def num_codebooks(self) -> int:
        return int(self.codes.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.codes.shape[1])

    @property
    def bitrate(self) -> float:
        return bitrate(self.frame_rate, self.num_codebooks, self.codebook_size)

    def header(self) -> TokenHeader:
        return TokenHeader(
            model_id=self.model_id,
            model_checksum=self.model_checksum,
            sample_rate=self.sample_rate,
            frame_rate=self.frame_rate,
            codebook_size=self.codebook_size,
            num_codebooks=self.num_codebooks,
            num_frames=self.num_frames,
            original_length=self.original_length,
            original_sample_rate=self.original_sample_rate,
            original_channels=self.original_channels,
            channel_handling="downmix",
            codes_checksum=self.codes_checksum,
            code_search=self.code_search,
            codebook_strides=self.codebook_strides,
        )
