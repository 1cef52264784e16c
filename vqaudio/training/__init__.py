"""Training: configs, the loop, checkpoints and the per-model steps."""
