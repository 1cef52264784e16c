"""Saving and loading models: ``config.json`` + ``model.safetensors``, checksum checked, nothing pickled.

A model directory holds::

    config.json        {"format": 1, "name": ..., "model": <ModelConfig>, "weights": {"file", "sha256"}, "card": {...}}
    model.safetensors  tensors named "codec.<param>" and, when present, "vocoder.<param>"
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vqaudio.atomic import write_atomic
from vqaudio.card import ModelCard
from vqaudio.config import from_dict, to_dict
from vqaudio.errors import ConfigError, ModelError, UnknownKeyError
from vqaudio.models.base import CodecModel
from vqaudio.models.builders import ModelConfig, build_codec, build_vocoder
from vqaudio.vocoders.istft_vocoder import ISTFTVocoder

MODEL_FORMAT = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


@dataclass
class LoadedModel:
    name: str
    config: ModelConfig
    codec: CodecModel | None  # None for a vocoder-only directory (a vocoder training run's export)
    vocoder: ISTFTVocoder | None
    checksum: str  # sha256 of the weights file
    card: ModelCard = field(default_factory=ModelCard)
    path: Path | None = None


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model(
    directory: str | Path,
    name: str,
    config: ModelConfig,
    codec: CodecModel | None,
    vocoder: ISTFTVocoder | None = None,
    *,
    card: ModelCard | dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write ``directory/config.json`` and ``directory/model.safetensors``; returns the directory.

    ``half`` stores floating-point tensors as float16 (half the size; loading casts back to float32). A card
    given as a dict is validated as :meth:`ModelCard.from_dict` does on load.
    """
    card = card if isinstance(card, ModelCard) else ModelCard.from_dict(card or {}, f"{directory}: card")
    from safetensors.torch import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in (("codec", codec), ("vocoder", vocoder)):
        if module is None:
            continue
        for key, value in module.state_dict().items():
            t = value.detach().cpu().contiguous()
            if half and t.is_floating_point():
                t = t.half()
            tensors[f"{prefix}.{key}"] = t
    # One metadata key: safetensors writes the metadata map in hash order, so two keys could swap places from
    # one process to the next and the same weights would get another checksum at every export.
    blob = save(tensors, metadata={"vqaudio": json.dumps({"format": MODEL_FORMAT, "name": name}, sort_keys=True)})
    write_atomic(directory / WEIGHTS_FILE, blob)
    meta = {
        "format": MODEL_FORMAT,
        "name": name,
        "model": to_dict(config),
        "components": [p for p, m in (("codec", codec), ("vocoder", vocoder)) if m is not None],
        "weights": {"file": WEIGHTS_FILE, "sha256": hashlib.sha256(blob).hexdigest()},
        "card": card.to_dict(),
    }
    write_atomic(directory / CONFIG_FILE, (json.dumps(meta, indent=2) + "\n").encode())
    return directory


def load_model(directory: str | Path, *, verify: bool = True) -> LoadedModel:
    """Load a model directory written by :func:`save_model`; :class:`ModelError` on any problem."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg_path = directory / CONFIG_FILE
    if not cfg_path.is_file():
        raise ModelError(f"{directory}: not a vqaudio model directory (no {CONFIG_FILE})")
    try:
        meta = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{cfg_path}: unreadable model config ({e})") from None
    if not isinstance(meta, dict) or "model" not in meta or "weights" not in meta:
        raise ModelError(f"{cfg_path}: not a vqaudio model config")
    fmt = meta.get("format", 0)
    if not isinstance(fmt, int) or not isinstance(meta["weights"], dict):
        raise ModelError(f"{cfg_path}: not a vqaudio model config (bad 'format' or 'weights')")
    if fmt > MODEL_FORMAT:
        raise ModelError(f"{cfg_path}: model format {meta['format']} is newer than this vqaudio reads; upgrade")
    try:
        config = from_dict(ModelConfig, meta["model"], "model")
    except UnknownKeyError as e:
        # The format number only moves when a file's layout changes; a model from a newer vqaudio with a setting
        # this one lacks still says format 1, and lands here.
        raise ModelError(f"{cfg_path}: {e}; if a newer vqaudio made this model, upgrade") from None
    except ConfigError as e:
        raise ModelError(f"{cfg_path}: {e}") from None
    weights = directory / str(meta["weights"].get("file", WEIGHTS_FILE))
    if not weights.is_file():
        raise ModelError(f"{directory}: weights file {weights.name} is missing")
    checksum = sha256_file(weights)
    expected = meta["weights"].get("sha256")
    if verify and checksum != expected:
        raise ModelError(f"{weights}: checksum mismatch (expected {expected}, got {checksum}); the file is corrupt")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise ModelError(f"{weights}: unreadable weights ({e})") from None
    components = meta.get("components", ["codec", "vocoder"])
    codec = build_codec(config) if "codec" in components else None
    vocoder = build_vocoder(config) if "vocoder" in components else None
    for prefix, module in (("codec", codec), ("vocoder", vocoder)):
        if module is None:
            continue
        state = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        ref = module.state_dict()
        state = {k: v.to(ref[k].dtype) if k in ref else v for k, v in state.items()}
        mismatched = [k for k, v in state.items() if k in ref and v.shape != ref[k].shape]
        missing, unexpected = [], []
        if not mismatched:
            missing, unexpected = module.load_state_dict(state, strict=False)
        if missing or unexpected or mismatched:
            raise ModelError(
                f"{weights}: weights do not match the config ({prefix}: "
                f"{len(missing)} missing, {len(unexpected)} unexpected, {len(mismatched)} misshapen tensors)"
            )
    for module in (codec, vocoder):
        if module is not None:
            module.eval()
    card = ModelCard.from_dict(meta.get("card", {}), str(cfg_path))
    return LoadedModel(str(meta.get("name", directory.name)), config, codec, vocoder, checksum, card, directory)
