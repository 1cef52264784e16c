"""The onnxruntime execution path: a spectral codec whose encoder and decoder networks run as ONNX graphs.

``vqaudio.load(name, runtime="onnxruntime")`` swaps the codec for one of the classes below. They are the PyTorch
model's own classes (so every check, window and back end of the tokenizer sees the model it knows) with two
methods replaced:

- :meth:`latents`: the STFT and log-mel front end in torch, as ever, then the encoder graph (log-mel -> latents);
  the code search (beam search over the residual codebooks) then runs on those latents in vqaudio's own code;
- :meth:`decode`: the decoder graph, codes -> log-mel; the post-filter and the back ends run in torch afterwards.

Windowing (:mod:`vqaudio.chunking`) is unchanged and calls these methods exactly where it calls PyTorch's, so
chunked output equals a whole pass and a padded batch equals its items alone, as with PyTorch (the graphs mask
as the model does). The graphs run in float32 whatever the precision asked for; it still applies to the back ends.

Codes: the ONNX encoder's latents differ from PyTorch's by float32 rounding (about 1e-6 of their peak), the
difference between two CPUs' vector widths, which the project already treats as the same codes (a code near a
tie may flip, ``docs/token-format.md``). So token files keep the code-search identity PyTorch writes: the path
is shown to give identical codes, by ``tests/test_onnx.py`` on the tiny test models (greedy and beam) and on
``speech-16k`` for ``examples/hello.wav`` (every codebook count, greedy and beam 8: no code differs), and each
export reports the fraction of equal codes on its probe (``manifest.json``, ``check.codes_equal``).

The PyTorch encoder and decoder stay in the object, unused by these two methods: they still give the codes
checksum, the post-filter, the default voice and, for a speaker-conditioned model, the reference encoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vqaudio.blocks import downsample_mask
from vqaudio.errors import ModelError, VQAudioError
from vqaudio.models.conditional import ConditionalVQVAE
from vqaudio.models.spectral import SpectralVQVAE
from vqaudio.runtime.graphs import DECODER, ENCODER, VOCODER, GraphSpec
from vqaudio.runtime.sessions import OnnxOptions, open_session, run
from vqaudio.vocoders.istft_vocoder import ISTFTVocoder


class OnnxGraphs:
    """onnxruntime sessions on the encoder and decoder graphs of a folder made by :func:`export_onnx`, each the
    float graph or, if ``options.int8`` names it, its int8 version (:mod:`vqaudio.runtime.int8`); and on the
    vocoder graph only when it is asked for as int8 (the float path leaves the vocoder to torch)."""

    def __init__(self, folder: Path, specs: dict[str, GraphSpec], options: OnnxOptions) -> None:
        self.folder, self.options = folder, options
        if VOCODER in options.int8 and VOCODER not in specs:
            raise ModelError(f"{folder}: the model has no learned vocoder to run as int8")
        self.encoder: Any = self._open(folder / specs[ENCODER].file, ENCODER)
        self.decoder: Any = self._open(folder / specs[DECODER].file, DECODER)
        self.vocoder: Any = self._open(folder / specs[VOCODER].file, VOCODER) if VOCODER in options.int8 else None

    def _open(self, path: Path, name: str) -> Any:
        if name not in self.options.int8:
            return open_session(path, self.options)
        from vqaudio.runtime.int8 import open_int8

        return open_int8(path, lambda p: open_session(p, self.options))


class _OnnxCodec(SpectralVQVAE):
    """What both runtime classes replace; see the module docstring."""

    graphs: OnnxGraphs

    def _take(self, codec: SpectralVQVAE, graphs: OnnxGraphs) -> None:
        # The modules themselves, not copies: the state dict (hence the codes checksum) is the model's own.
        self.encoder = codec.encoder
        self.decoder = codec.decoder
        self.feature_mean = codec.feature_mean
        self.feature_std = codec.feature_std
        assert not any(t.is_meta for t in self.state_dict().values())  # nothing of the empty shell is left
        self.graphs = graphs
        self.eval()

    def latents(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio ``[B, 1, T]`` -> latents ``[B, D, F]`` from the encoder graph, and their mask ``[B, 1, F]``."""
        mel, mask = self._mel_and_mask(audio, lengths)
        (latents,) = run(self.graphs.encoder, {"log_mel": mel, "mel_lengths": mask[:, 0].sum(-1).long()})
        for s in self.net_config.strides:
            mask = downsample_mask(mask, s)
        return latents, mask

    def decode(self, codes: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        """Codes ``[B, K, F]`` (and, for a speaker-conditioned model, speaker ``[S]`` or ``[B, S]``; default: the
        default speaker) -> log-mel ``[B, n_mels, F * stride]`` from the decoder graph, before any post-filter."""
        feeds = {"codes": codes.long()}
        if isinstance(self, ConditionalVQVAE):
            voice = self.decoder.default_speaker if speaker is None else speaker
            feeds["speaker"] = voice.float().expand(codes.shape[0], -1)
        elif speaker is not None:
            raise VQAudioError("this model does not take a voice: only speaker-conditioned models do")
        (log_mel,) = run(self.graphs.decoder, feeds)
        return log_mel


class OnnxSpectralVQVAE(_OnnxCodec):
    """A :class:`SpectralVQVAE` whose encoder and decoder networks run in onnxruntime."""

    def __init__(self, codec: SpectralVQVAE, graphs: OnnxGraphs) -> None:
        # Built as an empty shell (no memory, and no random numbers drawn from torch's generator), then given the
        # model's own modules.
        with torch.device("meta"):
            SpectralVQVAE.__init__(self, codec.mel_config, codec.net_config, codec.quantizer)
        self._take(codec, graphs)


class OnnxConditionalVQVAE(_OnnxCodec, ConditionalVQVAE):
    """A :class:`ConditionalVQVAE` whose encoder and decoder networks run in onnxruntime; the reference encoder
    (a voice -> speaker embedding) stays in torch."""

    def __init__(self, codec: ConditionalVQVAE, graphs: OnnxGraphs) -> None:
        with torch.device("meta"):  # as OnnxSpectralVQVAE
            ConditionalVQVAE.__init__(self, codec.mel_config, codec.net_config, codec.speaker_config, codec.quantizer)
        self._take(codec, graphs)


def onnx_codec(codec: SpectralVQVAE, graphs: OnnxGraphs) -> SpectralVQVAE:
    """``codec`` running its encoder and decoder networks in ``graphs``' sessions."""
    if isinstance(codec, ConditionalVQVAE):
        return OnnxConditionalVQVAE(codec, graphs)
    return OnnxSpectralVQVAE(codec, graphs)


class OnnxISTFTVocoder(ISTFTVocoder):
    """The learned vocoder with its network (:meth:`head_outputs`) running as the vocoder graph; the phase's
    running sum, the consistency projections and the inverse STFT stay in torch, as ever."""

    def __init__(self, vocoder: ISTFTVocoder, session: Any) -> None:
        with torch.device("meta"):  # an empty shell, then the vocoder's own modules and buffers, as _OnnxCodec
            ISTFTVocoder.__init__(self, vocoder.mel_config, vocoder.config)
        for name, module in vocoder.named_children():
            setattr(self, name, module)
        for name, buffer in vocoder.named_buffers(recurse=False):
            setattr(self, name, buffer)
        assert not any(t.is_meta for t in (*self.parameters(), *self.buffers()))
        self.session = session
        self.eval()

    def head_outputs(self, log_mel: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """As :meth:`ISTFTVocoder.head_outputs`, from the graph (float32 in and out whatever the precision)."""
        return tuple(run(self.session, {"log_mel": log_mel.float()}))
