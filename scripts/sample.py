#!/usr/bin/env python
"""Sample molecules: a thin wrapper of `molgen sample` (same arguments).

    python scripts/sample.py                                   # 100 molecules from the shipped checkpoint
    python scripts/sample.py -n 20 --chain --out samples/try   # ... with the denoising chain of the first one
    python scripts/sample.py --checkpoint runs/qm9_ponita_cpu/best.pt --sampler ancestral --steps 1000
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from molgen.cli import main

if __name__ == "__main__":
    sys.exit(main(["sample", *sys.argv[1:]]))
