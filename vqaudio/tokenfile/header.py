"""The token header (what decodes the codes), its JSON form and its checks, and the shared code checks."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from vqaudio.errors import TokenFileError
from vqaudio.tokenfile.levels import CodeLayout
from vqaudio.tokenfile.packing import _MAX_BITS

FORMAT_VERSION: int = 2
"""Newest ``.vqt`` layout this vqaudio writes and reads. Bump it for any change to the byte layout. Version 2
stores multi-scale codes level by level; codes of one frame rate are still written as version 1."""

MAGIC: bytes = b"VQAT"
"""First four bytes of every ``.vqt`` file."""

FORMATS: tuple[str, ...] = ("vqt", "npy", "txt", "json")
"""Names accepted by :func:`save_codes` and :func:`load_codes` (``fmt=``), also the file suffixes."""

CHANNEL_HANDLINGS: tuple[str, ...] = ("downmix",)
"""How input channels may have been mapped to the model; a reader refuses values it does not know."""

UNKNOWN_MODEL_ID: str = "unknown"
"""Reserved model id of a header made up for codes that came without one (``.npy``/``.txt`` with no
sidecar). :func:`check_compatible` refuses such a header until :func:`assume_model` fills it in."""


_PathLike = Union[str, "os.PathLike[str]"]


# Checksums may be stored shortened (a 16-hex-char prefix is plenty to tell weight files apart), so two
# checksums match when the shorter is a prefix of the longer -- but only if that prefix is long enough
# that a match is not a coincidence.
_MIN_CHECKSUM_PREFIX = 8


# --------------------------------------------------------------------------------------------------
# Header
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenHeader:
    """Everything a decoder needs besides the codes themselves.

    Attributes:
        model_id: name of the model that made the codes, e.g. ``"speech-16k"``.
        model_checksum: sha256 hex digest (or a prefix of it) of that model's weight file.
        sample_rate: the model's sample rate in Hz.
        frame_rate: code frames per second.
        codebook_size: entries per codebook (cardinality), at least 2.
        num_codebooks: K, the number of codebooks stored (may be fewer than the model has).
        num_frames: F, the number of code frames stored.
        original_length: samples of the input audio at the model's sample rate; the decode is trimmed
            to this length, since the last frame usually covers padding.
        original_sample_rate: sample rate of the input file before resampling.
        original_channels: channel count of the input file.
        channel_handling: how input channels were mapped to the model; ``"downmix"`` is the only value.
        codes_checksum: the model's :meth:`~vqaudio.models.base.CodecModel.codes_checksum` (encoder, codebooks
            and analysis settings), or ``""`` in files written before it existed. When the file and the model
            both have one, it replaces ``model_checksum`` in :func:`check_compatible`, so a new decoder or
            vocoder for the same codes still decodes the file.
        code_search: how the codes were searched, ``"v<N> beam <B>"`` (see :func:`code_search_id`; an int8
            encoder's codes append ``+onnx-int8-encoder``), or ``""`` in
            files written before it existed. ``N`` is :data:`CODES_VERSION` of the vqaudio that wrote the file;
            :func:`check_compatible` refuses a file of another version, whose codes this vqaudio would not give.
        codebook_strides: for multi-scale codes, each codebook's stride in finest frames, in quantization order
            (:mod:`vqaudio.tokenfile.levels`); ``num_codebooks`` and ``num_frames`` then count rows and superframes
            of the superframe layout, ``frame_rate`` is the superframe rate, and :meth:`levels` gives each level's
            rate and shape. Empty for codes of one frame rate.
        extra: free-form JSON-serialisable metadata; readers keep it and never interpret it.
    """

    model_id: str
    model_checksum: str
    sample_rate: int
    frame_rate: float
    codebook_size: int
    num_codebooks: int
    num_frames: int
    original_length: int
    original_sample_rate: int
    original_channels: int
    channel_handling: str
    codes_checksum: str = ""
    code_search: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    codebook_strides: tuple[int, ...] = ()

    @property
    def layout(self) -> CodeLayout | None:
        """The multi-scale layout of the codes, ``None`` for codes of one frame rate."""
        return CodeLayout(tuple(self.codebook_strides)) if self.codebook_strides else None

    def levels(self) -> list[tuple[float, int, int]]:
        """``(frame_rate, num_codebooks, num_frames)`` of each level, coarsest first (one level for codes of one
        frame rate)."""
        layout = self.layout
        if layout is None:
            return [(self.frame_rate, self.num_codebooks, self.num_frames)]
        shapes = layout.level_shapes(self.num_codebooks, self.num_frames)
        return [(self.frame_rate * layout.superframe / s, k, f) for s, (k, f) in zip(layout.rates, shapes, strict=True)]

    @property
    def is_unknown(self) -> bool:
        """True for a made-up header (codes loaded without one): its model and rates are unknown."""
        return self.model_id == UNKNOWN_MODEL_ID

    def to_json(self) -> dict[str, Any]:
        """The header as a JSON-ready dict (plain ``int``/``float``/``str``; ``extra`` copied).

        ``codes_checksum`` is written only when known, so a header read from an older file writes back unchanged.
        """
        d = {
            "model_id": str(self.model_id),
            "model_checksum": str(self.model_checksum),
            "sample_rate": int(self.sample_rate),
            "frame_rate": float(self.frame_rate),
            "codebook_size": int(self.codebook_size),
            "num_codebooks": int(self.num_codebooks),
            "num_frames": int(self.num_frames),
            "original_length": int(self.original_length),
            "original_sample_rate": int(self.original_sample_rate),
            "original_channels": int(self.original_channels),
            "channel_handling": str(self.channel_handling),
            "extra": dict(self.extra),
        }
        if self.codes_checksum:
            d["codes_checksum"] = str(self.codes_checksum)
        if self.code_search:
            d["code_search"] = str(self.code_search)
        if self.codebook_strides:
            d["codebook_strides"] = [int(v) for v in self.codebook_strides]
            # Redundant with the strides, for readers that take the levels as they are stored.
            d["levels"] = [{"frame_rate": r, "num_codebooks": k, "num_frames": f} for r, k, f in self.levels()]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TokenHeader:
        """Build and validate a header from :meth:`to_json` output; unknown keys are ignored.

        Raises:
            TokenFileError: a key is missing, has the wrong type or an impossible value.
        """
        return _header_from_json(d, "token header")


_STR_KEYS = ("model_id", "model_checksum", "channel_handling")
# Keys a header may lack: "codes_checksum" and "code_search" arrived after the first files were written.
_OPTIONAL_KEYS = ("codes_checksum", "code_search", "extra", "codebook_strides")
_INT_KEYS = (
    "sample_rate",
    "codebook_size",
    "num_codebooks",
    "num_frames",
    "original_length",
    "original_sample_rate",
    "original_channels",
)


def _is_int(value: object) -> bool:
    # bool is an int subclass, but `"num_frames": true` is a broken file, not the number 1.
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _header_from_json(d: object, source: str) -> TokenHeader:
    """Parse a header dict, naming ``source`` in every error."""
    if not isinstance(d, dict):
        raise TokenFileError(f"{source}: header must be a JSON object, got {type(d).__name__}")
    missing = [f.name for f in fields(TokenHeader) if f.name not in _OPTIONAL_KEYS and f.name not in d]
    if missing:
        raise TokenFileError(f"{source}: header is missing {', '.join(repr(k) for k in missing)}")
    for key in _STR_KEYS:
        if not isinstance(d[key], str):
            raise TokenFileError(f"{source}: header {key!r} must be a string, got {d[key]!r}")
    for key in _INT_KEYS:
        if not _is_int(d[key]):
            raise TokenFileError(f"{source}: header {key!r} must be an integer, got {d[key]!r}")
    frame_rate = d["frame_rate"]
    if not isinstance(frame_rate, (int, float)) or isinstance(frame_rate, bool):
        raise TokenFileError(f"{source}: header 'frame_rate' must be a number, got {frame_rate!r}")
    extra = d.get("extra", {})
    if not isinstance(extra, dict):
        raise TokenFileError(f"{source}: header 'extra' must be a JSON object, got {extra!r}")
    codes_checksum = d.get("codes_checksum", "")
    if not isinstance(codes_checksum, str):
        raise TokenFileError(f"{source}: header 'codes_checksum' must be a string, got {codes_checksum!r}")
    code_search = d.get("code_search", "")
    if not isinstance(code_search, str) or code_search and parse_code_search(code_search) is None:
        raise TokenFileError(f"{source}: header 'code_search' must look like 'v1 beam 8', got {code_search!r}")
    strides = d.get("codebook_strides", [])
    if not isinstance(strides, list) or not all(_is_int(v) for v in strides):
        raise TokenFileError(f"{source}: header 'codebook_strides' must be a list of integers, got {strides!r}")
    header = TokenHeader(
        model_id=d["model_id"],
        model_checksum=d["model_checksum"],
        sample_rate=int(d["sample_rate"]),
        frame_rate=float(frame_rate),
        codebook_size=int(d["codebook_size"]),
        num_codebooks=int(d["num_codebooks"]),
        num_frames=int(d["num_frames"]),
        original_length=int(d["original_length"]),
        original_sample_rate=int(d["original_sample_rate"]),
        original_channels=int(d["original_channels"]),
        channel_handling=d["channel_handling"],
        codes_checksum=codes_checksum,
        code_search=code_search,
        extra=dict(extra),
        codebook_strides=tuple(int(v) for v in strides),
    )
    _check_header(header, source)
    if header.codebook_strides and "levels" in d and d["levels"] != header.to_json()["levels"]:
        raise TokenFileError(f"{source}: header 'levels' disagree with its codebook_strides and shape")
    return header


_VARIANT = r"[a-z0-9][a-z0-9-]*"  # of a code search: see code_search_id


def code_search_id(beam: int, version: int, variant: str = "") -> str:
    """The header's ``code_search`` for codes found by a beam of ``beam`` (1: greedy) under codes ``version``
    (:data:`vqaudio.models.base.CODES_VERSION`), e.g. ``"v1 beam 8"``. ``variant`` names a path whose codes may
    differ from PyTorch's float32 encoder's (``onnx-int8-encoder``, :mod:`vqaudio.runtime.int8`) and is appended
    after a ``+`` (``"v1 beam 8+onnx-int8-encoder"``), so tools that compare identities refuse to mix its codes
    with those of the float encoder (:func:`code_search_variant`)."""
    if variant and not re.fullmatch(_VARIANT, variant):
        raise ValueError(f"a code search variant is lower-case letters, digits and '-', got {variant!r}")
    return f"v{version} beam {beam}" + (f"+{variant}" if variant else "")


def parse_code_search(text: str) -> tuple[int, int] | None:
    """``"v1 beam 8"`` (or ``"v1 beam 8+onnx-int8-encoder"``) -> ``(1, 8)``; ``None`` when malformed."""
    m = re.fullmatch(rf"v(\d+) beam (\d+)(?:\+{_VARIANT})?", text)
    return (int(m.group(1)), int(m.group(2))) if m and int(m.group(2)) >= 1 else None


def code_search_variant(text: str) -> str:
    """The variant of a ``code_search`` (``"onnx-int8-encoder"``), ``""`` for PyTorch's float32 codes (and for
    files that record no code search): codes of two variants must not be mixed."""
    return text.partition("+")[2]


def _check_header(h: TokenHeader, source: str) -> None:
    """Refuse impossible values. A made-up (unknown) header may leave rates and originals at 0."""
    for key in _STR_KEYS:
        if not isinstance(getattr(h, key), str):
            raise TokenFileError(f"{source}: header {key!r} must be a string, got {getattr(h, key)!r}")
    for key in _INT_KEYS:
        if not _is_int(getattr(h, key)):
            raise TokenFileError(f"{source}: header {key!r} must be an integer, got {getattr(h, key)!r}")
    if not isinstance(h.frame_rate, (int, float, np.floating)) or isinstance(h.frame_rate, bool):
        raise TokenFileError(f"{source}: header 'frame_rate' must be a number, got {h.frame_rate!r}")
    if not isinstance(h.extra, dict):
        raise TokenFileError(f"{source}: header 'extra' must be a dict, got {h.extra!r}")
    if not h.model_id:
        raise TokenFileError(f"{source}: header 'model_id' is empty")
    if not 2 <= h.codebook_size <= 2**_MAX_BITS:
        raise TokenFileError(
            f"{source}: header 'codebook_size' is {h.codebook_size}; it must be between 2 and 2**{_MAX_BITS}"
        )
    if h.num_codebooks < 1:
        raise TokenFileError(f"{source}: header 'num_codebooks' is {h.num_codebooks}; it must be at least 1")
    if h.codebook_strides:
        try:
            CodeLayout(tuple(h.codebook_strides)).check_rows(h.num_codebooks)
        except ValueError as exc:
            raise TokenFileError(f"{source}: header 'codebook_strides': {exc}") from None
    if h.num_frames < 0 or h.original_length < 0:
        raise TokenFileError(f"{source}: header 'num_frames' and 'original_length' must not be negative")
    if h.channel_handling not in CHANNEL_HANDLINGS:
        raise TokenFileError(
            f"{source}: channel handling {h.channel_handling!r} is unknown to this vqaudio "
            f"(it knows {', '.join(CHANNEL_HANDLINGS)}) -- upgrade vqaudio"
        )
    # Rates of 0 are how a made-up header says "unknown"; a real header must have real rates.
    low = 0 if h.is_unknown else 1
    if h.sample_rate < low or h.original_sample_rate < low or h.original_channels < low:
        raise TokenFileError(
            f"{source}: header 'sample_rate', 'original_sample_rate' and 'original_channels' "
            f"must be positive (got {h.sample_rate}, {h.original_sample_rate}, {h.original_channels})"
        )
    if not math.isfinite(h.frame_rate) or h.frame_rate < 0 or (h.frame_rate == 0 and not h.is_unknown):
        raise TokenFileError(f"{source}: header 'frame_rate' is {h.frame_rate}; it must be positive")
    if h.is_unknown:
        return
    # The encoder makes ceil(original_length / hop) frames (at least one) for original_length samples. One frame
    # more is tolerated, no more: a header that claims hours of audio over a few frames (or the reverse)
    # was edited or corrupted, and its length must not be trusted by a decoder, `info` or a progress bar.
    hop = h.sample_rate / h.frame_rate
    expected = max(1, math.ceil(h.original_length / hop)) if h.original_length else 0
    if abs(h.num_frames - expected) > 1:
        raise TokenFileError(
            f"{source}: header fields disagree: 'original_length' {h.original_length} samples "
            f"({h.original_length / h.sample_rate:.2f} s at {h.sample_rate} Hz) would take {expected} frames at "
            f"{h.frame_rate:g} Hz, but 'num_frames' is {h.num_frames}"
        )
    # Nor one frame fewer: the frames decode to num_frames * hop samples, so a longer original cannot be made
    # and a decoder would write less than the header promises. Rounded as compat.py fills a made-up header.
    made = round(h.num_frames * h.sample_rate / h.frame_rate)
    if h.original_length > made:
        raise TokenFileError(
            f"{source}: header fields disagree: 'original_length' {h.original_length} samples is more than "
            f"its {h.num_frames} frames make ({made} samples at {h.frame_rate:g} Hz)"
        )


def _header_json_text(header: TokenHeader, source: str) -> str:
    try:
        # allow_nan=False: NaN/Infinity are not JSON and other tools would choke on them.
        return json.dumps(header.to_json(), ensure_ascii=False, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise TokenFileError(f"cannot write {source}: header 'extra' is not JSON-serialisable ({exc})") from exc


@dataclass(frozen=True)
class TokenFile:
    """What a token file holds: the header and the codes, int64 ``[K, F]``."""

    header: TokenHeader
    codes: npt.NDArray[np.int64]


# --------------------------------------------------------------------------------------------------
# Validation shared by all formats
# --------------------------------------------------------------------------------------------------


def _validated_codes(codes: object, header: TokenHeader, action: str) -> npt.NDArray[np.int64]:
    """Check codes against their header; ``action`` starts each message ("cannot write x.vqt", "x.npy")."""
    arr = np.asarray(codes)
    if arr.ndim != 2:
        raise TokenFileError(f"{action}: codes must be 2-D [K, F], got shape {list(arr.shape)}")
    if arr.dtype.kind not in "iu":
        raise TokenFileError(f"{action}: codes must be integers, got dtype {arr.dtype}")
    if arr.shape != (header.num_codebooks, header.num_frames):
        raise TokenFileError(
            f"{action}: codes have shape {list(arr.shape)} but the header says "
            f"[{header.num_codebooks}, {header.num_frames}] (num_codebooks, num_frames)"
        )
    if arr.size:
        bad = (arr < 0) | (arr >= header.codebook_size)
        if bad.any():
            k, f = (int(i) for i in np.argwhere(bad)[0])
            raise TokenFileError(
                f"{action}: code {int(arr[k, f])} at codebook {k}, frame {f} is outside "
                f"0..{header.codebook_size - 1} (codebook size {header.codebook_size})"
            )
    # uint64 codes above 2**63 were caught by the range check (codebook_size <= 2**32) above.
    return arr.astype(np.int64, copy=True)


def _check_version(version: object, source: str) -> None:
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TokenFileError(f"{source}: invalid token format version {version!r}")
    if version > FORMAT_VERSION:
        raise TokenFileError(
            f"{source} was made by a newer vqaudio (format v{version}); "
            f"this vqaudio reads up to v{FORMAT_VERSION} -- upgrade"
        )
