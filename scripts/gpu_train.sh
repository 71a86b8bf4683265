#!/usr/bin/env bash
# One time-boxed training segment, made for a borrowed GPU machine (no network, no RDKit, no qm9pack, a few
# minutes per command), in one process (python -m molgen.train.segment): optionally --bench SECONDS of benchmark
# first; then the main branch, resumed from --resume or the run folder's last.pt (else started), at --batch
# molecules per step with the learning rate sqrt-scaled and re-warmed up, printing molecules/s, until the first
# 80% of --seconds, with a resumable last.pt; then the cooldown branch in the rest, ending with shipped.pt.
# Copies the small files to --out (any file above --max-file-size is split into parts to join with `cat`).
#
#   bash scripts/gpu_train.sh --data exports/qm9_train_valid.npz --resume checkpoints/qm9_ponita_cpu.pt \
#       --batch 1024 --bench 45 --seconds 420 --out "$OUT"
#   bash scripts/gpu_train.sh --data exports/tiny.npz --config run.json --device cpu --seconds 5   # a CPU trial
#
# Arguments after `--` go to molgen.train.segment (e.g. -- --set train.eval_every=200). Runs molgen from this
# checkout; no installation is needed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    echo
    echo "options: --data EXPORT (required)  --config FILE [configs/qm9_ponita_cpu.yaml]  --run-dir DIR"
    echo "         --resume CHECKPOINT  --seconds N (<= 480) [420]  --device cuda|cpu|auto [cuda]  --out DIR"
    echo "         --batch N [the config's]  --lr LR [sqrt-scaled]  --bench SECONDS (<= 60) [0]"
    echo "         --cooldown-share F [0.2]  --cooldown-dir DIR [RUN_DIR_cooldown]"
    echo "         --max-file-size SIZE [16M]  --python PYTHON [.venv/bin/python, else python3]"
}
die() { echo "gpu_train.sh: error: $*" >&2; exit 2; }

data="" config="$root/configs/qm9_ponita_cpu.yaml" run_dir="" resume="" seconds=420 device=cuda out=""
max_file_size=16M python="${PYTHON:-}" bench=0 cooldown_share=0.2 cooldown_dir="" extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --data) data="${2:?}"; shift 2 ;;
        --config) config="${2:?}"; shift 2 ;;
        --run-dir) run_dir="${2:?}"; shift 2 ;;
        --resume) resume="${2:?}"; shift 2 ;;
        --seconds) seconds="${2:?}"; shift 2 ;;
        --device) device="${2:?}"; shift 2 ;;
        --out) out="${2:?}"; shift 2 ;;
        --max-file-size) max_file_size="${2:?}"; shift 2 ;;
        --python) python="${2:?}"; shift 2 ;;
        --batch) extra+=(--batch "${2:?}"); shift 2 ;;
        --lr) extra+=(--lr "${2:?}"); shift 2 ;;
        --bench) bench="${2:?}"; shift 2 ;;
        --cooldown-share) cooldown_share="${2:?}"; shift 2 ;;
        --cooldown-dir) cooldown_dir="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
[[ -n "$data" ]] || die "--data EXPORT is required (write one with: molgen data export PATH)"
[[ -f "$data" ]] || die "no data export at $data"
[[ -f "$config" ]] || die "no config at $config"
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 && "$seconds" -le 480 ]] \
    || die "--seconds must be a whole number in 1..480, got $seconds"
[[ "$bench" =~ ^[0-9]+$ && "$bench" -le 60 ]] || die "--bench must be a whole number of seconds in 0..60, got $bench"
max_bytes="$(numfmt --from=iec "$max_file_size" 2>/dev/null)" || die "--max-file-size must look like 16M, got $max_file_size"
if [[ -z "$python" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; else python=python3; fi
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
"$python" -c "import numpy, torch, tqdm, yaml" 2>/dev/null \
    || die "$python lacks one of numpy, torch, tqdm, pyyaml (molgen's training needs them)"
if [[ -z "$run_dir" ]]; then
    run_dir="$("$python" -c 'import sys; from molgen.config import load_config; print(load_config(sys.argv[1]).run_dir)' "$config")"
fi

if [[ -n "$out" ]]; then  # before the training: a folder that cannot take the files fails now, not after it
    { mkdir -p "$out" && probe="$(mktemp -p "$out" .gpu_train.XXXXXX)" && rm -f "$probe"; } 2>/dev/null \
        || die "cannot write to --out $out"
fi
[[ -n "$cooldown_dir" ]] || cooldown_dir="${run_dir}_cooldown"
start=()
if [[ -n "$resume" ]]; then
    start=(--resume "$resume")
elif [[ -f "$run_dir/last.pt" ]]; then
    start=(--resume "$run_dir/last.pt")
fi
echo "segment: ${seconds} s of training on $device (cooldown share $cooldown_share); run folder $run_dir;" \
    "${start[*]:-a new run}"

# The segment stops itself (each branch finishes its step and saves); the outer timeout is a backstop that sends
# SIGTERM (which also saves) if start-up, the benchmark, evaluations or saves take longer than expected. On a CPU
# (a rehearsal) these take minutes: a step at a large batch, or the cooldown's evaluation of three EMAs.
status=0 slack=90
[[ "$device" != cpu ]] || slack=300
timeout --signal=TERM --kill-after=30 $((seconds * 5 / 4 + bench + slack)) \
    "$python" -m molgen.train.segment --config "$config" --data "$data" --run-dir "$run_dir" --device "$device" \
    --seconds "$seconds" --bench "$bench" --cooldown-share "$cooldown_share" --cooldown-dir "$cooldown_dir" \
    "${start[@]}" "${extra[@]}" "$@" || status=$?

# Copy a file into --out atomically (a temporary name, then a rename), split into parts above --max-file-size;
# a file the run did not write is skipped. Each file copied is added to `copied`; any failure returns 1.
copied=()
place() { cp "$1" "$out/.$2.tmp" && mv -f "$out/.$2.tmp" "$out/$2"; }
copy_out() {
    local file="$1" name="$2" parts part
    [[ -f "$file" ]] || return 0
    rm -f "$out/$name" "$out/$name".part-* || return 1
    if [[ "$(stat -c %s "$file")" -gt "$max_bytes" ]]; then
        parts="$(mktemp -d)" || return 1
        split -b "$max_bytes" -d "$file" "$parts/$name.part-" || { rm -rf "$parts"; return 1; }
        for part in "$parts"/*; do place "$part" "$(basename "$part")" || { rm -rf "$parts"; return 1; }; done
        rm -rf "$parts"
        echo "$name is larger than $max_file_size: split into $out/$name.part-*; join with: cat $name.part-* > $name"
    else
        place "$file" "$name" || return 1
    fi
    copied+=("$name")
}

# Report only what was copied. A segment that failed with its own error line and wrote nothing gets no second
# line; one that the timeout stopped before it saved gets one.
if [[ -n "$out" ]]; then
    sources=("$run_dir"/{last.pt,best.pt,log.csv,config.json,bench.md}
             "$cooldown_dir"/{shipped.pt,shipped.json,log.csv})
    names=(last.pt best.pt log.csv config.json bench.md shipped.pt shipped.json cooldown_log.csv)
    for i in "${!names[@]}"; do
        copy_out "${sources[i]}" "${names[i]}" 2>/dev/null || die "could not copy ${sources[i]} to $out/${names[i]}"
    done
    if [[ ${#copied[@]} -gt 0 ]]; then
        echo "copied ${copied[*]} to $out"
    elif [[ "$status" -eq 0 ]]; then
        die "the segment wrote none of its files to $run_dir: nothing copied to $out"
    elif [[ "$status" -eq 124 || "$status" -eq 137 ]]; then
        echo "gpu_train.sh: error: the segment ran out of time before it saved anything: nothing copied to $out" >&2
    fi
fi
exit "$status"
