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

from vqaudio.tokenfile.compat import assume_model, check_compatible
from vqaudio.tokenfile.header import (
    CHANNEL_HANDLINGS,
    FORMAT_VERSION,
    FORMATS,
    MAGIC,
    UNKNOWN_MODEL_ID,
    TokenFile,
    TokenHeader,
    code_search_id,
    code_search_variant,
    parse_code_search,
)
from vqaudio.tokenfile.packing import bitrate, bits_per_code, pack_codes, unpack_codes
from vqaudio.tokenfile.plain import load_codes, save_codes
from vqaudio.tokenfile.vqt import read_tokens, write_tokens

__all__ = [
    "CHANNEL_HANDLINGS",
    "FORMATS",
    "FORMAT_VERSION",
    "MAGIC",
    "UNKNOWN_MODEL_ID",
    "TokenFile",
    "TokenHeader",
    "assume_model",
    "bitrate",
    "bits_per_code",
    "check_compatible",
    "code_search_id",
    "code_search_variant",
    "parse_code_search",
    "load_codes",
    "pack_codes",
    "read_tokens",
    "save_codes",
    "unpack_codes",
    "write_tokens",
]
