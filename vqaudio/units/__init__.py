"""Discrete units for TTS and speech language models: corpus-scale extraction (batched, resumable, sharded), the
formats the field reads (fairseq/textless, JSONL), and units of one utterance to speech and back."""

from vqaudio.units.formats import Utterance, dedup, expand, read_units
from vqaudio.units.speak import Units, speak, units

__all__ = ["Units", "Utterance", "dedup", "expand", "read_units", "speak", "units"]
