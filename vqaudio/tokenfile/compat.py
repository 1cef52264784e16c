"""Which model may decode a token file: :func:`check_compatible`; :func:`assume_model` for codes with no header."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from vqaudio.errors import TokenFileError
from vqaudio.tokenfile.header import (
    _MIN_CHECKSUM_PREFIX,
    CHANNEL_HANDLINGS,
    UNKNOWN_MODEL_ID,
    TokenHeader,
    _PathLike,
    parse_code_search,
)

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
    codebook_strides: Sequence[int] = (),
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
        codebook_strides: the model's multi-scale layout (empty for codes of one frame rate); the file's must match.

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
    search = parse_code_search(header.code_search) if header.code_search else None
    if search is not None and codes_version is not None and search[0] != codes_version:
        raise TokenFileError(
            f"{name} was tokenized by code search v{search[0]}, but this vqaudio finds codes with v{codes_version} "
            "and would give other codes for the same audio; tokenize the audio again"
        )
    if header.num_codebooks > num_codebooks:
        raise TokenFileError(
            f"{name} has {header.num_codebooks} codebooks but model {model_id} has only {num_codebooks}"
        )
    if tuple(header.codebook_strides) != tuple(codebook_strides):

        def kind(strides: Sequence[int]) -> str:
            return f"multi-scale codes of codebook strides {list(strides)}" if strides else "codes of one frame rate"

        raise TokenFileError(
            f"{name} holds {kind(header.codebook_strides)}, but model {model_id} makes {kind(codebook_strides)}"
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
    codebook_strides: Sequence[int] = (),
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
        codebook_strides=tuple(codebook_strides),
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
