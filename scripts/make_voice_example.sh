#!/usr/bin/env bash
# Make examples/voice2.wav: a second, synthetic voice (espeak-ng, female variant) for trying voice conversion:
#   vqaudio convert examples/hello.wav converted.wav --voice examples/voice2.wav
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp --suffix .wav)
trap 'rm -f "$tmp"' EXIT
espeak-ng -v en-us+f3 -s 150 -w "$tmp" \
    "This is a second voice. Units carry the words, and the decoder is told who is speaking."
sox "$tmp" -r 16000 -c 1 -b 16 examples/voice2.wav
