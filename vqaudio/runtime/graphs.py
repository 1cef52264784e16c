"""The parts of a spectral codec that are exported as ONNX graphs, and what each graph takes and gives.

Three graphs, all float32 with a dynamic batch axis ``B`` and a dynamic time axis::

    encoder  log_mel [B, n_mels, F_mel] + mel_lengths [B]  ->  latents [B, D, F]       F = ceil(F_mel / stride)
    decoder  codes [B, K, F] (+ speaker [B, S])            ->  log_mel [B, n_mels, F * stride]
    vocoder  log_mel [B, n_mels, F_mel]                    ->  log_magnitude, phase (or deviation, offset)
                                                               [B, n_fft // 2 + 1, F_mel] each

What stays outside, and why:

- the STFT and log-mel front end: the ONNX DFT rounds differently from torch's FFT, and through the log of
  quiet bins that moved speech-16k's latents on examples/hello.wav ten times as far from PyTorch's
  (7e-5 against 6e-6 with the mel computed by torch), making a near-tie code flip ten times likelier, for a
  stage that is 8 % of tokenize (docs/performance.md). Its arithmetic is :func:`vqaudio.spectral.log_mel`;
  the export ships its window and filterbank (docs/deploy.md);
- the code search (the beam search over the residual codebooks) runs on the latents, in vqaudio's own code;
- the post-filter, pointwise on the decoder's log-mel (its centre is shipped with the codebooks);
- the learned vocoder's phase integration, consistency projections and inverse STFT: complex FFTs, and a
  running sum over the whole signal, which the ONNX graph cannot carry from one window to the next.

The decoder takes codes rather than quantized latents: it looks up and sums the first ``K`` codebooks itself
(``K`` is a dynamic axis, 1 to ``num_codebooks``), so a player needs nothing else to turn codes into log-mel.
Each graph masks as the PyTorch model does, so a padded batch gives each item what it gives alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vqaudio.blocks import lengths_to_mask
from vqaudio.errors import ModelError
from vqaudio.models.base import CodecModel
from vqaudio.models.conditional import ConditionalDecoder, ConditionalVQVAE
from vqaudio.models.spectral import SpectralVQVAE
from vqaudio.quantizers.rvq import ResidualVectorQuantizer
from vqaudio.vocoders.istft_vocoder import ISTFTVocoder

ENCODER, DECODER, VOCODER = "encoder", "decoder", "vocoder"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a graph: its name, element type and shape (named axes are dynamic)."""

    name: str
    dtype: str  # "float32" or "int64"
    shape: tuple[str | int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class GraphSpec:
    """A graph's file name, inputs and outputs, in the order the graph declares them."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def file(self) -> str:
        return f"{self.name}.onnx"


def exportable(codec: CodecModel | None, what: str) -> SpectralVQVAE:
    """``codec`` if it can be exported (a spectral or speaker-conditioned codec with residual codebooks), else a
    one-line :class:`ModelError` naming ``what``."""
    if not isinstance(codec, SpectralVQVAE):
        family = "no codec" if codec is None else f"a {codec.family} codec"
        raise ModelError(f"{what} holds {family}; only spectral codecs export to ONNX")
    if not isinstance(codec.quantizer, ResidualVectorQuantizer):
        raise ModelError(f"{what} has no residual codebooks to export")
    return codec


def codebooks(codec: SpectralVQVAE) -> torch.Tensor:
    """The codebooks ``[num_codebooks, codebook_size, D]`` float32."""
    quantizer = codec.quantizer
    assert isinstance(quantizer, ResidualVectorQuantizer)
    return torch.stack([layer.codewords() for layer in quantizer.layers]).detach().clone()


class EncoderGraph(nn.Module):
    """``log_mel`` ``[B, n_mels, F_mel]`` and ``mel_lengths`` ``[B]`` (valid mel frames per item) -> ``latents``
    ``[B, D, F]``: :meth:`SpectralVQVAE.latents` after its front end."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, codec: SpectralVQVAE) -> None:
        super().__init__()
        self.encoder = codec.encoder
        self.content = codec.content_input
        self.register_buffer("mean", codec.feature_mean.detach().clone())
        self.register_buffer("std", codec.feature_std.detach().clone())

    def forward(self, log_mel: torch.Tensor, mel_lengths: torch.Tensor) -> torch.Tensor:
        mask = lengths_to_mask(mel_lengths, log_mel.shape[-1])
        latents, _ = self.encoder(self.content((log_mel - self.mean) / self.std, mask), mask)
        return latents


class DecoderGraph(nn.Module):
    """``codes`` ``[B, K, F]`` (and, for a speaker-conditioned codec, ``speaker`` ``[B, S]``) -> ``log_mel``
    ``[B, n_mels, F * stride]``: :meth:`SpectralVQVAE.decode`, before the post-filter."""

    table: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, codec: SpectralVQVAE) -> None:
        super().__init__()
        self.decoder = codec.decoder
        self.conditional = isinstance(codec, ConditionalVQVAE)
        books = codebooks(codec)
        self.size = books.shape[1]
        # All codebooks in one table: code c of codebook k is row k * size + c, so one gather looks up any K.
        self.register_buffer("table", books.reshape(-1, books.shape[-1]))
        self.register_buffer("mean", codec.feature_mean.detach().clone())
        self.register_buffer("std", codec.feature_std.detach().clone())

    def forward(self, codes: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        rows = codes + torch.arange(codes.shape[1], device=codes.device)[None, :, None] * self.size
        latents = F.embedding(rows, self.table).sum(1).transpose(1, 2)  # [B, K, F, D] -> [B, D, F]
        if speaker is None:
            out = self.decoder(latents)
        else:
            assert isinstance(self.decoder, ConditionalDecoder)  # only a conditional codec's graph takes a voice
            out = self.decoder.forward_with(latents, speaker)
        return out * self.std + self.mean


class VocoderGraph(nn.Module):
    """``log_mel`` ``[B, n_mels, F_mel]`` -> the learned vocoder's real outputs, each ``[B, n_fft // 2 + 1, F_mel]``
    (:meth:`ISTFTVocoder.head_outputs`)."""

    def __init__(self, vocoder: ISTFTVocoder) -> None:
        super().__init__()
        self.vocoder = vocoder

    def forward(self, log_mel: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.vocoder.head_outputs(log_mel)


def vocoder_outputs(vocoder: ISTFTVocoder) -> tuple[str, ...]:
    """Names of the vocoder graph's outputs, in order."""
    return (
        ("log_magnitude", "deviation", "offset") if vocoder.config.phase == "integrated" else ("log_magnitude", "phase")
    )


def graph_specs(codec: SpectralVQVAE, vocoder: ISTFTVocoder | None) -> dict[str, GraphSpec]:
    """What each graph of ``codec`` (and its learned vocoder, if any) takes and gives."""
    n_mels, dim, stride = codec.n_mels, codec.net_config.latent_dim, codec.net_config.total_stride
    k = "codebooks" if codec.num_codebooks > 1 else 1
    specs = {
        ENCODER: GraphSpec(
            ENCODER,
            (
                TensorSpec("log_mel", "float32", ("batch", n_mels, "mel_frames")),
                TensorSpec("mel_lengths", "int64", ("batch",)),
            ),
            (TensorSpec("latents", "float32", ("batch", dim, f"ceil(mel_frames / {stride})")),),
        ),
        DECODER: GraphSpec(
            DECODER,
            (TensorSpec("codes", "int64", ("batch", k, "frames")),)
            + (
                (TensorSpec("speaker", "float32", ("batch", codec.speaker_config.dim)),)
                if isinstance(codec, ConditionalVQVAE)
                else ()
            ),
            (TensorSpec("log_mel", "float32", ("batch", n_mels, f"frames * {stride}")),),
        ),
    }
    if vocoder is not None:
        bins = vocoder.head_stft.n_freqs
        specs[VOCODER] = GraphSpec(
            VOCODER,
            (TensorSpec("log_mel", "float32", ("batch", vocoder.mel_config.n_mels, "mel_frames")),),
            tuple(TensorSpec(name, "float32", ("batch", bins, "mel_frames")) for name in vocoder_outputs(vocoder)),
        )
    return specs


def graph_modules(codec: SpectralVQVAE, vocoder: ISTFTVocoder | None) -> dict[str, nn.Module]:
    """The module each graph is exported from, in eval mode."""
    modules: dict[str, nn.Module] = {ENCODER: EncoderGraph(codec), DECODER: DecoderGraph(codec)}
    if vocoder is not None:
        modules[VOCODER] = VocoderGraph(vocoder)
    return {name: module.eval() for name, module in modules.items()}
