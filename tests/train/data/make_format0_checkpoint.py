"""Write tests/train/data/checkpoint_format0.pt: a tiny training checkpoint in the old format 0.

Format 0 (molgen before the metrics log): the model weights under "model_state" instead of "model", and no
"metrics", "best_nll" or "skipped_steps" entries. The file is committed so that the test proves old checkpoints
still load; rerun this script only if the tiny model's parameters change:
    .venv/bin/python tests/train/data/make_format0_checkpoint.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from tests.train.helpers import ToyMolecules, tiny_config  # noqa: E402

from molgen.checkpoint import save_checkpoint  # noqa: E402
from molgen.train.loop import Trainer  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    smallest = {"orientations": 4, "hidden": 4, "layers": 1, "basis_dim": 2, "channels_per_kernel": 4,
                "basis_hidden": 2, "degree": 1}
    config = tiny_config("runs/format0", max_steps=2, ema_decays=[0.5]).replace(
        {"data.max_train_molecules": None, "data.batch_size": 8, "model.config": smallest})
    trainer = Trainer(config, ToyMolecules(32))
    for _ in range(2):
        trainer.train_step()
    payload = trainer.state_dict()
    payload["model_state"] = payload.pop("model")
    for key in ("metrics", "best_nll", "skipped_steps"):
        del payload[key]
    payload["format_version"] = 0
    payload["rng"] = {"torch": payload["rng"]["torch"]}  # keep the file small
    save_checkpoint(payload, HERE / "checkpoint_format0.pt")
    print(f"wrote {HERE / 'checkpoint_format0.pt'} ({(HERE / 'checkpoint_format0.pt').stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
