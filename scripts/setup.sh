#!/usr/bin/env bash
# Create .venv and install molgen into it.
#   bash scripts/setup.sh          # molgen + the QM9 data package
#   bash scripts/setup.sh --dev    # ... + the test tools
# torch is installed first as the pinned CPU build (torch==2.13.0) unless the environment already has a
# torch; set MOLGEN_TORCH (e.g. MOLGEN_TORCH="torch") to choose another requirement, such as a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="data"
if [ "${1:-}" = "--dev" ]; then extras="dev"; fi
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  "${pip[@]}" "${MOLGEN_TORCH:-torch==2.13.0}"
fi
"${pip[@]}" -e ".[${extras}]"
