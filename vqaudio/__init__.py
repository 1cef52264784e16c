"""vqaudio: discrete audio tokenizers that train and run on a plain CPU.

The public API is imported lazily, so ``import vqaudio`` stays cheap (torch loads on first use)::

    tok = vqaudio.load("speech-16k")
    codes = tok.encode("speech.wav").codes      # [K, F]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "load": "vqaudio.tokenizer",
    "shipped_models": "vqaudio.card",
    "Tokenizer": "vqaudio.tokenizer",
    "Encoded": "vqaudio.encoded",
    "ModelCard": "vqaudio.card",
    "AudioData": "vqaudio.audio",
    "load_audio": "vqaudio.audio",
    "save_audio": "vqaudio.audio",
    "TokenFile": "vqaudio.tokenfile",
    "TokenHeader": "vqaudio.tokenfile",
    "read_tokens": "vqaudio.tokenfile",
    "write_tokens": "vqaudio.tokenfile",
    "save_codes": "vqaudio.tokenfile",
    "load_codes": "vqaudio.tokenfile",
    "load_model": "vqaudio.models.io",
    "save_model": "vqaudio.models.io",
    "VQAudioError": "vqaudio.errors",
    "AudioError": "vqaudio.errors",
    "TokenFileError": "vqaudio.errors",
    "ModelError": "vqaudio.errors",
}

# Spelled out (not derived from _EXPORTS) so linters and IDEs can read it.
__all__ = [
    "__version__",
    "load",
    "shipped_models",
    "Tokenizer",
    "Encoded",
    "ModelCard",
    "AudioData",
    "load_audio",
    "save_audio",
    "TokenFile",
    "TokenHeader",
    "read_tokens",
    "write_tokens",
    "save_codes",
    "load_codes",
    "load_model",
    "save_model",
    "VQAudioError",
    "AudioError",
    "TokenFileError",
    "ModelError",
]

if TYPE_CHECKING:
    from vqaudio.audio import AudioData, load_audio, save_audio
    from vqaudio.card import ModelCard, shipped_models
    from vqaudio.encoded import Encoded
    from vqaudio.errors import AudioError, ModelError, TokenFileError, VQAudioError
    from vqaudio.models.io import load_model, save_model
    from vqaudio.tokenfile import TokenFile, TokenHeader, load_codes, read_tokens, save_codes, write_tokens
    from vqaudio.tokenizer import Tokenizer, load


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vqaudio' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
