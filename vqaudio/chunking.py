"""Windowed encoding and decoding: any length in bounded memory, with chunked output equal to a whole-file pass.

Long inputs are processed in windows of ``window_frames`` code frames, each padded on both sides with
``C = ceil(context_samples / hop) + 1`` frames of real audio (or codes) that are computed and thrown away::

    stream  |.......|=========== window ===========|.......|
             context  frames [f0, f1) are kept       context
             (C frames)                              (C frames)

Every output frame of a window therefore sees exactly the input it would see in a whole-file pass (the
model's receptive field is at most ``C`` frames each side and its padding is zeros in both cases), so
chunked codes equal whole-file codes. Only ``window + 2C`` frames are held at a time, so memory does not grow
with the file. Griffin-Lim is the exception: its phase estimate is global, so chunked Griffin-Lim output
differs slightly from a whole-file pass (bounded in the tests).

Both directions stream: :func:`iter_encode_windows` takes audio blocks as they arrive and yields each window's
codes once the context after it has arrived; :class:`StreamingDecoder` takes code blocks as they arrive and
yields each window's audio likewise. The wait is the lookahead (``docs/concepts.md``, streaming).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeGuard

import numpy as np
import torch

from vqaudio.errors import VQAudioError
from vqaudio.inputs import read_past
from vqaudio.models.base import CodecModel
from vqaudio.models.conditional import ConditionalVQVAE
from vqaudio.precision import autocast
from vqaudio.vocoders.base import Vocoder

# A decode window hands the next one a mel frame and the vocoder's running phase there ([B, K]).
Carry = tuple[int, torch.Tensor]

# The widest code search accepted. The search keeps ``beam`` candidates per codebook, so its time grows with the
# width: 64 is 8 times the shipped models' default, while a width of 100,000 took 45 s on 1.5 s of speech.
MAX_BEAM = 64

Progress = Callable[[float], None]
"""Called after each window of a long encode or decode with the seconds of audio it covered."""


def is_beam(value: object) -> TypeGuard[int]:
    """A code search width: a whole number from 1 to :data:`MAX_BEAM` (not a bool, which Python counts as an int)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_BEAM


def encode_context(model: CodecModel) -> int:
    """Code frames of context each side of an encode window: the encoder's receptive field, rounded up."""
    return math.ceil(model.context_samples / model.hop_length) + 1


def decode_context(model: CodecModel, vocoder: Vocoder | None) -> int:
    """Code frames of context each side of a decode window: the decoder's and the back end's."""
    c = encode_context(model)
    if vocoder is not None:
        c += math.ceil(vocoder.context_frames * vocoder.hop_length / model.hop_length) + 1
    return c


def encode_window(
    model: CodecModel,
    buf: torch.Tensor,
    buf_start: int,
    f0: int,
    f1: int,
    end: int,
    *,
    n_codebooks: int,
    beam: int,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Codes ``[K, f1 - f0]`` of frames ``[f0, f1)``, given samples ``buf`` ``[T]`` that start at sample
    ``buf_start`` of a stream whose known end is sample ``end``. The model runs in inference mode here, not
    around the generators that call this, whose caller's code between windows must keep autograd."""
    hop, c = model.hop_length, encode_context(model)
    s0 = max(0, (f0 - c) * hop)
    s1 = min(end, (f1 + c) * hop)
    x = buf[s0 - buf_start : s1 - buf_start]
    with torch.inference_mode(), autocast(dtype):
        codes = model.encode(x[None, None], n_codebooks=n_codebooks, beam=beam)[0]
    off = f0 - s0 // hop
    return codes[:, off : off + f1 - f0]


def iter_encode_windows(
    model: CodecModel,
    blocks: Iterable[torch.Tensor],
    *,
    window_frames: int,
    n_codebooks: int,
    beam: int,
    dtype: torch.dtype,
    seen: list[int] | None = None,
    progress: Progress | None = None,
) -> Iterator[torch.Tensor]:
    """Codes ``[K, f_i]`` of successive windows of mono blocks ``[T_j]`` at the model's rate, each as soon as
    the audio after it (its context) has arrived; ``seen[0]``, if given, counts the samples read, and
    ``progress``, if given, is told each window's seconds."""
    hop, c, w = model.hop_length, encode_context(model), window_frames
    buf = torch.zeros(0)
    buf_start = total = next_frame = 0

    def window(f0: int, f1: int) -> torch.Tensor:
        codes = encode_window(model, buf, buf_start, f0, f1, total, n_codebooks=n_codebooks, beam=beam, dtype=dtype)
        if progress is not None:
            progress((f1 - f0) / model.frame_rate)
        return codes

    for block in blocks:
        buf = torch.cat([buf, block.float()])
        total += block.numel()
        if seen is not None:
            seen[0] = total
        while total >= (next_frame + w + c) * hop:
            yield window(next_frame, next_frame + w)
            next_frame += w
            keep = max(0, (next_frame - c) * hop)
            buf, buf_start = buf[keep - buf_start :], keep
    if total == 0:
        raise VQAudioError("audio is empty")
    n_frames = model.num_frames(total)
    while next_frame < n_frames:
        f1 = min(next_frame + w, n_frames)
        yield window(next_frame, f1)
        next_frame = f1


def encode_padded(
    model: CodecModel, items: list[torch.Tensor], *, n_codebooks: int, beam: int, dtype: torch.dtype
) -> list[torch.Tensor]:
    """Codes ``[K, F_i]`` of mono items ``[T_i]`` through the model in one zero-padded batch. Padding never
    changes the codes: the model masks every position past an item's length after every layer, so each item
    gets exactly the codes it gets alone."""
    lengths = torch.tensor([m.numel() for m in items])
    batch = torch.zeros(len(items), 1, int(lengths.max()))
    for j, m in enumerate(items):
        batch[j, 0, : m.numel()] = m
    with autocast(dtype):
        codes = model.encode(batch, lengths, n_codebooks=n_codebooks, beam=beam)
    return [codes[j, :, : model.num_frames(m.numel())].clone() for j, m in enumerate(items)]


def encode_items(
    model: CodecModel,
    items: Sequence[Iterable[torch.Tensor]],
    *,
    window_frames: int,
    n_codebooks: int,
    beam: int,
    dtype: torch.dtype,
    batch_samples: int | None = None,
) -> list[tuple[torch.Tensor, int]]:
    """Codes ``[K, F_i]`` and length in samples of each item, given as mono blocks ``[T_j]`` at the model's rate.

    Items up to one window long go through :func:`encode_padded`: in one batch, or, given ``batch_samples``,
    in order of length, as many to a batch as fit that many samples once padded (at least one): neighbours in
    length pad little, where a corpus's order mixes short and long files in one batch. A longer
    item (a file is read only until it proves longer) is encoded alone by :func:`iter_encode_windows`, whole
    and in bounded memory.
    """
    limit = window_frames * model.hop_length
    out: list[tuple[torch.Tensor, int] | None] = [None] * len(items)
    short: list[tuple[int, torch.Tensor]] = []  # (position, mono samples)
    for i, blocks in enumerate(items):
        stream = iter(blocks)
        head, read = read_past(stream, limit)
        if read > limit:
            seen = [0]
            pieces = list(
                iter_encode_windows(
                    model,
                    itertools.chain(head, stream),
                    window_frames=window_frames,
                    n_codebooks=n_codebooks,
                    beam=beam,
                    dtype=dtype,
                    seen=seen,
                )
            )
            out[i] = (torch.cat(pieces, dim=1), seen[0])
        elif read == 0:
            raise VQAudioError("audio is empty")
        else:
            short.append((i, torch.cat(head)))
    for group in _length_batches(short, batch_samples):
        batch = encode_padded(model, [m for _, m in group], n_codebooks=n_codebooks, beam=beam, dtype=dtype)
        for codes, (i, m) in zip(batch, group, strict=True):
            out[i] = (codes, m.numel())
    return [item for item in out if item is not None]


def _length_batches(
    items: list[tuple[int, torch.Tensor]], batch_samples: int | None
) -> Iterator[list[tuple[int, torch.Tensor]]]:
    """``(position, samples)`` pairs in batches: all at once, or shortest first within ``batch_samples``."""
    if batch_samples is None:
        if items:
            yield items
        return
    group: list[tuple[int, torch.Tensor]] = []
    for pair in sorted(items, key=lambda pair: pair[1].numel()):
        if group and (len(group) + 1) * pair[1].numel() > batch_samples:
            yield group
            group = []
        group.append(pair)
    if group:
        yield group


def trim_blocks(
    blocks: Iterable[torch.Tensor], total: int, sample_rate: int, progress: Progress | None = None
) -> Iterator[torch.Tensor]:
    """The first ``total`` samples of audio blocks ``[T_i]``, clipped to [-1, 1], without empty blocks;
    ``progress``, if given, is told each block's seconds at ``sample_rate``."""
    remaining = total
    for block in blocks:
        block = block[:remaining].clamp(-1, 1)
        remaining -= block.numel()
        if block.numel():
            yield block
            if progress is not None:
                progress(block.numel() / sample_rate)


def codes_tensor(codes: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Codes as a tensor: a numpy integer array (what a token file holds) becomes int64, as the decoder takes
    codes from either library; a numpy array of anything else is refused rather than cast, like a float tensor."""
    if not isinstance(codes, np.ndarray):
        return codes
    if codes.dtype.kind not in "iu":
        raise VQAudioError(f"codes must be integers, got numpy {codes.dtype}")
    return torch.from_numpy(codes.astype(np.int64))


def check_codes(codes: torch.Tensor, model: CodecModel, name: str) -> None:
    """Refuse codes that ``model`` cannot decode: not ``[K, F]`` integers in ``[0, codebook_size)`` with
    ``1 <= K <= num_codebooks``."""
    if codes.dim() != 2:
        raise VQAudioError(f"codes must be [K, F], got shape {tuple(codes.shape)}")
    if codes.is_floating_point():
        raise VQAudioError(f"codes must be integers, got {codes.dtype}")
    if not 1 <= codes.shape[0] <= model.num_codebooks:
        raise VQAudioError(
            f"--n-codebooks must be between 1 and {model.num_codebooks} for {name}, got {codes.shape[0]}"
        )
    if codes.shape[0] not in model.codebook_counts:
        counts = ", ".join(map(str, model.codebook_counts))
        raise VQAudioError(f"codes of {name} have {counts} rows, not {codes.shape[0]} (multi-scale layout)")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= model.codebook_size):
        raise VQAudioError(f"codes must lie in [0, {model.codebook_size}) for {name}")


class StreamingDecoder:
    """Codes in as they arrive, audio out window by window.

    ``push(codes)`` takes the next ``[K, f]`` code frames (any ``f``, the same ``K`` each time) and returns an
    iterator over the audio ``[window_frames * hop]`` of every window whose codes and right context have
    now arrived; ``finish()`` returns the rest once the stream has ended. Concatenated, the audio equals a
    whole pass over the same codes by the same windows (:meth:`vqaudio.Tokenizer.iter_decode` is this class fed
    all codes at once), whatever the block sizes. Windows are decoded only while the iterators are consumed;
    those left pending are decoded by the next ``push`` or ``finish``.
    """

    def __init__(
        self,
        model: CodecModel,
        vocoder: Vocoder | None,
        *,
        window_frames: int,
        dtype: torch.dtype,
        vocoder_dtype: torch.dtype,
        postfilter: bool,
        speaker: torch.Tensor | None = None,
        name: str = "this model",
    ) -> None:
        self.model, self.vocoder, self.name = model, vocoder, name
        self.window_frames, self.dtype, self.vocoder_dtype = window_frames, dtype, vocoder_dtype
        self.postfilter, self.speaker = postfilter, speaker
        self.context = decode_context(model, vocoder)
        self._codes: torch.Tensor | None = None  # the frames kept, from frame ``_start`` on
        self._start = 0
        self._total = 0  # frames received
        self._next = 0  # first frame not yet decoded
        self._carry: Carry | None = None
        self._finished = False

    @property
    def lookahead_frames(self) -> int:
        """Code frames past a window that must arrive before it is decoded."""
        return self.context

    def push(self, codes: torch.Tensor | np.ndarray) -> Iterator[torch.Tensor]:
        """Add code frames ``[K, f]`` (a tensor or a numpy integer array); audio of the windows now complete."""
        if self._finished:
            raise VQAudioError("this decoder has finished; start a new one")
        codes = codes_tensor(codes)
        check_codes(codes, self.model, self.name)
        codes = codes.long()
        if self._codes is None:
            self._codes = codes.clone()
        elif codes.shape[0] != self._codes.shape[0]:
            raise VQAudioError(f"codes changed from {self._codes.shape[0]} to {codes.shape[0]} codebooks")
        else:
            self._codes = torch.cat([self._codes, codes], dim=1)
        self._total += codes.shape[1]
        return self._drain(final=False)

    def finish(self) -> Iterator[torch.Tensor]:
        """The stream has ended: audio of every window not yet decoded."""
        if self._total == 0:
            raise VQAudioError("there are no code frames to decode")
        self._finished = True
        return self._drain(final=True)

    def _drain(self, final: bool) -> Iterator[torch.Tensor]:
        """Decode the complete windows one by one. Each is computed in inference mode and yielded outside it:
        a context held across ``yield`` would stay on in the caller's code between windows."""
        w, c = self.window_frames, self.context
        while self._next < self._total and (final or self._total >= self._next + w + c):
            f0, f1 = self._next, min(self._next + w, self._total)
            with torch.inference_mode():
                audio = self._window(f0, f1)
            self._next = f1
            keep = max(0, f1 - c)
            if self._codes is not None and keep > self._start:
                self._codes, self._start = self._codes[:, keep - self._start :], keep
            yield audio

    def _window(self, f0: int, f1: int) -> torch.Tensor:
        """Audio ``[(f1 - f0) * hop]`` for code frames ``[f0, f1)``. The back end's running phase at mel frame
        ``f1 * ratio`` is kept (``_carry``), so a back end whose phase is summed over time continues it in
        the next window."""
        assert self._codes is not None
        model, vocoder, c = self.model, self.vocoder, self.context
        g0, g1 = max(0, f0 - c), min(self._total, f1 + c)
        with autocast(self.dtype):
            window = self._codes[None, :, g0 - self._start : g1 - self._start]
            if self.speaker is None:
                out = model.decode(window).float()
            else:
                assert isinstance(model, ConditionalVQVAE)  # the tokenizer checks that a voice applies
                out = model.decode(window, speaker=self.speaker).float()
        if self.postfilter:
            out = model.postfilter(out)
        hop = model.hop_length
        if vocoder is None:
            return out[0, 0, (f0 - g0) * hop : (f1 - g0) * hop]
        ratio = hop // vocoder.hop_length  # mel frames per code frame
        anchor = None if self._carry is None else (self._carry[0] - g0 * ratio, self._carry[1])
        # Whether another window follows is known only from the frames seen: a window decoded before the end
        # always has its full right context, so "f1 < frames seen" agrees with a whole pass.
        probe = (f1 - g0) * ratio if f1 < self._total else None
        with autocast(self.vocoder_dtype):
            made = vocoder.synthesize(out, anchor, probe)
        self._carry = None if made.phase is None else (f1 * ratio, made.phase)
        return made.audio[0].float()[(f0 - g0) * hop : (f1 - g0) * hop]
