"""Models shipped with vqaudio: one folder per model (config.json, model.safetensors, README.md)."""
