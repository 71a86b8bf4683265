#!/usr/bin/env python
"""Train molgen: a thin wrapper of `molgen train` (same arguments).

    python scripts/train.py configs/qm9_ponita_cpu.yaml
    python scripts/train.py configs/qm9_ponita_cpu.yaml --resume          # continue RUN_DIR/last.pt
    python scripts/train.py configs/qm9_ponita_cpu.yaml --max-steps 1000 --run-dir runs/try --set train.lr=3e-4
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from molgen.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
