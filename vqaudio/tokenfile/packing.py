"""Bit packing of codes: ``K x F`` integers of ``b`` bits each, row-major, little-endian within a byte stream."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Widest code we pack. 32 bits is a codebook of four billion entries, far past anything trainable, and
# keeps every shift inside uint64 with room to spare.
_MAX_BITS = 32


# --------------------------------------------------------------------------------------------------
# Bit packing
# --------------------------------------------------------------------------------------------------


def bits_per_code(codebook_size: int) -> int:
    """Bits needed to store one code of a codebook with ``codebook_size`` entries: ceil(log2), >= 1."""
    if codebook_size < 1:
        raise ValueError(f"codebook_size must be at least 1, got {codebook_size}")
    # (n - 1).bit_length() is the exact integer ceil(log2(n)); no float rounding at powers of two.
    return max(1, (int(codebook_size) - 1).bit_length())


def bitrate(frame_rate: float, num_codebooks: int, codebook_size: int) -> float:
    """Bits per second of fixed-width codes: every frame stores ``num_codebooks`` codes of
    :func:`bits_per_code` bits. The one bitrate formula of the package (models, token files, the CLI)."""
    return float(frame_rate) * num_codebooks * bits_per_code(codebook_size)


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
