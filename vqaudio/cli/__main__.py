"""``python -m vqaudio.cli``: the ``vqaudio`` command, e.g. under ``torchrun -m vqaudio.cli train ...``."""

from vqaudio.cli import main

main()
