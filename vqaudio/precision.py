"""CPU arithmetic: whether this CPU has bfloat16 in hardware, and the precision names the API and CLI accept."""

from __future__ import annotations

import torch

from vqaudio.errors import VQAudioError

PRECISIONS = ("auto", "float32", "bfloat16")


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


def autocast(dtype: torch.dtype) -> torch.autocast:
    """CPU autocast to bfloat16 when ``dtype`` is bfloat16; a no-op context otherwise."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)
