#!/usr/bin/env bash
# Music recipe: a 24 kHz music tokenizer trained on the Free Music Archive (fma_small: 8,000 30-second clips,
# Creative Commons licenses per track; Defferrard et al., "FMA: A Dataset for Music Analysis", ISMIR 2017).
#
#   bash run.sh                                   # download fma_small (7.2 GB, sha1-checked, resumable)
#   bash run.sh --corpus ../../../shared/data/music --dev-subdir sisec2011   # music on disk, one folder held out
#   bash run.sh --debug --corpus DIR              # tiny model, a few steps
#
# Without --dev-list, the held-out set is fma_small's folder 155 (one of 156), kept out of training.
# Stages and options: see ../common/stages.sh.
set -euo pipefail
cd "$(dirname "$0")"
recipes_dir=$(cd .. && pwd)
name=music-24k
codec_conf=conf/music24k.toml; voc_conf=conf/vocoder24k.toml
debug_codec_conf=conf/debug.toml; debug_voc_conf=conf/debug_vocoder.toml
# Stage 4b fine-tunes the vocoder on the codec's decoded mel through 4 consistency projections; the release
# runs 8, as the speech recipe's does
voc_ft_conf=conf/vocoder24k_finetune.toml; debug_voc_ft_conf=conf/debug_vocoder.toml
consistency_iters=8
eval_rate=24000
min_rate=22050
default_corpus=fma_small
train_subdir=""; dev_subdir=155
download_cmd="import os; from vqaudio.data.download import download_fma; download_fma(os.environ['WORK'] + '/download', 'fma_small')"
release_card=conf/release.card.json  # default codebooks and back end of the release
source "$recipes_dir/common/stages.sh"
