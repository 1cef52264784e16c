"""Release a trained codec (and its separately trained vocoder) as one model directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from vqaudio.errors import ModelError
from vqaudio.models.io import load_model, save_model


def export_release(
    codec_dir: str | Path,
    output: str | Path,
    name: str,
    *,
    vocoder_dir: str | Path | None = None,
    card: dict[str, Any] | None = None,
    half: bool = True,
) -> Path:
    """Write ``output/config.json`` + ``output/model.safetensors`` + ``output/README.md`` (the model card).

    The vocoder must have been trained on the same mel features the codec decodes to.
    """
    codec = load_model(codec_dir)
    if codec.codec is None:
        raise ModelError(f"{codec_dir}: holds no codec")
    config = codec.config
    vocoder = None
    card = dict(card or {})
    card.setdefault("codec_training", codec.card.get("training", {}))
    if vocoder_dir is not None:
        voc = load_model(vocoder_dir)
        if voc.vocoder is None:
            raise ModelError(f"{vocoder_dir}: holds no vocoder")
        if voc.config.mel != config.mel:
            raise ModelError(f"{vocoder_dir}: vocoder was trained on other mel features than the codec decodes")
        config = dataclasses.replace(config, vocoder=voc.config.vocoder)
        vocoder = voc.vocoder
        card.setdefault("vocoder_training", voc.card.get("training", {}))
    path = save_model(output, name, config, codec.codec, vocoder, card=card, half=half)
    (Path(output) / "README.md").write_text(model_card_markdown(name, card))
    return path


def model_card_markdown(name: str, card: dict[str, Any]) -> str:
    lines = [f"# {name}", ""]
    for key in ("description", "training_data", "training_time", "results", "license"):
        if key in card:
            value = card[key]
            lines += [f"## {key.replace('_', ' ').capitalize()}", ""]
            lines += [str(value), ""]
    for key in ("codec_training", "vocoder_training"):
        t = card.get(key) or {}
        if t:
            lines += [f"## {key.replace('_', ' ').capitalize()}", "", f"steps: {t.get('steps')}", ""]
    return "\n".join(lines)
