#!/usr/bin/env bash
# Create .venv with vqaudio installed (CPU torch), plus the command-line codecs the benchmarks and tests use.
#   bash scripts/setup.sh          # runtime
#   bash scripts/setup.sh dev      # + test, lint and evaluation tools, and the onnx extra (its tests run in CI)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"

# Debian tools: reference codecs (codec2, opus-tools), espeak-ng for example clips, sox/ffmpeg for conversions.
need=()
for tool in c2enc opusenc espeak-ng sox ffmpeg; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
if [ "${#need[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        codec2 opus-tools espeak-ng sox ffmpeg >/dev/null
fi

python3 -m venv .venv
# The CPU build of torch first: any later requirement that 2.13.0 satisfies then installs nothing more.
.venv/bin/pip install -q torch==2.13.0
if [ "$extras" = dev ]; then
    .venv/bin/pip install -q -e '.[dev,onnx]'
    # EnCodec's architecture for benchmarks/speed.py --encodec. Without its dependencies: it imports torchaudio only
    # for file helpers, torchaudio would pull another torch, and the benchmark stands an empty module in for it.
    .venv/bin/pip install -q --no-deps encodec==0.1.1 einops==0.8.2
else
    .venv/bin/pip install -q -e .
fi
