"""vqaudio: discrete audio tokenizers that train and run on a plain CPU."""

from __future__ import annotations

__version__ = "0.1.0"
