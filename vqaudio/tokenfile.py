"""Token files: how codes ``[K, F]`` and the facts needed to decode them are stored on disk.

``vqaudio tokenize`` writes one of these and ``vqaudio detokenize`` reads it back. The native format is
``.vqt``, a small self-describing binary file (layout in ``docs/token-format.md``)::

    b"VQAT" | version u8 | header length u32 LE | header (UTF-8 JSON) | packed codes | CRC32 u32 LE

Three plain formats exist for people who feed tokens to language models: ``.npy`` (codes only, header
in a ``.npy.json`` sidecar), ``.txt`` (one line of integers per codebook, optional ``.txt.json``
sidecar) and ``.json`` (header and codes in one object). Nothing is ever pickled: a token file must be
safe to open when it came from a stranger.

Every problem a user can cause (missing, truncated, corrupt, future-version or foreign-model files)
raises :class:`~vqaudio.errors.TokenFileError` with a one-line message naming the file.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import IO, Any, Union

import numpy as np
import numpy.typing as npt

from vqaudio.atomic import commit, temp_beside
from vqaudio.errors import TokenFileError

__all__ = [
    "CHANNEL_HANDLINGS",
    "FORMATS",
    "FORMAT_VERSION",
    "MAGIC",
    "UNKNOWN_MODEL_ID",
    "TokenFile",
    "TokenHeader",
    "assume_model",
    "bits_per_code",
    "check_compatible",
    "code_search_id",
    "load_codes",
    "pack_codes",
    "read_tokens",
    "save_codes",
    "unpack_codes",
    "write_tokens",
]

FORMAT_VERSION: int = 1
"""Newest ``.vqt`` layout this vqaudio writes and reads. Bump it for any change to the byte layout."""

MAGIC: bytes = b"VQAT"
"""First four bytes of every ``.vqt`` file."""

FORMATS: tuple[str, ...] = ("vqt", "npy", "txt", "json")
"""Names accepted by :func:`save_codes` and :func:`load_codes` (``fmt=``), also the file suffixes."""

CHANNEL_HANDLINGS: tuple[str, ...] = ("downmix",)
"""How input channels may have been mapped to the model; a reader refuses values it does not know."""

UNKNOWN_MODEL_ID: str = "unknown"
"""Reserved model id of a header made up for codes that came without one (``.npy``/``.txt`` with no
sidecar). :func:`check_compatible` refuses such a header until :func:`assume_model` fills it in."""

# Widest code we pack. 32 bits is a codebook of four billion entries, far past anything trainable, and
# keeps every shift inside uint64 with room to spare.
_MAX_BITS = 32

_PathLike = Union[str, "os.PathLike[str]"]

# magic (4s) | version (B) | header length (I), little-endian with no padding.
_PREFIX = struct.Struct("<4sBI")
_CRC = struct.Struct("<I")

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
        code_search: how the codes were searched, ``"v<N> beam <B>"`` (see :func:`code_search_id`), or ``""`` in
            files written before it existed. ``N`` is :data:`CODES_VERSION` of the vqaudio that wrote the file;
            :func:`check_compatible` refuses a file of another version, whose codes this vqaudio would not give.
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
_OPTIONAL_KEYS = ("codes_checksum", "code_search", "extra")
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
    if not isinstance(code_search, str) or code_search and _parse_code_search(code_search) is None:
        raise TokenFileError(f"{source}: header 'code_search' must look like 'v1 beam 8', got {code_search!r}")
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
    )
    _check_header(header, source)
    return header


def code_search_id(beam: int, version: int) -> str:
    """The header's ``code_search`` for codes found by a beam of ``beam`` (1: greedy) under codes ``version``
    (:data:`vqaudio.models.base.CODES_VERSION`)."""
    return f"v{version} beam {beam}"


def _parse_code_search(text: str) -> tuple[int, int] | None:
    """``"v1 beam 8"`` -> ``(1, 8)``; ``None`` when malformed."""
    m = re.fullmatch(r"v(\d+) beam (\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m and int(m.group(2)) >= 1 else None


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
# Bit packing
# --------------------------------------------------------------------------------------------------


def bits_per_code(codebook_size: int) -> int:
    """Bits needed to store one code of a codebook with ``codebook_size`` entries: ceil(log2), >= 1."""
    if codebook_size < 1:
        raise ValueError(f"codebook_size must be at least 1, got {codebook_size}")
    # (n - 1).bit_length() is the exact integer ceil(log2(n)); no float rounding at powers of two.
    return max(1, (int(codebook_size) - 1).bit_length())


def _check_bits(bits: int) -> None:
    if not 1 <= bits <= _MAX_BITS:
        raise ValueError(f"bits must be between 1 and {_MAX_BITS}, got {bits}")


def _packed_size(num_codes: int, bits: int) -> int:
    return (num_codes * bits + 7) // 8


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """Pack integer codes ``[K, F]`` into ``ceil(K * F * bits / 8)`` bytes.

    Codes are taken row-major (all frames of codebook 0, then codebook 1, ...); each code is written as
    ``bits`` bits, most significant bit first, and the last byte is padded with zero bits.

    Raises:
        ValueError: ``codes`` is not a 2-D integer array or holds a value outside ``[0, 2**bits)``.
    """
    _check_bits(bits)
    arr = np.asarray(codes)
    if arr.ndim != 2 or arr.dtype.kind not in "iu":
        raise ValueError(f"codes must be a 2-D integer array [K, F], got {arr.dtype} {list(arr.shape)}")
    flat = arr.reshape(-1)
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= 2**bits):
        raise ValueError(f"codes must lie in [0, {2**bits}) to be packed in {bits} bits")
    flat = flat.astype(np.uint64)
    # One row of `bits` 0/1 entries per code, MSB in column 0; packbits then reads them in order.
    # Filling column by column keeps memory at one byte per bit instead of 8 bytes per bit.
    bit_matrix = np.empty((flat.size, bits), dtype=np.uint8)
    for col in range(bits):
        bit_matrix[:, col] = (flat >> np.uint64(bits - 1 - col)) & np.uint64(1)
    return np.packbits(bit_matrix.reshape(-1)).tobytes()


def unpack_codes(data: bytes, bits: int, num_codebooks: int, num_frames: int) -> npt.NDArray[np.int64]:
    """Inverse of :func:`pack_codes`: bytes -> int64 codes ``[K, F]``.

    Raises:
        ValueError: ``data`` is not exactly ``ceil(K * F * bits / 8)`` bytes, or its padding bits are
            not zero (a sign of a file written by something else).
    """
    _check_bits(bits)
    if num_codebooks < 0 or num_frames < 0:
        raise ValueError(f"num_codebooks and num_frames must not be negative ({num_codebooks}, {num_frames})")
    num_codes = num_codebooks * num_frames
    expected = _packed_size(num_codes, bits)
    if len(data) != expected:
        raise ValueError(
            f"packed codes should be {expected} bytes for {num_codebooks}x{num_frames} codes of "
            f"{bits} bits, got {len(data)}"
        )
    all_bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    if all_bits[num_codes * bits :].any():
        raise ValueError("padding bits after the last code are not zero")
    bit_matrix = all_bits[: num_codes * bits].reshape(num_codes, bits)
    out = np.zeros(num_codes, dtype=np.int64)
    for col in range(bits):
        out = (out << 1) | bit_matrix[:, col]
    return out.reshape(num_codebooks, num_frames)


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


# --------------------------------------------------------------------------------------------------
# Atomic writing
# --------------------------------------------------------------------------------------------------


def _refuse_existing(paths: list[Path], overwrite: bool) -> None:
    if overwrite:
        return
    for p in paths:
        if p.exists() or p.is_symlink():
            raise TokenFileError(f"{p} already exists; pass --force (overwrite=True) to replace it")


def _write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write into a fresh temp file beside ``path`` and return its name; the caller moves it in place.

    The temp file lives in the same directory so ``os.replace`` is a rename on one file system: readers
    see either the old file or the complete new one, never half of it.
    """
    parent = path.parent
    if not parent.is_dir():
        raise TokenFileError(f"cannot write {path}: directory {parent} does not exist")
    if path.is_dir():
        raise TokenFileError(f"cannot write {path}: it is a directory")
    try:
        tmp = temp_beside(path)
    except OSError as exc:
        raise TokenFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise TokenFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
    return tmp


def _bytes_writer(data: bytes) -> Callable[[IO[bytes]], None]:
    def write(fh: IO[bytes]) -> None:
        fh.write(data)

    return write


def _commit(pairs: list[tuple[Path, Path]]) -> None:
    """Move temp files onto their targets; on failure remove every temp file that is left."""
    try:
        for tmp, target in pairs:
            try:
                commit(tmp, target)
            except OSError as exc:
                raise TokenFileError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        for tmp, _ in pairs:
            tmp.unlink(missing_ok=True)


def _write_files(contents: list[tuple[Path, Callable[[IO[bytes]], None]]], overwrite: bool) -> None:
    _refuse_existing([p for p, _ in contents], overwrite)
    written: list[tuple[Path, Path]] = []
    try:
        for target, write in contents:
            written.append((_write_atomically(target, write), target))
    except BaseException:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        raise
    _commit(written)


# --------------------------------------------------------------------------------------------------
# .vqt
# --------------------------------------------------------------------------------------------------


def _encode_vqt(codes: npt.NDArray[np.int64], header: TokenHeader, source: str) -> bytes:
    header_bytes = _header_json_text(header, source).encode("utf-8")
    body = (
        _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_bytes))
        + header_bytes
        + pack_codes(codes, bits_per_code(header.codebook_size))
    )
    return body + _CRC.pack(zlib.crc32(body) & 0xFFFFFFFF)


def write_tokens(path: _PathLike, codes: np.ndarray, header: TokenHeader, *, overwrite: bool = False) -> None:
    """Write codes ``[K, F]`` and their header to a ``.vqt`` file, atomically.

    Raises:
        TokenFileError: ``path`` exists and ``overwrite`` is False; the header is invalid; the codes are
            not 2-D integers of the header's shape within ``[0, codebook_size)``; the write fails.
    """
    target = Path(path)
    _check_header(header, f"cannot write {target}")
    arr = _validated_codes(codes, header, f"cannot write {target}")
    data = _encode_vqt(arr, header, str(target))
    _write_files([(target, _bytes_writer(data))], overwrite)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise TokenFileError(f"{path}: no such token file") from exc
    except IsADirectoryError as exc:
        raise TokenFileError(f"{path} is a directory, not a token file") from exc
    except OSError as exc:
        raise TokenFileError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _read_text(path: Path) -> str:
    data = _read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TokenFileError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def read_tokens(path: _PathLike) -> TokenFile:
    """Read a ``.vqt`` file written by :func:`write_tokens`.

    Checks run in an order that gives the most useful message: magic, then version (a newer layout may
    change everything after the version byte, even the CRC), then length, then CRC, then the header and
    payload.

    Raises:
        TokenFileError: missing file, not a token file, newer format version, truncated, corrupt (CRC
            mismatch), invalid header, payload of the wrong length, or codes outside the codebook.
    """
    p = Path(path)
    data = _read_bytes(p)
    if not data:
        raise TokenFileError(f"{p} is empty, not a vqaudio token file")
    if data[: len(MAGIC)] != MAGIC[: len(data)]:
        raise TokenFileError(f"{p} is not a vqaudio token file (it does not start with {MAGIC!r})")
    if len(data) < _PREFIX.size:
        raise TokenFileError(f"{p} is truncated: {len(data)} bytes is shorter than the fixed file prefix")
    _, version, header_len = _PREFIX.unpack_from(data)
    _check_version(version, str(p))
    header_end = _PREFIX.size + header_len
    if len(data) < header_end + _CRC.size:
        raise TokenFileError(
            f"{p} is truncated: it has {len(data)} bytes but its header alone needs {header_end + _CRC.size}"
        )

    header_bytes = data[_PREFIX.size : header_end]
    header: TokenHeader | None
    try:
        header = _header_from_json(json.loads(header_bytes.decode("utf-8")), str(p))
        bits = bits_per_code(header.codebook_size)
        expected_len = header_end + _packed_size(header.num_codebooks * header.num_frames, bits) + _CRC.size
    except (ValueError, RecursionError, TokenFileError):
        header, expected_len = None, -1

    (stored_crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    actual_crc = zlib.crc32(data[: -_CRC.size]) & 0xFFFFFFFF
    if stored_crc != actual_crc:
        # A cut file almost always fails the CRC; if the header is readable, say which it was.
        if header is not None and len(data) < expected_len:
            raise TokenFileError(f"{p} is truncated: it has {len(data)} bytes, its header declares {expected_len}")
        raise TokenFileError(f"{p} is corrupt: CRC32 mismatch (stored {stored_crc:08x}, computed {actual_crc:08x})")

    if header is None:
        # The CRC is fine, so the writer itself stored a bad header; re-parse to get the precise reason.
        try:
            parsed = json.loads(header_bytes.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise TokenFileError(f"{p}: header is not valid UTF-8 JSON ({exc})") from exc
        header = _header_from_json(parsed, str(p))

    payload = data[header_end : -_CRC.size]
    bits = bits_per_code(header.codebook_size)
    expected_payload = _packed_size(header.num_codebooks * header.num_frames, bits)
    if len(payload) != expected_payload:
        raise TokenFileError(
            f"{p}: payload is {len(payload)} bytes but {header.num_codebooks}x{header.num_frames} codes of "
            f"{bits} bits need {expected_payload}"
        )
    try:
        codes = unpack_codes(payload, bits, header.num_codebooks, header.num_frames)
    except ValueError as exc:
        raise TokenFileError(f"{p}: {exc}") from exc
    return TokenFile(header=header, codes=_validated_codes(codes, header, str(p)))


# --------------------------------------------------------------------------------------------------
# Compatibility
# --------------------------------------------------------------------------------------------------


def _checksums_match(a: str, b: str) -> bool:
    a, b = a.strip().lower(), b.strip().lower()
    if a == b:
        return True
    n = min(len(a), len(b))
    return n >= _MIN_CHECKSUM_PREFIX and a[:n] == b[:n]


def _short(checksum: str) -> str:
    return checksum[:16] if checksum else "none recorded"


def check_compatible(
    header: TokenHeader,
    model_id: str,
    model_checksum: str,
    codebook_size: int,
    num_codebooks: int,
    *,
    codes_checksum: str = "",
    codes_version: int | None = None,
    also_accept: Sequence[str] = (),
    source: _PathLike | None = None,
) -> None:
    """Refuse to decode tokens with a model that did not make them.

    The file may hold fewer codebooks than the model has (a residual quantizer decodes from its first K
    codebooks, at a lower bitrate) but never more, and its codebook may not be larger than the model's.
    Checksums match when one is a prefix (at least 8 hex chars) of the other, since files may store a
    shortened checksum. When both the header and the caller give a codes checksum, that one is compared and
    the weights checksum is not: the codes mean the same thing to any decoder of the same encoder and
    codebooks.

    Args:
        header: the token file's header.
        model_id, model_checksum, codebook_size, num_codebooks: the model about to decode.
        codes_checksum: the model's codes checksum, if known.
        codes_version: the caller's :data:`~vqaudio.models.base.CODES_VERSION`; a file whose ``code_search``
            names another version is refused.
        also_accept: weights checksums of earlier models that made the same codes (a model card's
            ``compatible_checksums``), accepted for a file that carries only a weights checksum.
        source: the token file's path, used in messages.

    Raises:
        TokenFileError: the header has no model (see :func:`assume_model`), another model id or
            checksum, more codebooks or a larger codebook than the model, or codes of another code search version.
    """
    name = str(source) if source is not None else "the token file"
    if header.is_unknown:
        raise TokenFileError(
            f"{name} does not say which model made it (no header or sidecar); "
            "pass --model to decode it with a model you choose"
        )
    if header.model_id != model_id:
        raise TokenFileError(
            f"{name} was made by model {header.model_id} (checksum {_short(header.model_checksum)}), not {model_id}"
        )
    if header.codes_checksum and codes_checksum:
        if not _checksums_match(header.codes_checksum, codes_checksum):
            raise TokenFileError(
                f"{name} was made by model {header.model_id} with codes checksum {_short(header.codes_checksum)}, "
                f"but the loaded {model_id} has codes checksum {_short(codes_checksum)}; "
                "its encoder or codebooks differ"
            )
    elif not any(_checksums_match(header.model_checksum, c) for c in (model_checksum, *also_accept)):
        raise TokenFileError(
            f"{name} was made by model {header.model_id} with checksum {_short(header.model_checksum)}, "
            f"but the loaded {model_id} has checksum {_short(model_checksum)}; its weights differ"
        )
    search = _parse_code_search(header.code_search) if header.code_search else None
    if search is not None and codes_version is not None and search[0] != codes_version:
        raise TokenFileError(
            f"{name} was tokenized by code search v{search[0]}, but this vqaudio finds codes with v{codes_version} "
            "and would give other codes for the same audio; tokenize the audio again"
        )
    if header.num_codebooks > num_codebooks:
        raise TokenFileError(
            f"{name} has {header.num_codebooks} codebooks but model {model_id} has only {num_codebooks}"
        )
    if header.codebook_size > codebook_size:
        raise TokenFileError(
            f"{name} has codebook size {header.codebook_size} but model {model_id} has only {codebook_size}"
        )


def assume_model(
    header: TokenHeader,
    *,
    model_id: str,
    model_checksum: str,
    sample_rate: int,
    frame_rate: float,
    codes_checksum: str = "",
) -> TokenHeader:
    """Fill in a made-up header (codes loaded without one) with the model the user chose.

    The original audio is taken to be mono at the model's rate, exactly ``F`` frames long, so nothing
    is trimmed. ``codebook_size`` stays at its inferred lower bound (largest code + 1), which lets
    :func:`check_compatible` still refuse codes the model cannot look up.

    Raises:
        ValueError: the header is not a made-up one (a real header must not be overridden).
    """
    if not header.is_unknown:
        raise ValueError(f"header already names model {header.model_id}; refusing to replace it")
    return replace(
        header,
        model_id=model_id,
        model_checksum=model_checksum,
        codes_checksum=codes_checksum,
        sample_rate=int(sample_rate),
        frame_rate=float(frame_rate),
        original_length=round(header.num_frames * sample_rate / frame_rate),
        original_sample_rate=int(sample_rate),
        original_channels=1,
    )


def _unknown_header(codes: npt.NDArray[np.int64]) -> TokenHeader:
    """The header given to codes that came without one: shape and a codebook-size lower bound only."""
    k, f = codes.shape
    return TokenHeader(
        model_id=UNKNOWN_MODEL_ID,
        model_checksum="",
        sample_rate=0,
        frame_rate=0.0,
        codebook_size=max(2, int(codes.max()) + 1) if codes.size else 2,
        num_codebooks=k,
        num_frames=f,
        original_length=0,
        original_sample_rate=0,
        original_channels=0,
        channel_handling=CHANNEL_HANDLINGS[0],
    )


# --------------------------------------------------------------------------------------------------
# .npy / .txt / .json
# --------------------------------------------------------------------------------------------------


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _json_bytes(obj: dict[str, Any]) -> bytes:
    # The header was already checked to be serialisable; indent so people can read the sidecar.
    return (json.dumps(obj, ensure_ascii=False, allow_nan=False, indent=1) + "\n").encode("utf-8")


def _wrapped_header(header: TokenHeader) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "header": header.to_json()}


def _parse_wrapped(obj: object, source: str) -> TokenHeader:
    """Header from a sidecar or ``.json`` object ``{"format_version": 1, "header": {...}, ...}``."""
    if not isinstance(obj, dict):
        raise TokenFileError(f"{source}: expected a JSON object, got {type(obj).__name__}")
    # format_version is optional so hand-made files work; it exists so the JSON layout can change.
    _check_version(obj.get("format_version", 1), source)
    if "header" not in obj:
        raise TokenFileError(f"{source}: has no 'header'")
    return _header_from_json(obj["header"], source)


def _load_json(path: Path) -> object:
    try:
        return json.loads(_read_text(path))
    except (ValueError, RecursionError) as exc:
        raise TokenFileError(f"{path} is not valid JSON ({exc})") from exc


def _header_for(path: Path, codes: npt.NDArray[np.int64]) -> TokenHeader:
    """The sidecar's header when there is one (checked against the codes), else a made-up one."""
    side = _sidecar(path)
    if not side.exists():
        return _unknown_header(codes)
    return _parse_wrapped(_load_json(side), str(side))


def _codes_from_rows(rows: object, source: str) -> npt.NDArray[np.int64]:
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise TokenFileError(f"{source}: 'codes' must be a list of lists of integers [K][F]")
    for i, row in enumerate(rows):
        if len(row) != len(rows[0]):
            raise TokenFileError(
                f"{source}: codes row {i} has {len(row)} codes, row 0 has {len(rows[0])} "
                "(every codebook needs one code per frame)"
            )
        for j, v in enumerate(row):
            if type(v) is not int:
                raise TokenFileError(f"{source}: codes row {i}, frame {j} is {v!r}, not an integer")
            if v < 0:
                raise TokenFileError(f"{source}: codes row {i}, frame {j} is negative ({v})")
    try:
        return np.array(rows, dtype=np.int64).reshape(len(rows), len(rows[0]) if rows else 0)
    except OverflowError as exc:
        raise TokenFileError(f"{source}: a code is too large for a 64-bit integer") from exc


def _parse_txt(text: str, source: str) -> npt.NDArray[np.int64]:
    lines = text.splitlines()
    # Editors like to add blank lines at the end; blank lines are only codes when every row is empty.
    while lines and not lines[-1].strip() and any(line.strip() for line in lines):
        lines.pop()
    rows: list[list[int]] = []
    for lineno, line in enumerate(lines, start=1):
        row: list[int] = []
        for tok in line.split():
            # Only plain ASCII digits: int() would also take "1_000", "+3" or Arabic-Indic digits.
            if tok.isascii() and tok.isdigit():
                row.append(int(tok))
            elif tok.startswith("-") and tok[1:].isascii() and tok[1:].isdigit():
                raise TokenFileError(f"{source} line {lineno}: code {tok} is negative")
            else:
                raise TokenFileError(f"{source} line {lineno}: {tok!r} is not a non-negative integer")
        if rows and len(row) != len(rows[0]):
            raise TokenFileError(
                f"{source} line {lineno} has {len(row)} codes, line 1 has {len(rows[0])} "
                "(every codebook needs one code per frame)"
            )
        rows.append(row)
    if not rows:
        raise TokenFileError(f"{source} holds no codes")
    try:
        return np.array(rows, dtype=np.int64).reshape(len(rows), len(rows[0]))
    except OverflowError as exc:
        raise TokenFileError(f"{source}: a code is too large for a 64-bit integer") from exc


def _load_npy(path: Path) -> npt.NDArray[np.int64]:
    if not path.exists():
        raise TokenFileError(f"{path}: no such token file")
    try:
        # allow_pickle=False: an object array in a .npy is a pickle, and unpickling runs code.
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise TokenFileError(f"{path} is not a plain .npy integer array ({exc})") from exc
    except (OSError, EOFError) as exc:
        raise TokenFileError(f"cannot read {path} as .npy ({exc})") from exc
    if not isinstance(arr, np.ndarray):
        raise TokenFileError(f"{path} is not a .npy array")
    if arr.ndim != 2 or arr.dtype.kind not in "iu":
        raise TokenFileError(f"{path} must hold a 2-D integer array [K, F], got {arr.dtype} {list(arr.shape)}")
    if arr.size and int(arr.min()) < 0:
        raise TokenFileError(f"{path} holds negative codes")
    if arr.size and arr.dtype == np.uint64 and int(arr.max()) > np.iinfo(np.int64).max:
        raise TokenFileError(f"{path} holds codes too large for a 64-bit integer")
    if arr.shape[0] < 1:
        raise TokenFileError(f"{path} holds no codes")
    return arr.astype(np.int64)


def _check_shape(codes: npt.NDArray[np.int64], header: TokenHeader, path: Path) -> None:
    if codes.shape != (header.num_codebooks, header.num_frames):
        raise TokenFileError(
            f"{path} holds codes of shape {list(codes.shape)} but its header says "
            f"[{header.num_codebooks}, {header.num_frames}]"
        )


def save_codes(path: _PathLike, codes: np.ndarray, header: TokenHeader, *, fmt: str, overwrite: bool = False) -> None:
    """Save codes ``[K, F]`` with their header in one of :data:`FORMATS`, atomically.

    ``"vqt"`` is :func:`write_tokens`. ``"npy"`` and ``"txt"`` also write the header to a sidecar
    ``<path>.json``; ``"json"`` writes ``{"format_version", "header", "codes"}`` in one file.

    Raises:
        ValueError: ``fmt`` is not one of :data:`FORMATS`.
        TokenFileError: a target file exists and ``overwrite`` is False, or as :func:`write_tokens`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown token format {fmt!r}; choose one of {', '.join(FORMATS)}")
    target = Path(path)
    if fmt == "vqt":
        write_tokens(target, codes, header, overwrite=overwrite)
        return
    _check_header(header, f"cannot write {target}")
    _header_json_text(header, str(target))  # refuse unserialisable `extra` before writing anything
    arr = _validated_codes(codes, header, f"cannot write {target}")

    if fmt == "json":
        obj = {**_wrapped_header(header), "codes": arr.tolist()}
        data = _json_bytes(obj)
        _write_files([(target, _bytes_writer(data))], overwrite)
        return

    side_data = _json_bytes(_wrapped_header(header))
    main: Callable[[IO[bytes]], None]
    if fmt == "npy":

        def main(fh: IO[bytes]) -> None:
            np.save(fh, arr, allow_pickle=False)

    else:
        text = "".join(" ".join(map(str, row)) + "\n" for row in arr.tolist())
        text_bytes = text.encode("ascii")

        def main(fh: IO[bytes]) -> None:
            fh.write(text_bytes)

    _write_files([(target, main), (_sidecar(target), _bytes_writer(side_data))], overwrite)


def load_codes(path: _PathLike, *, fmt: str | None = None) -> TokenFile:
    """Load codes saved by :func:`save_codes` (or by hand), inferring ``fmt`` from the suffix if None.

    An ``.npy`` or ``.txt`` file without its ``.json`` sidecar gets a made-up header (model id
    ``"unknown"``, rates 0, codebook size = largest code + 1); :func:`check_compatible` refuses it until
    :func:`assume_model` names a model.

    Raises:
        ValueError: ``fmt`` is given but not one of :data:`FORMATS`.
        TokenFileError: the suffix is unknown, or the file or its sidecar is missing parts, malformed,
            from a newer format version, or disagrees with its header.
    """
    p = Path(path)
    if fmt is None:
        fmt = p.suffix.lower().lstrip(".")
        if fmt not in FORMATS:
            raise TokenFileError(f"cannot tell the token format of {p} from its suffix; use .vqt, .npy, .txt or .json")
    elif fmt not in FORMATS:
        raise ValueError(f"unknown token format {fmt!r}; choose one of {', '.join(FORMATS)}")

    if fmt == "vqt":
        return read_tokens(p)

    codes: npt.NDArray[np.int64]
    if fmt == "json":
        obj = _load_json(p)
        header = _parse_wrapped(obj, str(p))
        assert isinstance(obj, dict)  # _parse_wrapped refused anything else
        if "codes" not in obj:
            hint = f"; is it a sidecar? load {p.with_suffix('')} instead" if p.name.count(".") > 1 else ""
            raise TokenFileError(f"{p} has no 'codes'{hint}")
        codes = _codes_from_rows(obj["codes"], str(p))
    else:
        codes = _load_npy(p) if fmt == "npy" else _parse_txt(_read_text(p), str(p))
        header = _header_for(p, codes)
    _check_shape(codes, header, p)
    return TokenFile(header=header, codes=_validated_codes(codes, header, str(p)))
