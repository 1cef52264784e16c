"""The optional ``onnx`` extra: import its packages, or say in one line how to install them."""

from __future__ import annotations

import importlib
from types import ModuleType

from vqaudio.errors import VQAudioError

INSTALL_HINT = "pip install 'vqaudio[onnx]'"


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (``onnxruntime``, ``onnx``, ``onnxscript``) or raise a one-line :class:`VQAudioError`
    naming the extra, e.g. ``the onnxruntime runtime needs onnxruntime: pip install 'vqaudio[onnx]'``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise VQAudioError(f"{purpose} needs {module}, which is not installed: {INSTALL_HINT}") from None
