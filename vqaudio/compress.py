"""``.vqz``: token files entropy-coded with the token prior's probabilities.

A ``.vqt`` spends ``ceil(log2(codebook_size))`` bits on every code. The prior predicts each code from the
ones before it, and a range coder (``constriction``) spends about ``-log2 p(code)`` bits instead. Both sides
compute the probabilities with :class:`~vqaudio.prior.integer.IntegerPrior`, exact integer arithmetic run
frame by frame, so a file compressed on one CPU decompresses on any other.

Layout (all integers little-endian)::

    magic "VQAZ" | version u8 | header length u32 | header (UTF-8 JSON) | payload (u32 words) | CRC-32 u32

The header holds the token header of the codes (model, codes checksum, code search, lengths) and the prior's
name and weights checksum; decompressing with another prior or model is refused. The CRC covers every byte
before it.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vqaudio.atomic import write_atomic
from vqaudio.encoded import Encoded
from vqaudio.errors import TokenFileError, VQAudioError
from vqaudio.prior.integer import IntegerPrior, frequencies
from vqaudio.prior.io import PriorCard
from vqaudio.tokenfile import TokenFile, TokenHeader, code_search_variant
from vqaudio.tokenizer import Tokenizer

VQZ_MAGIC = b"VQAZ"
VQZ_VERSION = 1
_PREFIX = struct.Struct("<4sBI")
_CRC = struct.Struct("<I")


@dataclass(frozen=True)
class VqzFile:
    """A parsed ``.vqz``: the codes' token header, the prior that coded them, and the coded words."""

    header: TokenHeader
    prior_name: str
    prior_checksum: str
    words: np.ndarray  # uint32


def _categorical() -> Any:
    import constriction

    return constriction.stream.model.Categorical(perfect=False)


def encode_codes(codes: np.ndarray, prior: IntegerPrior) -> np.ndarray:
    """Codes ``[K, F]`` (``K`` = the prior's codebooks) -> range-coded ``uint32`` words.

    The probabilities of all frames are computed at once (:meth:`IntegerPrior.all_logits`, exactly those the
    frame-by-frame decoder computes) and the symbols coded in the decoder's order: frame by frame, and within
    a frame codebook by codebook.
    """
    import constriction

    k_total = prior.config.num_codebooks
    if codes.ndim != 2 or codes.shape[0] != k_total:
        raise VQAudioError(f"the prior codes {k_total} codebooks; these codes have {codes.shape[0]}")
    encoder = constriction.stream.queue.RangeEncoder()
    if codes.shape[1]:
        freqs = frequencies(prior.all_logits(codes))  # [K, F, V]
        order = freqs.transpose(1, 0, 2).reshape(-1, freqs.shape[-1]).astype(np.float64)  # frame-major
        symbols = np.ascontiguousarray(codes.T.reshape(-1), dtype=np.int32)
        encoder.encode(symbols, _categorical(), order)
    return np.asarray(encoder.get_compressed(), dtype=np.uint32)


def decode_codes(words: np.ndarray, prior: IntegerPrior, num_frames: int) -> np.ndarray:
    """Range-coded words -> codes ``[K, num_frames]``, the exact inverse of :func:`encode_codes`."""
    import constriction

    k_total = prior.config.num_codebooks
    model = _categorical()
    decoder = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(words, dtype=np.uint32))
    codes = np.zeros((k_total, num_frames), dtype=np.int64)
    state = prior.start()
    for f in range(num_frames):
        frame = codes[:, f]
        for k in range(k_total):
            freqs = prior.frame_freqs(state, k, frame)
            frame[k] = int(decoder.decode(model, freqs[None].astype(np.float64))[0])
        prior.push(state, frame)
    return codes


def to_bytes(vqz: VqzFile) -> bytes:
    head = {"token_header": vqz.header.to_json(), "prior": {"name": vqz.prior_name, "checksum": vqz.prior_checksum}}
    head_bytes = json.dumps(head, sort_keys=True).encode("utf-8")
    body = _PREFIX.pack(VQZ_MAGIC, VQZ_VERSION, len(head_bytes)) + head_bytes + vqz.words.astype("<u4").tobytes()
    return body + _CRC.pack(zlib.crc32(body) & 0xFFFFFFFF)


def from_bytes(data: bytes, source: str) -> VqzFile:
    """Parse and check a ``.vqz``; every problem is a one-line :class:`TokenFileError`."""
    if not data:
        raise TokenFileError(f"{source} is empty, not a .vqz file")
    if data[:4] != VQZ_MAGIC[: len(data[:4])] or len(data) < _PREFIX.size + _CRC.size:
        raise TokenFileError(f"{source} is not a vqaudio compressed token file (.vqz)")
    _, version, head_len = _PREFIX.unpack_from(data)
    if version > VQZ_VERSION:
        raise TokenFileError(f"{source} is .vqz version {version}; this vqaudio reads up to {VQZ_VERSION}: upgrade")
    (stored,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if stored != zlib.crc32(data[: -_CRC.size]) & 0xFFFFFFFF:
        raise TokenFileError(f"{source} is corrupt or truncated (CRC-32 mismatch)")
    end = _PREFIX.size + head_len
    payload = data[end : -_CRC.size]
    if end > len(data) - _CRC.size or len(payload) % 4:
        raise TokenFileError(f"{source} is corrupt: its lengths do not add up")
    try:
        head = json.loads(data[_PREFIX.size : end].decode("utf-8"))
        header = TokenHeader.from_json(head["token_header"])
        prior_name, prior_checksum = str(head["prior"]["name"]), str(head["prior"]["checksum"])
    except (ValueError, KeyError, TypeError) as e:
        raise TokenFileError(f"{source}: unreadable .vqz header ({e})") from None
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    return VqzFile(header=header, prior_name=prior_name, prior_checksum=prior_checksum, words=words)


def read_vqz(path: str | Path) -> VqzFile:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise TokenFileError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise TokenFileError(f"{p} is a directory, not a .vqz file") from None
    except OSError as e:
        raise TokenFileError(f"cannot read {p}: {e.strerror or e}") from None
    return from_bytes(data, str(p))


def write_vqz(path: str | Path, vqz: VqzFile, *, overwrite: bool = False) -> None:
    p = Path(path)
    try:
        write_atomic(p, to_bytes(vqz), overwrite=overwrite)
    except FileExistsError:
        raise TokenFileError(f"{p} exists; pass --force to replace it") from None
    except OSError as e:
        raise TokenFileError(f"cannot write {p}: {e.strerror or e}") from None


def compress(codes: np.ndarray, header: TokenHeader, prior: IntegerPrior, card: PriorCard) -> VqzFile:
    """Codes ``[K, F]`` and their header -> a :class:`VqzFile` coded with ``prior``."""
    if header.model_id != card.codec or header.codes_checksum[:16] != card.codes_checksum[:16]:
        raise VQAudioError(
            f"these codes were made by {header.model_id}; the prior {card.name} models {card.codec}'s codes"
        )
    _check_search(header, card)
    words = encode_codes(np.asarray(codes, dtype=np.int64), prior)
    return VqzFile(header=header, prior_name=card.name, prior_checksum=card.checksum, words=words)


def decompress(vqz: VqzFile, prior: IntegerPrior, card: PriorCard, source: str = "the .vqz file") -> np.ndarray:
    """The codes ``[K, F]`` of a :class:`VqzFile`, given the prior that coded it."""
    if vqz.prior_name != card.name or vqz.prior_checksum != card.checksum:
        raise TokenFileError(
            f"{source} was coded with prior {vqz.prior_name} ({vqz.prior_checksum[:16]}); "
            f"the loaded prior is {card.name} ({card.checksum[:16]})"
        )
    _check_search(vqz.header, card, source)
    return decode_codes(vqz.words, prior, vqz.header.num_frames)


def _check_search(header: TokenHeader, card: PriorCard, source: str = "these tokens") -> None:
    """Refuse codes of another code-search variant than the prior's (an int8 encoder's codes against a prior of
    PyTorch's, or the reverse, :func:`vqaudio.tokenfile.code_search_variant`): the codes would still round-trip,
    but two kinds of codes would pass for one."""
    ours, theirs = code_search_variant(header.code_search), code_search_variant(card.code_search)
    if ours != theirs:
        raise VQAudioError(
            f"{source}: codes found by code search {header.code_search!r}, but the prior {card.name} models codes "
            f"found by {card.code_search!r}; an int8 encoder's codes and the float encoder's must not be mixed"
        )


# -- with a tokenizer ---------------------------------------------------------------------------------------


def coder_for(tok: Tokenizer) -> tuple[IntegerPrior, PriorCard]:
    """The integer prior that codes ``tok``'s codes (from the model's folder)."""
    from vqaudio.prior.pairing import prior_for

    model, card = prior_for(tok)
    return IntegerPrior(model), card


def compress_tokens(
    tok: Tokenizer, tokens: Encoded | TokenFile, coder: tuple[IntegerPrior, PriorCard] | None = None
) -> VqzFile:
    """Entropy-code ``tokens`` (from ``tok.encode`` or a token file ``tok`` made) with ``tok``'s prior
    (``coder``, from :func:`coder_for`, when the caller has it already)."""
    prior, card = coder or coder_for(tok)
    header = tokens.header() if isinstance(tokens, Encoded) else tokens.header
    tok.check_compatible(header)
    codes = tokens.codes.numpy() if isinstance(tokens, Encoded) else np.asarray(tokens.codes)
    if codes.shape[0] != prior.config.num_codebooks:
        raise VQAudioError(
            f"the prior of {tok.name} codes {prior.config.num_codebooks} codebooks; these tokens have "
            f"{codes.shape[0]} (tokenize with -k {prior.config.num_codebooks})"
        )
    return compress(codes, header, prior, card)


def decompress_tokens(tok: Tokenizer, vqz: VqzFile, source: str = "the .vqz file") -> TokenFile:
    """The token file a :class:`VqzFile` holds: the exact codes and header that were compressed."""
    prior, card = coder_for(tok)
    tok.check_compatible(vqz.header, source)
    return TokenFile(header=vqz.header, codes=decompress(vqz, prior, card, source))
