#!/usr/bin/env bash
# One time-boxed training segment, made for a borrowed GPU machine (no network, no RDKit, no qm9pack, a few
# minutes per command): train from a data export (`molgen data export`), resume the run folder's last.pt (or a
# given checkpoint) if there is one, stop after --seconds of training with a resumable last.pt, and copy the run's
# files to --out, splitting any file larger than --max-file-size into numbered parts (join them with `cat`).
#
#   bash scripts/gpu_train.sh --data exports/qm9_train_valid.npz --seconds 480 --out "$OUT"
#   bash scripts/gpu_train.sh --data exports/tiny.npz --config run.json --device cpu --seconds 5   # a CPU trial
#
# Arguments after `--` go to `molgen train` (e.g. -- --set train.lr=3e-3). The run's own log and checkpoints stay
# in the run folder (default: the config's run_dir). Runs molgen from this checkout; no installation is needed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    echo
    echo "options: --data EXPORT (required)  --config FILE [configs/qm9_ponita_gpu_segments.yaml]  --run-dir DIR"
    echo "         --resume CHECKPOINT  --seconds N [480]  --device cuda|cpu|auto [cuda]  --out DIR"
    echo "         --max-file-size SIZE [16M]  --python PYTHON [.venv/bin/python, else python3]"
}
die() { echo "gpu_train.sh: error: $*" >&2; exit 2; }

data="" config="$root/configs/qm9_ponita_gpu_segments.yaml" run_dir="" resume="" seconds=480 device=cuda out=""
max_file_size=16M python="${PYTHON:-}"
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
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
[[ -n "$data" ]] || die "--data EXPORT is required (write one with: molgen data export PATH)"
[[ -f "$data" ]] || die "no data export at $data"
[[ -f "$config" ]] || die "no config at $config"
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || die "--seconds must be a whole number > 0, got $seconds"
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

start=()
if [[ -n "$resume" ]]; then
    start=(--resume "$resume")
elif [[ -f "$run_dir/last.pt" ]]; then
    start=(--resume)
fi
echo "segment: ${seconds} s of training on $device; run folder $run_dir; ${start[*]:-a new run}"

# The trainer stops itself after --time-limit (finishing its step and saving); the outer timeout is a backstop that
# sends SIGTERM (which also saves) if start-up, a final evaluation or the save take longer than expected.
status=0
timeout --signal=TERM --kill-after=30 $((seconds + 90)) \
    "$python" -m molgen train "$config" --data "$data" --run-dir "$run_dir" --time-limit "$seconds" \
    --set "train.device=$device" --no-progress "${start[@]}" "$@" || status=$?

# Copy a file into --out atomically (a temporary name, then a rename).
place() { cp "$1" "$out/.$2.tmp" && mv -f "$out/.$2.tmp" "$out/$2"; }

if [[ -n "$out" ]]; then
    mkdir -p "$out"
    for name in last.pt best.pt log.csv config.json; do
        file="$run_dir/$name"
        [[ -f "$file" ]] || continue
        rm -f "$out/$name" "$out/$name".part-*
        if [[ "$(stat -c %s "$file")" -gt "$max_bytes" ]]; then
            parts="$(mktemp -d)"
            split -b "$max_bytes" -d "$file" "$parts/$name.part-"
            for part in "$parts"/*; do place "$part" "$(basename "$part")"; done
            rm -rf "$parts"
            echo "$name is larger than $max_file_size: split into $out/$name.part-*; join with: cat $name.part-* > $name"
        else
            place "$file" "$name"
        fi
    done
    echo "copied the run's files to $out"
fi
exit "$status"
