# Shared stages of the vqaudio recipes, sourced by recipes/<name>/run.sh after it sets:
#   name           default model name (exp/<name>, data/<name>)
#   codec_conf, voc_conf, debug_codec_conf, debug_voc_conf   configs below the recipe's conf/
#   codec_gan_conf, debug_codec_gan_conf optional: train the codec's decoder on adversarially, tokens fixed (3b)
#   voc_ft_conf, debug_voc_ft_conf   optional: fine-tune the vocoder on the codec's decoded mel (stage 4b)
#   min_rate       skip training files below this sample rate
#   download_cmd   python statement that downloads the corpus into $work/download (stage 1)
#   default_corpus where download_cmd leaves the corpus
#   train_subdir   sub-folder of a corpus root that holds the training audio (empty: the whole root)
#   dev_subdir     sub-folder of a corpus root that holds the held-out audio (when no --dev-list is given)
#   eval_rate      optional: sample rate stage 6 scores at (default 16000; PESQ-WB always uses a 16 kHz copy)
#   postfilter     optional: strength of the spectral post-filter stage 5 fits on the training audio
#   postfilter_offset, postfilter_below
#                  optional: its offset and its deepening below the centre (vqaudio export --postfilter-*)
#   consistency_iters
#                  optional: consistency projections the released learned vocoder runs (vqaudio export
#                  --consistency-iters); they have no weights, so it may run more than it was trained through
#   release_card   optional: model-card JSON stage 5 starts from (default_codebooks, default_vocoder, ...); the
#                  post-filter is fitted at its default_codebooks and stage 6 scores that setting
#
# Options: --stage N --stop-stage N --corpus DIR --dev-list FILE --dev-root DIR --dev-subdir DIR --name NAME --workdir DIR
#          --exclude FILE (more paths to keep out of training, e.g. audio whose license does not allow it)
#          --steps N --vocoder-steps N --debug
#          --jobs N (2: train stage 3's codec and stage 4's first step at once, one thread each; the default on 2+ cores)
# Stages (each writes exp/<name>/.stageN.done and is skipped when that marker exists):
#   1 download   (skipped with --corpus)
#   2 prepare    data/<name>/train.tsv (held-out files excluded) and data/<name>/valid.list
#   3 codec      train the VQ-VAE (with --jobs 2, alongside stage 4's first step), then (with codec_gan_conf)
#                its decoder with adversarial losses, encoder and codebooks frozen
#   4 vocoder    train the learned vocoder on the same features, then (with voc_ft_conf) fine-tune it on
#                what the codec of stage 3 (3b when it runs) decodes
#   5 export     bundle codec + vocoder into exp/<name>/release (config.json, model.safetensors, README.md),
#                with the post-filter fitted on data/<name>/train.tsv when postfilter is set
#   6 evaluate   PESQ-WB/STOI/SI-SDR/mel distance/bitrate on the held-out list -> exp/<name>/results.md
set -euo pipefail

stage=1; stop_stage=6; work=.; extra_exclude=""; corpus=""; dev_list=""; dev_root=""; debug=0; steps=""; voc_steps=""
jobs=$(( $(nproc 2>/dev/null || echo 1) > 1 ? 2 : 1 ))
vqaudio=${VQAUDIO:-vqaudio}; python=${PYTHON:-python3}
while [ $# -gt 0 ]; do
    case "$1" in
        --stage) stage=$2; shift 2 ;;
        --stop-stage) stop_stage=$2; shift 2 ;;
        --corpus) corpus=$2; shift 2 ;;
        --dev-list) dev_list=$2; shift 2 ;;
        --dev-root) dev_root=$2; shift 2 ;;
        --dev-subdir) dev_subdir=$2; shift 2 ;;
        --exclude) extra_exclude=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        --workdir) work=$2; shift 2 ;;
        --steps) steps=$2; shift 2 ;;
        --vocoder-steps) voc_steps=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        --debug) debug=1; name=debug; shift ;;
        *) echo "unknown option $1" >&2; exit 1 ;;
    esac
done

case "$jobs" in ''|*[!0-9]*|0) echo "--jobs needs a positive whole number, got '$jobs'" >&2; exit 1 ;; esac
exp=$work/exp/$name; data=$work/data/$name
mkdir -p "$exp" "$data"
voc_ft_conf=${voc_ft_conf:-}; codec_gan_conf=${codec_gan_conf:-}
if [ "$debug" = 1 ]; then
    codec_conf=$debug_codec_conf; voc_conf=$debug_voc_conf
    voc_ft_conf=${debug_voc_ft_conf:-}; codec_gan_conf=${debug_codec_gan_conf:-}
fi
# The codec the vocoder stages learn from and stage 5 releases: stage 3b's when it runs.
codec_model=$exp/codec/model
if [ -n "$codec_gan_conf" ]; then codec_model=$exp/codec-gan/model; fi
# Each vocoder stage starts from the one before; the last one that runs is released.
vocoder_model=$exp/vocoder/model
if [ -n "$voc_ft_conf" ]; then vocoder_model=$exp/vocoder-ft/model; fi
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ] && [ ! -f "$exp/.stage$1.done" ]; }
done_stage() { touch "$exp/.stage$1.done"; echo "stage $1 done"; }
step_args() { if [ -n "$1" ]; then echo "--steps $1"; fi; }
downloaded=0
if [ -z "$corpus" ]; then corpus=$work/download/$default_corpus; downloaded=1; fi

if run_stage 1; then
    if [ "$downloaded" = 1 ]; then
        echo "stage 1: downloading into $work/download"
        WORK="$work" "$python" -c "$download_cmd"
    else
        echo "stage 1: using the corpus at $corpus"
    fi
    done_stage 1
fi

if run_stage 2; then
    echo "stage 2: manifests"
    if [ -n "$dev_list" ]; then
        root=${dev_root:-$(dirname "$dev_list")}
        sed "s|^|$root/|" "$dev_list" | while read -r f; do realpath "$f"; done > "$data/valid.list"
        cat "$dev_list" > "$data/exclude.list"
    else
        find "$corpus/$dev_subdir" -type f \( -name '*.flac' -o -name '*.wav' -o -name '*.mp3' \) \
            | sort | while read -r f; do realpath "$f"; done > "$data/valid.list"
        cat "$data/valid.list" > "$data/exclude.list"
    fi
    if [ -n "$extra_exclude" ]; then cat "$extra_exclude" >> "$data/exclude.list"; fi
    train_src="$corpus"
    if [ -z "$dev_list" ] && [ -n "$train_subdir" ] && [ -d "$corpus/$train_subdir" ]; then train_src="$corpus/$train_subdir"; fi
    "$vqaudio" prepare "$train_src" -o "$data/train.tsv" --min-sample-rate "$min_rate" --exclude-list "$data/exclude.list" --force
    done_stage 2
fi

train_data=(--set "data.train=[\"$data/train.tsv\"]" --set "data.valid=[\"$data/valid.list\"]")

# Stage 3 trains the codec (and 3b its decoder); stage 4's first step trains the vocoder on true mel. Neither
# needs the other, so with --jobs 2 (the default on two or more cores) they train side by side, one thread
# each. Stage 3b and the vocoder's later steps follow once both are done, with every thread: 3b then has
# the machine to itself instead of one core while the other sits idle.
# A leading "exec" argument makes the function replace its (sub)shell with the trainer, so the lane's pid is
# the trainer's own and one kill stops it.
codec_base() {
    local run=(); if [ "${1:-}" = exec ]; then run=(exec); shift; fi
    local threads=("$@")
    echo "stage 3: training the codec ($codec_conf)"
    ${run[@]+"${run[@]}"} "$vqaudio" train --config "$codec_conf" --out "$exp/codec" --resume --no-progress \
        $(step_args "$steps") ${threads[@]+"${threads[@]}"} "${train_data[@]}"
}
codec_gan() {
    if [ -n "$codec_gan_conf" ]; then
        echo "stage 3b: adversarial training of the codec's decoder, tokens fixed ($codec_gan_conf)"
        "$vqaudio" train --config "$codec_gan_conf" --out "$exp/codec-gan" --resume --no-progress "${train_data[@]}" \
            --set "init_from=\"$exp/codec/model\""
    fi
}
vocoder_base() {
    local run=(); if [ "${1:-}" = exec ]; then run=(exec); shift; fi
    local threads=("$@")
    echo "stage 4: training the vocoder ($voc_conf)"
    ${run[@]+"${run[@]}"} "$vqaudio" train --config "$voc_conf" --out "$exp/vocoder" --resume --no-progress \
        $(step_args "$voc_steps") ${threads[@]+"${threads[@]}"} "${train_data[@]}"
}

vocoder_trained=0
# Side by side only while both still have to train: a re-run after one lane finished gives the other
# every thread rather than one core beside an idle one.
if [ "$jobs" -gt 1 ] && run_stage 3 && run_stage 4 && [ ! -d "$exp/codec/model" ] && [ ! -d "$exp/vocoder/model" ]; then
    echo "stages 3 and 4: codec and vocoder side by side (the codec's log: $exp/stage3.log)"
    codec_base exec --threads 1 >> "$exp/stage3.log" 2>&1 &
    codec_pid=$!
    vocoder_base exec --threads 1 &
    vocoder_pid=$!
    # However the script ends (a failed lane, Ctrl-C, a kill), stop both lanes with it; each resumes from its
    # last checkpoint when the recipe runs again. set +e: one failed kill must not skip the other.
    trap 'set +e; kill "$codec_pid" "$vocoder_pid" 2>/dev/null; true' EXIT
    # Poll rather than wait on one lane: the first lane to fail stops the recipe at once, not when the other
    # finishes hours later. (bash reaps a finished lane, so kill -0 fails and wait returns its status.)
    pending="$codec_pid $vocoder_pid"
    while [ -n "$pending" ]; do
        running=""
        for pid in $pending; do
            if kill -0 "$pid" 2>/dev/null; then running="$running $pid"; continue; fi
            if ! wait "$pid"; then
                if [ "$pid" = "$codec_pid" ]; then
                    echo "stage 3 failed: see $exp/stage3.log" >&2
                else
                    echo "stage 4 failed: see its output above" >&2
                fi
                exit 1
            fi
        done
        pending=${running# }
        if [ -n "$pending" ]; then sleep 2; fi
    done
    trap - EXIT
    vocoder_trained=1
    codec_gan
    done_stage 3
elif run_stage 3; then
    codec_base
    codec_gan
    done_stage 3
fi

if run_stage 4; then
    if [ "$vocoder_trained" = 0 ]; then vocoder_base; fi
    if [ -n "$voc_ft_conf" ]; then
        echo "stage 4b: fine-tuning the vocoder on the codec's output ($voc_ft_conf)"
        "$vqaudio" train --config "$voc_ft_conf" --out "$exp/vocoder-ft" --resume --no-progress "${train_data[@]}" \
            --set "init_from=\"$exp/vocoder/model\"" --set "codec_model=\"$codec_model\""
    fi
    done_stage 4
fi

if run_stage 5; then
    echo "stage 5: export"
    pf=()
    if [ -n "${postfilter:-}" ]; then
        pf=(--postfilter "$postfilter" --postfilter-data "$data/train.tsv")
        [ -n "${postfilter_offset:-}" ] && pf+=(--postfilter-offset "$postfilter_offset")
        [ -n "${postfilter_below:-}" ] && pf+=(--postfilter-below "$postfilter_below")
    fi
    opts=()
    [ -n "${release_card:-}" ] && opts+=(--card "$release_card")
    [ -n "${consistency_iters:-}" ] && opts+=(--consistency-iters "$consistency_iters")
    "$vqaudio" export --codec "$codec_model" --vocoder "$vocoder_model" --name "$name" \
        --output "$exp/release" ${pf[@]+"${pf[@]}"} ${opts[@]+"${opts[@]}"} --force
    done_stage 5
fi

if run_stage 6; then
    echo "stage 6: evaluation on $(wc -l < "$data/valid.list") held-out files"
    systems=("vqaudio:$exp/release@1+learned" "vqaudio:$exp/release+learned" "vqaudio:$exp/release+griffin-lim"
        "vqaudio:$exp/release+hybrid")
    # With a post-filter, also the codec's plain output, so the table shows what the filter adds.
    [ -n "${postfilter:-}" ] && systems+=("vqaudio:$exp/release+griffin-lim~plain")
    "$python" "$recipes_dir/../benchmarks/quality.py" --list "$data/valid.list" --root . --systems "${systems[@]}" \
        --rate "${eval_rate:-16000}" --out "$exp/results.md"
    done_stage 6
fi
