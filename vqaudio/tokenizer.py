"""The user-level API: load a model, turn audio into codes and codes into audio.

    tok = vqaudio.load("speech-16k")
    enc = tok.encode("speech.wav")            # Encoded: codes [K, F] + metadata
    out = tok.decode(enc)                     # AudioData at the model's rate, original length

The tokenizer is a facade: the window arithmetic that keeps memory bounded and chunked output equal to a
whole pass lives in :mod:`vqaudio.chunking`, the back ends are built with the model
(:func:`vqaudio.models.builders.build_back_ends`), the CPU precision in :mod:`vqaudio.precision` and the
model card in :mod:`vqaudio.card`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from vqaudio import chunking
from vqaudio.audio import AudioData, save_audio_blocks
from vqaudio.backends import BackEnds
from vqaudio.card import shipped_models
from vqaudio.chunking import MAX_BEAM, Progress, StreamingDecoder, is_beam
from vqaudio.encoded import Encoded
from vqaudio.errors import ModelError, VQAudioError
from vqaudio.inputs import AudioInput, audio_blocks
from vqaudio.models.base import CODES_VERSION
from vqaudio.models.builders import build_back_ends
from vqaudio.models.conditional import ConditionalVQVAE
from vqaudio.models.io import LoadedModel, load_model
from vqaudio.precision import resolve_precision
from vqaudio.runtime.sessions import OnnxOptions, code_search_variant, runtime_codec, runtime_vocoder
from vqaudio.tokenfile import TokenFile, TokenHeader, check_compatible, code_search_id
from vqaudio.vocoders.base import Vocoder
from vqaudio.voices import check_speaker, reference_embedding

__all__ = ["DEFAULT_MODEL", "MAX_BEAM", "AudioInput", "Encoded", "Progress", "Tokenizer", "load", "shipped_models"]

DEFAULT_WINDOW_SECONDS = 30.0
DEFAULT_MODEL = "speech-16k"


def load(
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    encode_precision: str = "float32",
    decode_precision: str = "auto",
    postfilter: bool = True,
    beam: int | None = None,
    runtime: str = "torch",
    onnx: OnnxOptions | None = None,
) -> Tokenizer:
    """Load a shipped model by name, or a model directory by path. Never touches the network.

    Encoding runs in float32 by default: in bfloat16 codes near a tie flip to the neighbouring codeword, and
    codes should not depend on the machine that made them. Decoding runs in bfloat16 where the CPU has it natively
    (``auto``): faster, for a change in the output far below the codec's own error (docs/results.md measures
    both). ``postfilter=False`` skips the model's post-filter, if it has one, and decodes the codec's plain
    output (the log-mel closest to the original, as training measures it). ``beam`` is the width of the code
    search when encoding (1: greedy, the fastest, up to :data:`MAX_BEAM`; default: the model card's
    ``default_beam``, else 1). ``runtime="onnxruntime"`` runs the encoder and decoder networks as ONNX graphs, the
    same codes for the same audio (:mod:`vqaudio.runtime.onnx`); ``onnx`` sets up its sessions and graphs.
    """
    path = Path(model)
    shipped = shipped_models()
    if path.is_dir() or str(model) in shipped:
        loaded = load_model(path if path.is_dir() else shipped[str(model)])
        return Tokenizer(
            loaded,
            encode_precision=encode_precision,
            decode_precision=decode_precision,
            postfilter=postfilter,
            beam=beam,
            runtime=runtime,
            onnx=onnx,
        )
    names = ", ".join(shipped) or "none installed"
    raise ModelError(f"{model}: no such model directory or shipped model (shipped: {names})")


class Tokenizer:
    """A loaded codec with its vocoders, and the chunked encode/decode around it."""

    def __init__(
        self,
        loaded: LoadedModel,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        *,
        encode_precision: str = "float32",
        decode_precision: str = "auto",
        postfilter: bool = True,
        beam: int | None = None,
        runtime: str = "torch",
        onnx: OnnxOptions | None = None,
    ) -> None:
        if loaded.codec is None:
            raise ModelError(f"{loaded.path}: holds only a vocoder, not a codec")
        if beam is not None and not is_beam(beam):
            raise VQAudioError(f"--beam must be a whole number from 1 to {MAX_BEAM}, got {beam!r}")
        self.encode_dtype = resolve_precision(encode_precision)
        self.decode_dtype = resolve_precision(decode_precision)
        self.loaded = loaded
        self.runtime = runtime
        self.model = runtime_codec(loaded, runtime, onnx)
        self.postfilter = postfilter and self.model.has_postfilter
        self.name = loaded.name
        self.checksum = loaded.checksum
        self.card = loaded.card
        self.codes_checksum = self.model.codes_checksum()
        # Weights of earlier releases that made the same codes, for token files older than the codes checksum.
        self.compatible_checksums = self.card.compatible_checksums
        # Facts of the model, fixed at load.
        self.sample_rate: int = self.model.sample_rate
        self.frame_rate: float = self.model.frame_rate
        self.num_codebooks: int = self.model.num_codebooks
        self.codebook_size: int = self.model.codebook_size
        self.window_frames = max(1, int(window_seconds * self.frame_rate))
        self.beam = self.default_beam if beam is None else beam
        if self.beam > 1 and self.model.codebook_strides:
            raise VQAudioError(f"{self.name} has multi-scale codes, searched greedily: --beam must be 1")
        # What searched the codes: a file's header says it, and an int8 encoder's codes get an identity of their own.
        self.code_search = code_search_id(self.beam, CODES_VERSION, code_search_variant(runtime, onnx))
        self.back_ends = BackEnds(
            build_back_ends(self.model, runtime_vocoder(self.model, loaded.vocoder)),
            default=self.card.default_vocoder,
            decode_dtype=self.decode_dtype,
            model=self.name,
        )

    # -- facts ---------------------------------------------------------------------------------------
    @property
    def vocoders(self) -> tuple[str, ...]:
        """Back ends available for this model (empty for waveform models, which decode audio directly)."""
        return self.back_ends.names

    @property
    def default_vocoder(self) -> str | None:
        """The model card's ``default_vocoder`` (chosen on quality, then speed), else the learned one if shipped."""
        return self.back_ends.default

    def vocoder(self, name: str | None = None) -> Vocoder:
        """The back end ``name`` (default: :attr:`default_vocoder`) as a module, log-mel ``[B, n_mels, F]`` ->
        audio ``[B, F * hop]``; it reads the mel of ``vocoder(...).mel_config``. For scoring a back end on its own."""
        return self.back_ends.require(name)

    def vocoder_dtype(self, name: str | None = None) -> torch.dtype:
        """The arithmetic back end ``name`` runs in: the decode precision, except float32 for back ends that
        need it (Griffin-Lim's iterations drift in bfloat16)."""
        return self.back_ends.dtype(self.vocoder(name))

    def vocode(self, log_mel: torch.Tensor, vocoder: str | None = None) -> torch.Tensor:
        """Log-mel ``[B, n_mels, F]`` (or ``[n_mels, F]``) -> audio ``[B, F * hop]`` (or ``[F * hop]``) through
        back end ``vocoder``, in the arithmetic decoding gives it. The mel is the one
        :func:`vqaudio.spectral.log_mel` computes with ``vocoder(...).mel_config``."""
        return self.back_ends.vocode(log_mel, vocoder)

    def bitrate(self, n_codebooks: int | None = None) -> float:
        """Bits per second with ``n_codebooks`` codebooks (default: :attr:`default_codebooks`)."""
        return self.model.bitrate(self._n(n_codebooks))

    @property
    def default_codebooks(self) -> int:
        """Codebooks used when none are asked for: the model card's ``default_codebooks``, else all."""
        k = self.card.default_codebooks
        if k is None or k > self.num_codebooks:
            return self.num_codebooks
        # Multi-scale codes come in whole codebooks of several rows: the largest count within the card's.
        return max((n for n in self.model.codebook_counts if n <= k), default=self.model.codebook_counts[0])

    @property
    def default_beam(self) -> int:
        """Code search width used when none is asked for: the model card's ``default_beam``, else 1 (greedy)."""
        return self.card.default_beam or 1

    def _n(self, n_codebooks: int | None) -> int:
        n = self.default_codebooks if n_codebooks is None else n_codebooks
        if not 1 <= n <= self.num_codebooks:
            raise VQAudioError(f"--n-codebooks must be between 1 and {self.num_codebooks} for {self.name}, got {n}")
        if n not in self.model.codebook_counts:
            counts = ", ".join(map(str, self.model.codebook_counts))
            raise VQAudioError(f"--n-codebooks must be one of {counts} for the multi-scale {self.name}, got {n}")
        return n

    # -- encode --------------------------------------------------------------------------------------
    def _encode_blocks(
        self, blocks: Iterable[torch.Tensor], n: int, seen: list[int] | None = None, progress: Progress | None = None
    ) -> Iterator[torch.Tensor]:
        return chunking.iter_encode_windows(
            self.model,
            blocks,
            window_frames=self.window_frames,
            n_codebooks=n,
            beam=self.beam,
            dtype=self.encode_dtype,
            seen=seen,
            progress=progress,
        )

    @property
    def encode_lookahead(self) -> int:
        """Samples of audio past a window's last frame that :meth:`iter_encode` waits for before yielding its
        codes: the encoder's context (``docs/concepts.md``, streaming)."""
        return chunking.encode_context(self.model) * self.model.hop_length

    def decode_lookahead(self, vocoder: str | None = None) -> int:
        """Samples of decoded audio past a window that windowed decoding reads codes for (its context), with
        back end ``vocoder`` (default: the model's): what makes it equal a whole-file pass."""
        return chunking.decode_context(self.model, self.back_ends.get(vocoder)) * self.model.hop_length

    def iter_encode(self, blocks: Iterable[torch.Tensor], *, n_codebooks: int | None = None) -> Iterator[torch.Tensor]:
        """Streaming encode: mono blocks ``[T_i]`` at the model's rate in, codes ``[K, f_j]`` out as soon as each
        window's audio and its context (:attr:`encode_lookahead`) have arrived. Concatenated, the yielded codes
        equal :meth:`encode`'s for the same audio, whatever the block sizes. Each window is encoded in inference
        mode (:func:`vqaudio.chunking.encode_window`), which is off again in the caller's code between windows."""
        n = self._n(n_codebooks)
        yield from self._encode_blocks(blocks, n)

    @torch.inference_mode()
    def encode(
        self,
        audio: AudioInput,
        sample_rate: int | None = None,
        *,
        n_codebooks: int | None = None,
        progress: Progress | None = None,
    ) -> Encoded:
        """Encode a file path, or an array ``[T]``/``[C, T]`` at ``sample_rate``, into codes ``[K, F]``.

        Channels are averaged to mono and the audio is resampled to the model's rate. ``progress`` is called
        after each window (:data:`Progress`).
        """
        n = self._n(n_codebooks)
        blocks, orig_sr, channels = audio_blocks(audio, sample_rate, self.sample_rate)
        seen = [0]
        codes = torch.cat(list(self._encode_blocks(blocks, n, seen, progress)), dim=1)
        return self._encoded(codes, seen[0], orig_sr, channels)

    def _encoded(self, codes: torch.Tensor, length: int, orig_sr: int, channels: int) -> Encoded:
        return Encoded(
            codes=codes,
            sample_rate=self.sample_rate,
            frame_rate=self.frame_rate,
            original_length=length,
            original_sample_rate=orig_sr,
            original_channels=channels,
            model_id=self.name,
            model_checksum=self.checksum,
            codebook_size=self.codebook_size,
            codes_checksum=self.codes_checksum,
            code_search=self.code_search,
            codebook_strides=self.model.codebook_strides,
        )

    @torch.inference_mode()
    def encode_batch(
        self,
        audios: Sequence[AudioInput],
        sample_rate: int | None = None,
        *,
        n_codebooks: int | None = None,
        batch_seconds: float | None = None,
    ) -> list[Encoded]:
        """Encode several file paths or ``[T_i]``/``[C, T_i]`` arrays at ``sample_rate``; arrays and files up to
        one encode window long go through the model in one padded batch (or, shortest first, in batches of at
        most ``batch_seconds`` of padded audio), which never changes the codes (each item gets exactly the codes
        it gets alone), and longer ones alone (:func:`vqaudio.chunking.encode_items`). The results keep the
        order of ``audios``."""
        n = self._n(n_codebooks)
        opened = [audio_blocks(audio, sample_rate, self.sample_rate) for audio in audios]
        coded = chunking.encode_items(
            self.model,
            [blocks for blocks, _, _ in opened],
            window_frames=self.window_frames,
            n_codebooks=n,
            beam=self.beam,
            dtype=self.encode_dtype,
            batch_samples=None if batch_seconds is None else int(batch_seconds * self.sample_rate),
        )
        return [self._encoded(c, t, sr, ch) for (c, t), (_, sr, ch) in zip(coded, opened, strict=True)]

    # -- decode --------------------------------------------------------------------------------------
    def stream_decoder(self, vocoder: str | None = None, speaker: torch.Tensor | None = None) -> StreamingDecoder:
        """A decoder that takes codes as they arrive: ``push(codes [K, f])`` returns the audio of each window
        whose codes and context (:meth:`decode_lookahead`) are in, ``finish()`` the rest. Its output equals
        :meth:`iter_decode`'s for the same codes; a speaker-conditioned model speaks in the voice of
        ``speaker`` (:meth:`speaker_embedding`)."""
        voc = self.back_ends.get(vocoder)
        check_speaker(self.model, speaker, self.name)
        return StreamingDecoder(
            self.model,
            voc,
            window_frames=self.window_frames,
            dtype=self.decode_dtype,
            vocoder_dtype=self.decode_dtype if voc is None else self.back_ends.dtype(voc),
            postfilter=self.postfilter,
            speaker=speaker,
            name=self.name,
        )

    def iter_decode(
        self, codes: torch.Tensor, vocoder: str | None = None, speaker: torch.Tensor | None = None
    ) -> Iterator[torch.Tensor]:
        """Yield audio blocks ``[T_i]`` for codes ``[K, F]``, one window at a time (bounded memory); a
        speaker-conditioned model speaks them in the voice of ``speaker`` (:meth:`speaker_embedding`)."""
        decoder = self.stream_decoder(vocoder, speaker)
        chunking.check_codes(codes, self.model, self.name)
        if codes.shape[1] == 0:
            raise VQAudioError("there are no code frames to decode")
        yield from decoder.push(codes)
        yield from decoder.finish()

    # -- voices (speaker-conditioned models) --------------------------------------------------------------
    @property
    def conditional(self) -> bool:
        """Whether the decoder takes a speaker embedding (a units model): :meth:`speaker_embedding`."""
        return isinstance(self.model, ConditionalVQVAE)

    def speaker_embedding(self, audio: AudioInput, sample_rate: int | None = None) -> torch.Tensor:
        """The voice of a reference clip (a path or ``[T]``/``[C, T]`` at ``sample_rate``) as an embedding
        ``[S]``; its first ``REFERENCE_SECONDS`` are used (:mod:`vqaudio.voices`)."""
        return reference_embedding(self.model, audio, sample_rate, self.name)

    def convert(
        self,
        audio: AudioInput,
        voice: AudioInput,
        sample_rate: int | None = None,
        *,
        vocoder: str | None = None,
    ) -> AudioData:
        """Voice conversion: ``audio``'s units spoken in the voice of ``voice`` (both paths, or arrays at
        ``sample_rate``)."""
        speaker = self.speaker_embedding(voice, sample_rate)
        return self.decode(self.encode(audio, sample_rate), vocoder=vocoder, speaker=speaker)

    def check_compatible(self, header: TokenHeader, source: str | None = None) -> None:
        """Refuse a token header this model did not make (see :func:`vqaudio.tokenfile.check_compatible`)."""
        check_compatible(
            header,
            self.name,
            self.checksum,
            self.codebook_size,
            self.num_codebooks,
            codes_checksum=self.codes_checksum,
            codes_version=CODES_VERSION,
            also_accept=self.compatible_checksums,
            source=source,
            codebook_strides=self.model.codebook_strides,
        )

    def _codes_and_length(
        self, codes: Encoded | TokenFile | torch.Tensor | np.ndarray, source: str | None = None
    ) -> tuple[torch.Tensor, int | None]:
        if isinstance(codes, Encoded):
            self.check_compatible(codes.header(), source)
            return codes.codes, codes.original_length
        if isinstance(codes, TokenFile):
            self.check_compatible(codes.header, source)
            return torch.from_numpy(np.asarray(codes.codes)).long(), codes.header.original_length
        return torch.as_tensor(codes), None

    def decode(
        self,
        codes: Encoded | TokenFile | torch.Tensor | np.ndarray,
        *,
        vocoder: str | None = None,
        length: int | None = None,
        speaker: torch.Tensor | None = None,
    ) -> AudioData:
        """Codes (``[K, F]``, an :class:`Encoded` or a token file) -> mono audio ``[1, T]`` at the model's rate.

        The output is trimmed to the original length when the codes carry it.
        """
        tensor, original = self._codes_and_length(codes)
        audio = torch.cat(list(self.iter_decode(tensor, vocoder, speaker)))
        length = length if length is not None else original
        if length is not None:
            audio = audio[:length]
        return AudioData(samples=audio[None].clamp(-1, 1), sample_rate=self.sample_rate)

    def decode_to_file(
        self,
        codes: Encoded | TokenFile | torch.Tensor | np.ndarray,
        path: str | os.PathLike[str],
        *,
        vocoder: str | None = None,
        overwrite: bool = False,
        speaker: torch.Tensor | None = None,
        progress: Progress | None = None,
    ) -> float:
        """Decode straight to a wav/flac file window by window (bounded memory); returns the seconds written.
        ``progress`` is called after each window (:data:`Progress`)."""
        tensor, original = self._codes_and_length(codes)
        made = tensor.shape[1] * self.model.hop_length  # what the decode yields, so at most what is written
        # An Encoded's length is not checked like a token file's header: one past ``made`` is not written.
        total = made if original is None else min(original, made)
        blocks = chunking.trim_blocks(self.iter_decode(tensor, vocoder, speaker), total, self.sample_rate, progress)
        save_audio_blocks(path, blocks, self.sample_rate, overwrite=overwrite)
        return total / self.sample_rate

    def resynth(
        self,
        audio: AudioInput,
        sample_rate: int | None = None,
        *,
        n_codebooks: int | None = None,
        vocoder: str | None = None,
    ) -> AudioData:
        """Encode then decode: what a listener hears after the codec. A speaker-conditioned model decodes in
        the input's own voice (its embedding computed from the input itself)."""
        speaker = self.speaker_embedding(audio, sample_rate) if self.conditional else None
        enc = self.encode(audio, sample_rate, n_codebooks=n_codebooks)
        return self.decode(enc, vocoder=vocoder, speaker=speaker)
