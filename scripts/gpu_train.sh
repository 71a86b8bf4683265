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
# SIGTERM (which also saves) if start-up, the benchmark, evaluations or saves take longer than expected.
status=0
timeout --signal=TERM --kill-after=30 $((seconds * 5 / 4 + bench + 90)) \
    "$python" -m molgen.train.segment --config "$config" --data "$data" --run-dir "$run_dir" --device "$device" \
    --seconds "$seconds" --bench "$bench" --cooldown-share "$cooldown_share" --cooldown-dir "$cooldown_dir" \
    "${start[@]}" "${extra[@]}" "$@" || status=$?

# Copy a file into --out atomically (a temporary name, then a rename), split into parts above --max-file-size.
place() { cp "$1" "$out/.$2.tmp" && mv -f "$out/.$2.tmp" "$out/$2"; }
copy_out() {
    local file="$1" name="$2"
    [[ -f "$file" ]] || return 0
    rm -f "$out/$name" "$out/$name".part-*
    if [[ "$(stat -c %s "$file")" -gt "$max_bytes" ]]; then
        local parts
        parts="$(mktemp -d)"
        split -b "$max_bytes" -d "$file" "$parts/$name.part-"
        for part in "$parts"/*; do place "$part" "$(basename "$part")"; done
        rm -rf "$parts"
        echo "$name is larger than $max_file_size: split into $out/$name.part-*; join with: cat $name.part-* > $name"
    else
        place "$file" "$name"
    fi
}

if [[ -n "$out" ]]; then
    mkdir -p "$out"
    for name in last.pt best.pt log.csv config.json bench.md; do copy_out "$run_dir/$name" "$name"; done
    for name in shipped.pt shipped.json; do copy_out "$cooldown_dir/$name" "$name"; done
    copy_out "$cooldown_dir/log.csv" cooldown_log.csv
    echo "copied the run's files to $out"
fi
exit "$status"
