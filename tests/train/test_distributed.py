"""Data-parallel training: 2 CPU processes under torchrun equal one process on the same global batches.

The float64 run shows the equivalence to rounding (both processes end bitwise equal, and within 1e-10 of one
process); the float32 run goes through the documented command, `torchrun ... -m molgen train`.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from molgen.checkpoint import load_checkpoint
from molgen.cli import main
from molgen.data.export import export_splits, load_export
from molgen.diffusion import diffusion_loss
from molgen.errors import MolgenError
from molgen.geometry.centroid import remove_centroid
from molgen.models.ponita import Ponita, PonitaConfig
from molgen.train.distributed import World, shard
from molgen.train.loop import Trainer
from molgen.train.randomness import per_sample_noise

from .ddp_worker import float64_trainer
from .helpers import TINY_PONITA, assert_same_state, tiny_config

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "ddp_worker.py"


@pytest.fixture(scope="module")
def tiny_export(qm9_splits, tmp_path_factory) -> Path:
    """A data export of the first 64 training and validation molecules."""
    path = tmp_path_factory.mktemp("export") / "tiny.npz"
    export_splits(path, qm9_splits, max_molecules=64)
    return path


def ddp_config(run_dir: Path, **train):
    """The tiny PONITA (2 layers) in batches of 16 (8 per process), evaluated every 2 steps on 16 molecules."""
    values = {"max_steps": 4, "threads": 1, "eval_every": 2, "eval_molecules": 16, "checkpoint_every": 2, **train}
    return tiny_config(run_dir, **values).replace({"model.config.layers": 2})


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run `torchrun --standalone --nproc_per_node=2 ARGS` on one thread per process, without a QM9 cache."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MOLGEN_CACHE_DIR": str(cwd / "no-cache")}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=150, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def log_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_two_processes_equal_one_in_float64_and_resume_in_one(tiny_export, tmp_path):
    config = ddp_config(tmp_path / "ddp")
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    torchrun(str(WORKER), str(tmp_path / "config.json"), str(tiny_export), str(tmp_path), "0.05", cwd=tmp_path)

    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert_same_state(rank0, rank1, "ranks")  # weights, EMA and clipping history bitwise equal in both processes
    single = float64_trainer(ddp_config(tmp_path / "single"), tiny_export, first_norm=0.05)
    result = single.run(max_steps=4)
    clipped = [float(row["clipped"]) for row in log_rows(tmp_path / "single" / "log.csv") if row["kind"] == "train"]
    assert result.step == 4 and sum(clipped) >= 1  # the clipping history starts low: clipped steps are compared too
    assert rank0["step"] == 4
    torch.testing.assert_close(rank0["model"], single.model.state_dict(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(rank0["ema"], single.ema.state_dict(), rtol=1e-10, atol=1e-12)
    assert rank0["clip_history"] == pytest.approx(single.clipper.history, rel=1e-10)

    # process 0 alone wrote the log and the checkpoints; the evaluations match one process's
    ddp_log = log_rows(tmp_path / "ddp" / "log.csv")
    assert [(row["kind"], int(row["step"])) for row in ddp_log] == [
        ("train", 1), ("train", 2), ("eval", 2), ("train", 3), ("train", 4), ("eval", 4)]
    single_evals = [m["val_nll"] for m in single.metrics]
    assert [float(row["val_nll"]) for row in ddp_log if row["kind"] == "eval"] == pytest.approx(single_evals, rel=1e-5)
    assert {p.name for p in (tmp_path / "ddp").iterdir()} == {"config.json", "log.csv", "last.pt", "best.pt"}

    # the 2-process checkpoint resumes in one process as if the whole run had been one
    resumed = float64_trainer(ddp_config(tmp_path / "resumed"), tiny_export, first_norm=0.05)
    resumed.load_checkpoint(tmp_path / "ddp" / "last.pt")
    resumed.run(max_steps=6)
    single.run(max_steps=6)
    torch.testing.assert_close(resumed.model.state_dict(), single.model.state_dict(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(resumed.optimizer.state_dict()["state"], single.optimizer.state_dict()["state"],
                               rtol=1e-9, atol=1e-15)


@pytest.mark.slow
def test_torchrun_molgen_train(tiny_export, tmp_path, capsys):
    config = ddp_config(tmp_path / "ddp", eval_every=0)
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    result = torchrun("-m", "molgen", "train", "config.json", "--data", str(tiny_export), "--no-progress",
                      cwd=tmp_path)
    assert result.stdout.count("in each of 2 processes") == 1 and "finished at step 4" in result.stdout

    assert main(["train", str(tmp_path / "config.json"), "--data", str(tiny_export), "--run-dir",
                 str(tmp_path / "single"), "--no-progress"]) == 0
    capsys.readouterr()
    ddp_log, single_log = log_rows(tmp_path / "ddp" / "log.csv"), log_rows(tmp_path / "single" / "log.csv")
    assert [int(row["step"]) for row in ddp_log] == [1, 2, 3, 4]
    assert [float(row["loss"]) for row in ddp_log] == pytest.approx([float(r["loss"]) for r in single_log], rel=1e-5)
    ddp, single = load_checkpoint(tmp_path / "ddp" / "last.pt"), load_checkpoint(tmp_path / "single" / "last.pt")
    assert ddp["step"] == single["step"] == 4 and ddp["config"] == single["config"] | {"run_dir": ddp["config"]["run_dir"]}
    # in float32, Adam magnifies rounding-level differences of near-zero gradients: allow a tenth of 4 steps of lr
    torch.testing.assert_close(ddp["model"], single["model"], rtol=0, atol=4e-4)


@pytest.mark.slow
def test_two_processes_share_one_importance_proposal(tiny_export, tmp_path):
    """Importance-sampled t: every process records the losses of the whole global batch, so both hold the same
    proposal and history after every step, and the same as one process on the same batches (T = 9: every t has
    its one loss of history after the first steps, and the proposal moves off uniform)."""
    settings = {"time_sampling": "importance", "importance_history": 1, "importance_refit_every": 1, "eval_every": 0}
    config = ddp_config(tmp_path / "ddp", **settings).replace({"diffusion.timesteps": 9})
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    torchrun(str(WORKER), str(tmp_path / "config.json"), str(tiny_export), str(tmp_path), "3000", cwd=tmp_path)

    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert_same_state(rank0, rank1, "ranks")
    single_config = ddp_config(tmp_path / "single", **settings).replace({"diffusion.timesteps": 9})
    single = float64_trainer(single_config, tiny_export, first_norm=3000)
    single.run(max_steps=4)
    sampler = single.optimisation.time_sampler.state_dict()
    assert torch.equal(rank0["time_sampler"]["counts"], sampler["counts"]) and int(sampler["counts"].sum()) == 64
    torch.testing.assert_close(rank0["time_sampler"]["losses"], sampler["losses"], rtol=1e-10, atol=0)
    torch.testing.assert_close(rank0["time_sampler"]["proposal"], sampler["proposal"], rtol=1e-10, atol=0)
    assert float(sampler["proposal"].max() / sampler["proposal"].min()) > 1.01
    torch.testing.assert_close(rank0["model"], single.model.state_dict(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("normalization", ["molecule", "padded"])
def test_shard_losses_average_to_the_batch_loss(tiny_export, normalization):
    """What the equivalence rests on: the mean of equal shards' losses is the loss of the whole batch."""
    torch.manual_seed(0)
    model = Ponita(PonitaConfig(**TINY_PONITA)).double()
    schedule = ddp_config(".").diffusion.build_schedule()
    train = load_export(tiny_export, dtype=torch.float64).splits["train"]
    indices = torch.arange(16)
    num_atoms = train.num_atoms[:16].tolist()

    def loss_of(part: torch.Tensor, padded_atoms: int | None) -> torch.Tensor:
        batch = train.batch(part)
        t_int, eps = per_sample_noise(0, 3, part.tolist(), [num_atoms[i] for i in part], 1000, torch.float64)
        eps_x = remove_centroid(eps[:, :3], batch.batch, batch.num_molecules)
        return diffusion_loss(model, schedule, batch, normalization=normalization, t_int=t_int,
                              noise=(eps_x, eps[:, 3:]), padded_atoms=padded_atoms).loss

    whole = loss_of(indices, None)
    padded = max(num_atoms) if normalization == "padded" else None
    shards = [loss_of(shard(indices, World(rank=r, size=4)), padded) for r in range(4)]
    torch.testing.assert_close(torch.stack(shards).mean(), whole, rtol=1e-12, atol=0)


def test_world_from_torchrun_environment():
    assert World.from_environment({}) == World(rank=0, size=1, local_rank=0)
    world = World.from_environment({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (world.rank, world.size, world.local_rank, world.is_main, world.distributed) == (3, 4, 1, False, True)
    assert world.device(torch.device("cuda")) == torch.device("cuda", 1)
    assert world.device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(MolgenError, match="use 'cuda' or 'auto'"):
        world.device(torch.device("cuda", 0))
    with pytest.raises(MolgenError, match="RANK=2, WORLD_SIZE=2"):
        World.from_environment({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(MolgenError, match="must be integers"):
        World.from_environment({"WORLD_SIZE": "two"})
    assert shard(torch.arange(8), World(rank=1, size=2)).tolist() == [4, 5, 6, 7]


def test_batch_must_split_evenly_and_the_group_must_exist(tiny_export, tmp_path):
    train = load_export(tiny_export).splits["train"]
    with pytest.raises(MolgenError, match=r"data.batch_size \(16\) must be a multiple of the number of processes \(3\)"):
        Trainer(ddp_config(tmp_path), train, world=World(rank=0, size=3))
    with pytest.raises(MolgenError, match="needs their process group"):
        Trainer(ddp_config(tmp_path), train, world=World(rank=0, size=2))
