"""The user-level API: load a model, turn audio into codes and codes into audio.

    tok = vqaudio.load("speech-16k")
    enc = tok.encode("speech.wav")            # Encoded: codes [K, F] + metadata
    out = tok.decode(enc)                     # AudioData at the model's rate, original length

Long inputs are processed in windows of ``window_frames`` code frames, each padded on both sides with
``C = ceil(context_samples / hop) + 1`` frames of real audio (or codes) that are computed and thrown away::

    stream  |.......|=========== window ===========|.......|
             context  frames [f0, f1) are kept       context
             (C frames)                              (C frames)

Every output frame of a window therefore sees exactly the input it would see in a whole-file pass (the
model's receptive field is at most ``C`` frames each side and its padding is zeros in both cases), so
chunked codes equal whole-file codes. Only ``window + 2C`` frames of audio are held at a time, so memory does
not grow with the file. Griffin-Lim is the exception: its phase estimate is global, so chunked Griffin-Lim
output differs slightly from a whole-file pass (bounded in the tests).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

import numpy as np
import torch

from vqaudio.audio import AudioData, check_samples, open_audio_stream, resample, save_audio_blocks, to_mono
from vqaudio.errors import ModelError, VQAudioError
from vqaudio.models.base import CODES_VERSION
from vqaudio.models.conditional import ConditionalVQVAE
from vqaudio.models.io import LoadedModel, load_model
from vqaudio.models.spectral import SpectralVQVAE
from vqaudio.tokenfile import TokenFile, TokenHeader, bitrate, check_compatible, code_search_id
from vqaudio.vocoders.base import Vocoder
from vqaudio.vocoders.griffin_lim_vocoder import GriffinLimVocoder, WarmStartGriffinLim

VOCODERS = ("learned", "griffin-lim", "hybrid")
DEFAULT_WINDOW_SECONDS = 30.0
PRECISIONS = ("auto", "float32", "bfloat16")

AudioInput = str | os.PathLike[str] | np.ndarray | torch.Tensor
# Seconds of a voice reference that the speaker embedding is computed from.
REFERENCE_SECONDS = 30.0
# A decode window hands the next one a mel frame and the vocoder's running phase there ([B, K]).
Carry = tuple[int, torch.Tensor]


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
        )


def shipped_models() -> dict[str, Path]:
    """Names of the models installed with the package -> their directories."""
    from importlib import resources

    root = Path(str(resources.files("vqaudio.pretrained")))
    return {p.name: p for p in sorted(root.iterdir()) if (p / "config.json").is_file()}


DEFAULT_MODEL = "speech-16k"


def native_bfloat16() -> bool:
    """True when this CPU multiplies bfloat16 in hardware (AVX-512 BF16 or AMX); elsewhere it is emulated, slower
    than float32."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch build without these probes
        return False


def resolve_precision(precision: str) -> torch.dtype:
    """``auto`` (bfloat16 where the CPU has it natively), ``float32`` or ``bfloat16`` -> the compute dtype."""
    if precision not in PRECISIONS:
        raise VQAudioError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return torch.bfloat16 if native_bfloat16() else torch.float32
    return torch.bfloat16 if precision == "bfloat16" else torch.float32


def _autocast(dtype: torch.dtype) -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)


def _read_past(stream: Iterator[torch.Tensor], limit: int) -> tuple[list[torch.Tensor], int]:
    """Whole float blocks from ``stream`` until more than ``limit`` samples are read (or it ends), and how many
    were read; the rest of ``stream`` is left unread."""
    head: list[torch.Tensor] = []
    read = 0
    for block in stream:
        head.append(block.float())
        read += block.numel()
        if read > limit:
            break
    return head, read


def _is_beam(value: object) -> TypeGuard[int]:
    """A code search width: a whole number >= 1 (not a bool, which Python counts as an int)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def load(
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    encode_precision: str = "float32",
    decode_precision: str = "auto",
    postfilter: bool = True,
    beam: int | None = None,
) -> Tokenizer:
    """Load a shipped model by name, or a model directory by path. Never touches the network.

    Encoding runs in float32 by default: in bfloat16 codes near a tie flip to the neighbouring codeword, and
    codes should not depend on the machine that made them. Decoding runs in bfloat16 where the CPU has it natively
    (``auto``): faster, for a change in the output far below the codec's own error (docs/results.md measures
    both). ``postfilter=False`` skips the model's post-filter, if it has one, and decodes the codec's plain
    output (the log-mel closest to the original, as training measures it). ``beam`` is the width of the code
    search when encoding (1: greedy, the fastest; default: the model card's ``default_beam``, else 1).
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
    ) -> None:
        if loaded.codec is None:
            raise ModelError(f"{loaded.path}: holds only a vocoder, not a codec")
        if beam is not None and not _is_beam(beam):
            raise VQAudioError(f"--beam must be a whole number >= 1, got {beam!r}")
        self.encode_dtype = resolve_precision(encode_precision)
        self.decode_dtype = resolve_precision(decode_precision)
        self.loaded = loaded
        self.model = loaded.codec
        self.postfilter = postfilter and self.model.has_postfilter
        self.name = loaded.name
        self.checksum = loaded.checksum
        self.codes_checksum = self.model.codes_checksum()
        # Weights of earlier releases that made the same codes, for token files older than the codes checksum.
        listed = loaded.card.get("compatible_checksums")
        self.compatible_checksums = (
            tuple(c for c in listed if isinstance(c, str) and c.strip()) if isinstance(listed, list) else ()
        )
        self.window_frames = max(1, int(window_seconds * self.model.frame_rate))
        self.beam = self.default_beam if beam is None else beam
        self._vocoders: dict[str, Vocoder] = {}
        if loaded.vocoder is not None:
            self._vocoders["learned"] = loaded.vocoder
        if isinstance(self.model, SpectralVQVAE):
            self._vocoders["griffin-lim"] = GriffinLimVocoder(self.model.mel_config).eval()
            if loaded.vocoder is not None:
                # Griffin-Lim started from the learned vocoder's phase (same weights, no extra download).
                self._vocoders["hybrid"] = WarmStartGriffinLim(self.model.mel_config, loaded.vocoder).eval()

    # -- facts ---------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.model.frame_rate

    @property
    def num_codebooks(self) -> int:
        return self.model.num_codebooks

    @property
    def codebook_size(self) -> int:
        return self.model.codebook_size

    @property
    def vocoders(self) -> tuple[str, ...]:
        """Back ends available for this model (empty for waveform models, which decode audio directly)."""
        return tuple(v for v in VOCODERS if v in self._vocoders)

    def vocoder(self, name: str | None = None) -> Vocoder:
        """The back end ``name`` (default: :attr:`default_vocoder`) as a module, log-mel ``[B, n_mels, F]`` ->
        audio ``[B, F * hop]``; it reads the mel of ``vocoder(...).mel_config``. For scoring a back end on its own."""
        found = self._vocoder(name)
        if found is None:
            raise VQAudioError(f"{self.name} decodes audio directly; it has no vocoder")
        return found

    def vocoder_dtype(self, name: str | None = None) -> torch.dtype:
        """The arithmetic back end ``name`` runs in: the decode precision, except float32 for back ends that
        need it (Griffin-Lim's iterations drift in bfloat16)."""
        return self._vocoder_dtype(self.vocoder(name))

    def _vocoder_dtype(self, vocoder: Vocoder) -> torch.dtype:
        return self.decode_dtype if vocoder.low_precision_ok else torch.float32

    @torch.inference_mode()
    def vocode(self, log_mel: torch.Tensor, vocoder: str | None = None) -> torch.Tensor:
        """Log-mel ``[B, n_mels, F]`` (or ``[n_mels, F]``) -> audio ``[B, F * hop]`` (or ``[F * hop]``) through
        back end ``vocoder``, in the arithmetic decoding gives it. The mel is the one
        :func:`vqaudio.spectral.log_mel` computes with ``vocoder(...).mel_config``."""
        voc = self.vocoder(vocoder)
        n_mels = voc.mel_config.n_mels
        if log_mel.dim() not in (2, 3) or log_mel.shape[-2] != n_mels or log_mel.shape[-1] == 0:
            raise VQAudioError(f"expected log-mel [B, {n_mels}, F] with F > 0, got shape {tuple(log_mel.shape)}")
        if not torch.isfinite(log_mel).all():
            raise VQAudioError("the log-mel holds NaN or infinite values")
        batched = log_mel if log_mel.dim() == 3 else log_mel[None]
        with _autocast(self._vocoder_dtype(voc)):
            audio = voc(batched.float()).float()
        return audio if log_mel.dim() == 3 else audio[0]

    @property
    def default_vocoder(self) -> str | None:
        """The model card's ``default_vocoder`` (chosen on quality, then speed), else the learned one if shipped."""
        preferred = self.loaded.card.get("default_vocoder")
        if preferred in self._vocoders:
            return str(preferred)
        return self.vocoders[0] if self.vocoders else None

    def bitrate(self, n_codebooks: int | None = None) -> float:
        """Bits per second with ``n_codebooks`` codebooks (default: :attr:`default_codebooks`)."""
        return self.model.bitrate(self._n(n_codebooks))

    @property
    def default_codebooks(self) -> int:
        """Codebooks used when none are asked for: the model card's ``default_codebooks``, else all."""
        k = self.loaded.card.get("default_codebooks")
        return k if isinstance(k, int) and 1 <= k <= self.num_codebooks else self.num_codebooks

    @property
    def default_beam(self) -> int:
        """Code search width used when none is asked for: the model card's ``default_beam``, else 1 (greedy)."""
        b = self.loaded.card.get("default_beam")
        return b if _is_beam(b) else 1

    def _n(self, n_codebooks: int | None) -> int:
        n = self.default_codebooks if n_codebooks is None else n_codebooks
        if not 1 <= n <= self.num_codebooks:
            raise VQAudioError(f"--n-codebooks must be between 1 and {self.num_codebooks} for {self.name}, got {n}")
        return n

    def _encode_context(self) -> int:
        return math.ceil(self.model.context_samples / self.model.hop_length) + 1

    # -- encode --------------------------------------------------------------------------------------
    def _prepare(self, audio: AudioInput, sample_rate: int | None) -> tuple[Iterable[torch.Tensor], int, int]:
        """Any input -> (mono blocks at the model rate, original rate, original channels)."""
        if isinstance(audio, (str, os.PathLike)):
            stream = open_audio_stream(audio, self.sample_rate)
            return stream, stream.original_sample_rate, stream.original_channels
        if sample_rate is None:
            raise VQAudioError("sample_rate is required when encoding an array")
        if sample_rate <= 0:
            raise VQAudioError(f"sample_rate must be positive, got {sample_rate}")
        x = torch.as_tensor(audio)
        if not x.is_floating_point():
            # Integer PCM: scale to [-1, 1) as a sound file reader would.
            if x.dtype not in (torch.int8, torch.int16, torch.int32):
                raise VQAudioError(f"audio must be float or int8/16/32 PCM, got {x.dtype}")
            x = x.float() / float(2 ** (torch.iinfo(x.dtype).bits - 1))
        x = x.float()
        if x.dim() == 1:
            x = x[None]
        if x.dim() != 2:
            raise VQAudioError(f"audio must be [T] or [C, T], got shape {tuple(x.shape)}")
        if x.shape[-1] == 0:
            raise VQAudioError("audio is empty")
        check_samples(x, "input audio")
        channels = x.shape[0]
        x = resample(to_mono(x) if channels > 1 else x, sample_rate, self.sample_rate)
        return [x[0]], sample_rate, channels

    def _encode_window(self, buf: torch.Tensor, buf_start: int, f0: int, f1: int, end: int, n: int) -> torch.Tensor:
        """Codes ``[K, f1 - f0]`` of frames ``[f0, f1)`` given samples ``buf`` starting at ``buf_start``."""
        hop, c = self.model.hop_length, self._encode_context()
        s0 = max(0, (f0 - c) * hop)
        s1 = min(end, (f1 + c) * hop)
        x = buf[s0 - buf_start : s1 - buf_start]
        with _autocast(self.encode_dtype):
            codes = self.model.encode(x[None, None], n_codebooks=n, beam=self.beam)[0]
        off = f0 - s0 // hop
        return codes[:, off : off + f1 - f0]

    def _iter_windows(self, blocks: Iterable[torch.Tensor], n: int, seen: list[int]) -> Iterator[torch.Tensor]:
        """Codes ``[K, f_i]`` of successive windows as soon as the audio after each (its context) has arrived;
        ``seen[0]`` counts the samples read."""
        hop, c, w = self.model.hop_length, self._encode_context(), self.window_frames
        buf = torch.zeros(0)
        buf_start = total = next_frame = 0
        for block in blocks:
            buf = torch.cat([buf, block.float()])
            total += block.numel()
            seen[0] = total
            while total >= (next_frame + w + c) * hop:
                yield self._encode_window(buf, buf_start, next_frame, next_frame + w, total, n)
                next_frame += w
                keep = max(0, (next_frame - c) * hop)
                buf, buf_start = buf[keep - buf_start :], keep
        if total == 0:
            raise VQAudioError("audio is empty")
        n_frames = self.model.num_frames(total)
        while next_frame < n_frames:
            f1 = min(next_frame + w, n_frames)
            yield self._encode_window(buf, buf_start, next_frame, f1, total, n)
            next_frame = f1

    def _encode_blocks(self, blocks: Iterable[torch.Tensor], n: int) -> tuple[torch.Tensor, int]:
        seen = [0]
        pieces = list(self._iter_windows(blocks, n, seen))
        return torch.cat(pieces, dim=1), seen[0]

    @property
    def encode_lookahead(self) -> int:
        """Samples of audio past a window's last frame that :meth:`iter_encode` waits for before yielding its
        codes: the encoder's context (``docs/concepts.md``, streaming)."""
        return self._encode_context() * self.model.hop_length

    def decode_lookahead(self, vocoder: str | None = None) -> int:
        """Samples of decoded audio past a window that windowed decoding reads codes for (its context), with
        back end ``vocoder`` (default: the model's): what makes it equal a whole-file pass."""
        return self._decode_context(self._vocoder(vocoder)) * self.model.hop_length

    def iter_encode(self, blocks: Iterable[torch.Tensor], *, n_codebooks: int | None = None) -> Iterator[torch.Tensor]:
        """Streaming encode: mono blocks ``[T_i]`` at the model's rate in, codes ``[K, f_j]`` out as soon as each
        window's audio and its context (:attr:`encode_lookahead`) have arrived. Concatenated, the yielded codes
        equal :meth:`encode`'s for the same audio, whatever the block sizes."""
        n = self._n(n_codebooks)
        with torch.inference_mode():
            yield from self._iter_windows(blocks, n, [0])

    @torch.inference_mode()
    def encode(self, audio: AudioInput, sample_rate: int | None = None, *, n_codebooks: int | None = None) -> Encoded:
        """Encode a file path, or an array ``[T]``/``[C, T]`` at ``sample_rate``, into codes ``[K, F]``.

        Channels are averaged to mono and the audio is resampled to the model's rate.
        """
        n = self._n(n_codebooks)
        blocks, orig_sr, channels = self._prepare(audio, sample_rate)
        codes, total = self._encode_blocks(blocks, n)
        return self._encoded(codes, total, orig_sr, channels)

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
            code_search=code_search_id(self.beam, CODES_VERSION),
        )

    @torch.inference_mode()
    def encode_batch(
        self, audios: Sequence[AudioInput], sample_rate: int | None = None, *, n_codebooks: int | None = None
    ) -> list[Encoded]:
        """Encode several file paths or ``[T_i]``/``[C, T_i]`` arrays at ``sample_rate``; arrays and files up to
        one encode window long go through the model in one padded batch.

        Padding never changes the codes: the model masks every position past an item's length after every
        layer, so each item gets exactly the codes it gets alone. A longer item (a file is read only until it
        proves longer) is encoded alone through the windowed path, whole and in bounded memory.
        """
        n = self._n(n_codebooks)
        limit = self.window_frames * self.model.hop_length
        out: list[Encoded | None] = [None] * len(audios)
        short: list[tuple[int, torch.Tensor, int, int]] = []  # (position, mono samples, rate, channels)
        for i, audio in enumerate(audios):
            blocks, orig_sr, channels = self._prepare(audio, sample_rate)
            stream = iter(blocks)
            head, read = _read_past(stream, limit)
            if read > limit:
                codes, total = self._encode_blocks(itertools.chain(head, stream), n)
                out[i] = self._encoded(codes, total, orig_sr, channels)
            elif read == 0:
                raise VQAudioError("audio is empty")
            else:
                short.append((i, torch.cat(head), orig_sr, channels))
        if short:
            lengths = torch.tensor([m.numel() for _, m, _, _ in short])
            batch = torch.zeros(len(short), 1, int(lengths.max()))
            for j, (_, m, _, _) in enumerate(short):
                batch[j, 0, : m.numel()] = m
            with _autocast(self.encode_dtype):
                codes = self.model.encode(batch, lengths, n_codebooks=n, beam=self.beam)
            for j, (i, m, orig_sr, channels) in enumerate(short):
                f = self.model.num_frames(m.numel())
                out[i] = self._encoded(codes[j, :, :f].clone(), m.numel(), orig_sr, channels)
        return [e for e in out if e is not None]

    # -- decode --------------------------------------------------------------------------------------
    def _vocoder(self, name: str | None) -> Vocoder | None:
        if not self._vocoders:
            if name is not None:
                raise VQAudioError(f"{self.name} decodes audio directly; --vocoder does not apply")
            return None
        name = name or self.default_vocoder
        if name not in self._vocoders:
            raise VQAudioError(
                f"vocoder {name!r} is not available for {self.name} (available: {', '.join(self.vocoders)})"
            )
        return self._vocoders[name]

    def _decode_context(self, vocoder: Vocoder | None) -> int:
        c = self._encode_context()
        if vocoder is not None:
            c += math.ceil(vocoder.context_frames * vocoder.hop_length / self.model.hop_length) + 1
        return c

    def _decode_window(
        self,
        codes: torch.Tensor,
        f0: int,
        f1: int,
        vocoder: Vocoder | None,
        c: int,
        carry: Carry | None,
        speaker: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, Carry | None]:
        """Audio ``[(f1 - f0) * hop]`` for code frames ``[f0, f1)`` of ``codes`` ``[K, F]``, and what the window
        starting at ``f1`` needs from this one: the vocoder's running phase at mel frame ``f1 * ratio``
        (``carry``: that frame and phase), so a back end whose phase is summed over time continues it."""
        g0, g1 = max(0, f0 - c), min(codes.shape[1], f1 + c)
        with _autocast(self.decode_dtype):
            window = codes[None, :, g0:g1].long()
            if speaker is None:
                out = self.model.decode(window).float()
            else:
                assert isinstance(self.model, ConditionalVQVAE)
                out = self.model.decode(window, speaker=speaker).float()
        if self.postfilter:
            out = self.model.postfilter(out)
        hop = self.model.hop_length
        if vocoder is None:
            return out[0, 0, (f0 - g0) * hop : (f1 - g0) * hop], None
        ratio = hop // vocoder.hop_length  # mel frames per code frame
        anchor = None if carry is None else (carry[0] - g0 * ratio, carry[1])
        probe = (f1 - g0) * ratio if f1 < codes.shape[1] else None
        with _autocast(self._vocoder_dtype(vocoder)):
            made = vocoder.synthesize(out, anchor, probe)
        audio = made.audio[0].float()[(f0 - g0) * hop : (f1 - g0) * hop]
        return audio, None if made.phase is None else (f1 * ratio, made.phase)

    def iter_decode(
        self, codes: torch.Tensor, vocoder: str | None = None, speaker: torch.Tensor | None = None
    ) -> Iterator[torch.Tensor]:
        """Yield audio blocks ``[T_i]`` for codes ``[K, F]``, one window at a time (bounded memory); a
        speaker-conditioned model speaks them in the voice of ``speaker`` (:meth:`speaker_embedding`)."""
        voc = self._vocoder(vocoder)
        self._check_speaker(speaker)
        if codes.dim() != 2:
            raise VQAudioError(f"codes must be [K, F], got shape {tuple(codes.shape)}")
        if codes.shape[1] == 0:
            raise VQAudioError("there are no code frames to decode")
        if codes.is_floating_point():
            raise VQAudioError(f"codes must be integers, got {codes.dtype}")
        self._n(codes.shape[0])
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise VQAudioError(f"codes must lie in [0, {self.codebook_size}) for {self.name}")
        c = self._decode_context(voc)
        carry: Carry | None = None
        with torch.inference_mode():
            for f0 in range(0, codes.shape[1], self.window_frames):
                f1 = min(f0 + self.window_frames, codes.shape[1])
                audio, carry = self._decode_window(codes, f0, f1, voc, c, carry, speaker)
                yield audio

    # -- voices (speaker-conditioned models) --------------------------------------------------------------
    @property
    def conditional(self) -> bool:
        """Whether the decoder takes a speaker embedding (a units model): :meth:`speaker_embedding`."""
        return isinstance(self.model, ConditionalVQVAE)

    def _check_speaker(self, speaker: torch.Tensor | None) -> None:
        if speaker is None:
            return
        if not isinstance(self.model, ConditionalVQVAE):
            raise VQAudioError(f"{self.name} does not take a voice: only speaker-conditioned models do")
        dim = self.model.speaker_config.dim
        if speaker.shape != (dim,) or not bool(torch.isfinite(speaker).all()):
            raise VQAudioError(f"a speaker embedding for {self.name} is {dim} finite numbers")

    @torch.inference_mode()
    def speaker_embedding(self, audio: AudioInput, sample_rate: int | None = None) -> torch.Tensor:
        """The voice of a reference clip (a path or ``[T]``/``[C, T]`` at ``sample_rate``) as an embedding
        ``[S]``; its first ``REFERENCE_SECONDS`` are used."""
        if not isinstance(self.model, ConditionalVQVAE):
            raise VQAudioError(f"{self.name} does not take a voice: only speaker-conditioned models do")
        limit = int(REFERENCE_SECONDS * self.sample_rate)
        blocks, _, _ = self._prepare(audio, sample_rate)
        head, read = _read_past(iter(blocks), limit)
        if read == 0:
            raise VQAudioError("the voice reference is empty")
        return self.model.speaker_embedding(torch.cat(head)[:limit][None, None])[0]

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
    ) -> float:
        """Decode straight to a wav/flac file window by window (bounded memory); returns the seconds written."""
        tensor, original = self._codes_and_length(codes)
        total = original if original is not None else tensor.shape[1] * self.model.hop_length

        def blocks() -> Iterator[torch.Tensor]:
            remaining = total
            for block in self.iter_decode(tensor, vocoder, speaker):
                block = block[:remaining].clamp(-1, 1)
                remaining -= block.numel()
                if block.numel():
                    yield block

        save_audio_blocks(path, blocks(), self.sample_rate, overwrite=overwrite)
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
