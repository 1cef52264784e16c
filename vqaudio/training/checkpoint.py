"""Training checkpoints: written atomically, so a kill at any moment leaves the last good one intact."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqaudio.atomic import atomic_open
from vqaudio.errors import VQAudioError

CHECKPOINT = "checkpoint.pt"


def rng_state() -> dict[str, Any]:
    """Global RNG states as tensors and plain values, so ``weights_only`` loading accepts them."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` through the atomic writer: a crash leaves the previous checkpoint, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as f:
        torch.save(state, f)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors and plain containers only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as e:
        raise VQAudioError(f"{path}: unreadable checkpoint ({e})") from None
