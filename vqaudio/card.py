"""The model card: what a model directory says about itself beside its weights, typed and validated once on load.

The card lives under ``"card"`` in a model's ``config.json``. Its defaults (codebooks, code search, back end)
decide what ``tokenize`` and ``resynth`` do when not told; its texts become the model's README. Keys this
version does not know are kept as they are (``extra``), so a card written by a newer vqaudio survives a
re-export by an older one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from vqaudio.errors import ModelError

# Texts of the README, in the order they appear there.
TEXT_FIELDS = ("description", "training_data", "training_time", "results", "license")
# Records of how each part was trained: {"steps": N, "config": {...}}. A model exported from a run carries its
# own record as ``training``; a release carries its parts' as ``codec_training`` and ``vocoder_training``.
RECORD_FIELDS = ("training", "codec_training", "vocoder_training")


@dataclass(frozen=True)
class ModelCard:
    """A model's card. ``None`` defaults mean "not stated": the tokenizer then falls back to all codebooks,
    greedy search and the first back end it has."""

    description: str = ""
    training_data: str = ""
    training_time: str = ""
    results: str = ""
    license: str = ""
    default_codebooks: int | None = None
    default_beam: int | None = None
    default_vocoder: str | None = None
    # Weights of earlier releases that made the same codes, for token files older than the codes checksum.
    compatible_checksums: tuple[str, ...] = ()
    training: dict[str, Any] = field(default_factory=dict)
    codec_training: dict[str, Any] = field(default_factory=dict)
    vocoder_training: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: object, source: str = "model card") -> ModelCard:
        """Validate a card read from JSON; :class:`ModelError` naming the field on a wrong type."""
        if not isinstance(raw, dict):
            raise ModelError(f"{source}: the card must be a JSON object")
        known = {f.name for f in fields(cls)} - {"extra"}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                continue
            if key in TEXT_FIELDS:
                _expect(isinstance(value, str), source, key, "a string")
            elif key == "default_beam":
                # Imported here: chunking imports the models, whose loader imports this module.
                from vqaudio.chunking import MAX_BEAM, is_beam

                # The limit --beam has: a card's default is searched with on every encode.
                _expect(is_beam(value), source, key, f"a whole number from 1 to {MAX_BEAM}")
            elif key == "default_codebooks":
                _expect(
                    isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                    source,
                    key,
                    "a whole number >= 1",
                )
            elif key == "default_vocoder":
                _expect(isinstance(value, str) and bool(value), source, key, "a back end's name")
            elif key == "compatible_checksums":
                ok = isinstance(value, list) and all(isinstance(c, str) for c in value)
                _expect(ok, source, key, "a list of checksum strings")
                value = tuple(c.strip() for c in value if c.strip())
            elif key in RECORD_FIELDS:
                _expect(isinstance(value, dict), source, key, "a JSON object")
            values[key] = value
        extra = {k: v for k, v in raw.items() if k not in known}
        return cls(**values, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The card as ``config.json`` stores it: only the fields that are set, then the unknown ones."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or value in ("", None, (), {}):
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return {**out, **self.extra}

    def record(self, part: str) -> dict[str, Any]:
        """How ``part`` (``codec`` or ``vocoder``) was trained: a run's own record, else the release's."""
        return self.training or getattr(self, f"{part}_training")

    def markdown(self, name: str) -> str:
        """The model's README: its texts, then how each part was trained."""
        lines = [f"# {name}", ""]
        for key in TEXT_FIELDS:
            value = getattr(self, key)
            if value:
                lines += [f"## {key.replace('_', ' ').capitalize()}", "", value, ""]
        for key in ("codec_training", "vocoder_training"):
            record = getattr(self, key)
            if record:
                lines += [f"## {key.replace('_', ' ').capitalize()}", "", *_stage_lines(record), ""]
        return "\n".join(lines)


def _expect(ok: bool, source: str, key: str, what: str) -> None:
    if not ok:
        raise ModelError(f"{source}: card field {key!r} must be {what}")


def _stage_lines(record: dict[str, Any]) -> list[str]:
    """A training record as card lines. A fine-tuning stage counts only its own steps, so say where it started:
    otherwise "steps: 1000" reads as the whole training of a model that began from a finished one."""
    config = record.get("config") or {}
    steps = f"steps: {record.get('steps')}"
    if config.get("init_from"):
        modules = config.get("init_modules") or []
        what = f" ({', '.join(modules)})" if modules else ""
        steps += f", in a stage that started from the weights{what} of {config['init_from']}"
    lines = [steps]
    if config.get("freeze"):
        lines.append(f"frozen: {', '.join(config['freeze'])}")
    if config.get("codec_model"):
        filtered = " and post-filtered" if config.get("codec_postfilter") else ""
        lines.append(f"trained on the log-mel decoded{filtered} by {config['codec_model']}")
        if config.get("postfilter_target"):
            lines.append("target audio given the post-filter's change to the log-mel")
    if config.get("teacher"):
        lines.append(f"encoder distilled from {config['teacher']}")
    # Markdown joins adjacent lines into one paragraph; a trailing backslash keeps them apart.
    return [line + "\\" for line in lines[:-1]] + lines[-1:]


def shipped_models() -> dict[str, Path]:
    """Names of the models installed with the package -> their directories."""
    from importlib import resources

    root = Path(str(resources.files("vqaudio.pretrained")))
    return {p.name: p for p in sorted(root.iterdir()) if (p / "config.json").is_file()}
