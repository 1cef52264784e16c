"""The model card: typed, validated once on load, written back as it was read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vqaudio.card import ModelCard
from vqaudio.errors import ModelError
from vqaudio.models.io import load_model
from vqaudio.tokenizer import load


def test_card_round_trips_with_unknown_fields() -> None:
    raw = {
        "description": "a codec",
        "default_codebooks": 3,
        "default_beam": 8,
        "default_vocoder": "hybrid",
        "compatible_checksums": ["ab" * 32],
        "codec_training": {"steps": 5},
        "from_a_newer_vqaudio": {"kept": True},
    }
    card = ModelCard.from_dict(raw)
    assert card.default_codebooks == 3 and card.compatible_checksums == ("ab" * 32,)
    assert card.extra == {"from_a_newer_vqaudio": {"kept": True}}
    assert card.to_dict() == raw
    assert ModelCard.from_dict(card.to_dict()) == card
    assert card.markdown("x").startswith("# x\n\n## Description\n\na codec")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("default_codebooks", 0),
        ("default_codebooks", "3"),
        ("default_beam", True),
        ("default_beam", 0),
        ("default_beam", 1000),  # past MAX_BEAM: a width whose search would take minutes per second of audio
        ("default_vocoder", ""),
        ("compatible_checksums", ["ok", 7]),
        ("description", ["not", "text"]),
        ("codec_training", 5),
    ],
)
def test_bad_card_fields_are_refused_on_load(tiny_model_dir: Path, tmp_path: Path, field: str, value: object) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in tiny_model_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    meta = json.loads((bad / "config.json").read_text())
    meta["card"] = {**meta["card"], field: value}
    (bad / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=field) as exc:
        load_model(bad)
    assert "\n" not in str(exc.value)


def test_card_defaults_reach_the_tokenizer(tiny_model_dir: Path) -> None:
    tok = load(tiny_model_dir)
    card = load_model(tiny_model_dir).card
    assert tok.card == card
    assert tok.default_beam == (card.default_beam or 1)
    assert tok.default_vocoder in tok.vocoders
