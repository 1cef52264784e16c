#!/usr/bin/env bash
# LibriSpeech recipe: from nothing to a trained, evaluated, exported speech tokenizer.
#
#   bash run.sh                                   # download LibriSpeech train-clean-100 + dev-clean, then train
#   bash run.sh --corpus /data/LibriSpeech        # use a LibriSpeech-layout root already on disk
#   bash run.sh --corpus ../../../shared/data/speech --dev-root ../../../shared/data \
#               --dev-list ../../../shared/data/speech/dev.list   # the shared corpus, dev list held out
#   bash run.sh --stage 3 --stop-stage 3          # one stage only
#   bash run.sh --debug --corpus DIR              # tiny model, a few steps (what CI runs)
#   --workdir DIR puts data/, exp/ and download/ below DIR instead of this folder.
#
# Stages (each writes exp/<name>/.stageN.done and is skipped when that marker exists):
#   1 download   official archives (resumable, md5-checked); skipped with --corpus
#   2 prepare    manifests: data/train.tsv (dev list excluded), data/valid.tsv
#   3 codec      train the VQ-VAE (conf/speech16k.toml)
#   4 vocoder    train the learned vocoder on the same features (conf/vocoder16k.toml)
#   5 export     bundle codec + vocoder into exp/<name>/release (config.json, model.safetensors, README.md)
#   6 evaluate   PESQ-WB, STOI, SI-SDR, mel distance, bitrate on the held-out list -> exp/<name>/results.md
set -euo pipefail
cd "$(dirname "$0")"

stage=1; stop_stage=6; work=.; corpus=""; dev_list=""; dev_root=""; debug=0; name=speech-16k; steps=""; voc_steps=""
vqaudio=${VQAUDIO:-vqaudio}; python=${PYTHON:-python3}
while [ $# -gt 0 ]; do
    case "$1" in
        --stage) stage=$2; shift 2 ;;
        --stop-stage) stop_stage=$2; shift 2 ;;
        --corpus) corpus=$2; shift 2 ;;
        --dev-list) dev_list=$2; shift 2 ;;
        --dev-root) dev_root=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        --workdir) work=$2; shift 2 ;;
        --steps) steps=$2; shift 2 ;;
        --vocoder-steps) voc_steps=$2; shift 2 ;;
        --debug) debug=1; name=debug; shift ;;
        *) echo "unknown option $1" >&2; exit 1 ;;
    esac
done

exp=$work/exp/$name; data=$work/data/$name
mkdir -p "$exp" "$data"
codec_conf=conf/speech16k.toml; voc_conf=conf/vocoder16k.toml
if [ "$debug" = 1 ]; then codec_conf=conf/debug.toml; voc_conf=conf/debug_vocoder.toml; fi
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ] && [ ! -f "$exp/.stage$1.done" ]; }
done_stage() { touch "$exp/.stage$1.done"; echo "stage $1 done"; }
step_args() { if [ -n "$1" ]; then echo "--steps $1"; fi; }

if [ -z "$corpus" ]; then corpus=$work/download/LibriSpeech; fi

if run_stage 1; then
    if [ "$corpus" = "$work/download/LibriSpeech" ]; then
        echo "stage 1: downloading LibriSpeech train-clean-100 and dev-clean"
        "$python" -c "from vqaudio.data.download import download_librispeech as d; d('$work/download', ['train-clean-100', 'dev-clean'])"
    else
        echo "stage 1: using the corpus at $corpus"
    fi
    done_stage 1
fi

if run_stage 2; then
    echo "stage 2: manifests"
    excl=(); [ -n "$dev_list" ] && excl=(--exclude-list "$dev_list")
    train_src="$corpus"; [ -d "$corpus/train-clean-100" ] && [ -z "$dev_list" ] && train_src="$corpus/train-clean-100"
    "$vqaudio" prepare "$train_src" -o "$data/train.tsv" --min-sample-rate 16000 "${excl[@]}" --force
    if [ -n "$dev_list" ]; then
        root=${dev_root:-$(dirname "$dev_list")}
        sed "s|^|$root/|" "$dev_list" > "$data/valid.list"
    else
        find "$corpus/dev-clean" -name '*.flac' | sort > "$data/valid.list"
    fi
    done_stage 2
fi

if run_stage 3; then
    echo "stage 3: training the codec ($codec_conf)"
    "$vqaudio" train --config "$codec_conf" --out "$exp/codec" --resume --no-progress $(step_args "$steps") \
        --set "data.train=[\"$data/train.tsv\"]" \
        --set "data.valid=[\"$data/valid.list\"]"
    done_stage 3
fi

if run_stage 4; then
    echo "stage 4: training the vocoder ($voc_conf)"
    "$vqaudio" train --config "$voc_conf" --out "$exp/vocoder" --resume --no-progress $(step_args "$voc_steps") \
        --set "data.train=[\"$data/train.tsv\"]" \
        --set "data.valid=[\"$data/valid.list\"]"
    done_stage 4
fi

if run_stage 5; then
    echo "stage 5: export"
    "$vqaudio" export --codec "$exp/codec/model" --vocoder "$exp/vocoder/model" --name "$name" \
        --output "$exp/release" --force
    done_stage 5
fi

if run_stage 6; then
    echo "stage 6: evaluation on $(wc -l < "$data/valid.list") held-out files"
    systems=("vqaudio:$exp/release@1+learned" "vqaudio:$exp/release@3+learned" "vqaudio:$exp/release@3+griffin-lim")
    "$python" ../../benchmarks/quality.py --list "$data/valid.list" --root . --systems "${systems[@]}" \
        --out "$exp/results.md"
    done_stage 6
fi
