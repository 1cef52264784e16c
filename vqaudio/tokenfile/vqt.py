"""``.vqt``: the native binary container (layout in ``docs/token-format.md``)."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from vqaudio.errors import TokenFileError
from vqaudio.tokenfile.header import (
    MAGIC,
    TokenFile,
    TokenHeader,
    _check_header,
    _check_version,
    _header_from_json,
    _header_json_text,
    _PathLike,
    _validated_codes,
)
from vqaudio.tokenfile.packing import _packed_size, bits_per_code, pack_codes, unpack_codes
from vqaudio.tokenfile.storage import _bytes_writer, _read_bytes, _write_files

# --------------------------------------------------------------------------------------------------
# .vqt
# --------------------------------------------------------------------------------------------------

# magic (4s) | version (B) | header length (I), little-endian with no padding.
_PREFIX = struct.Struct("<4sBI")
_CRC = struct.Struct("<I")


def _stored(codes: npt.NDArray[np.int64], header: TokenHeader) -> npt.NDArray[np.int64]:
    """The codes as the payload holds them: ``[K, F]`` for one frame rate; for multi-scale codes (version 2) every
    level's ``[K_l, F_l]`` in turn, coarsest first, as one row."""
    layout = header.layout
    if layout is None:
        return codes
    return np.concatenate([lv.reshape(-1) for lv in layout.split(codes)])[None]


def _from_stored(flat: npt.NDArray[np.int64], header: TokenHeader) -> npt.NDArray[np.int64]:
    layout = header.layout
    if layout is None:
        return flat
    levels, start = [], 0
    for k, f in layout.level_shapes(header.num_codebooks, header.num_frames):
        levels.append(flat[0, start : start + k * f].reshape(k, f))
        start += k * f
    return layout.join(levels)


def _encode_vqt(codes: npt.NDArray[np.int64], header: TokenHeader, source: str) -> bytes:
    header_bytes = _header_json_text(header, source).encode("utf-8")
    # Codes of one frame rate keep version 1, which every vqaudio reads; multi-scale codes need version 2.
    version = 2 if header.codebook_strides else 1
    body = (
        _PREFIX.pack(MAGIC, version, len(header_bytes))
        + header_bytes
        + pack_codes(_stored(codes, header), bits_per_code(header.codebook_size))
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
    if bool(header.codebook_strides) != (version == 2):
        raise TokenFileError(
            f"{p}: a version {version} file must {'' if version == 2 else 'not '}hold multi-scale codes"
        )
    stored = (1, header.num_codebooks * header.num_frames) if header.codebook_strides else None
    try:
        rows, frames = stored or (header.num_codebooks, header.num_frames)
        codes = _from_stored(unpack_codes(payload, bits, rows, frames), header)
    except ValueError as exc:
        raise TokenFileError(f"{p}: {exc}") from exc
    return TokenFile(header=header, codes=_validated_codes(codes, header, str(p)))
