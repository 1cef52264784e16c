"""Discrete units for TTS and speech language models: corpus-scale extraction (batched, resumable, sharded)."""
