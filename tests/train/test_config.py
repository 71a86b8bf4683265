"""Run configs: round trips, files, overrides, validation errors that name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from molgen.config import (
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    load_config,
    parse_override,
    save_config,
)
from molgen.models.ponita import PAPER_SCALE, PonitaConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_round_trip_and_resolved_model_config():
    config = RunConfig.from_dict({"model": {"name": "ponita", "config": {"hidden": 16, "channels_per_kernel": 4}},
                                  "train": {"lr": 3e-4, "betas": [0.9, 0.99]}, "run_dir": "runs/x"})
    assert RunConfig.from_dict(config.to_dict()) == config
    assert json.loads(json.dumps(config.to_dict())) == config.to_dict()
    # the model config is stored with every field, defaults filled in
    assert config.model.config == {**PonitaConfig().to_dict(), "hidden": 16, "channels_per_kernel": 4}
    assert config.train.betas == (0.9, 0.99) and config.data == DataConfig()


def test_files_yaml_and_json(tmp_path):
    (tmp_path / "a.yaml").write_text("train:\n  lr: 1e-4\n  max_steps: 1.7e6\nmodel:\n  name: egnn\n")
    config = load_config(tmp_path / "a.yaml")
    assert config.train.lr == 1e-4 and config.train.max_steps == 1_700_000 and config.model.name == "egnn"
    save_config(config, tmp_path / "a.json")
    assert load_config(tmp_path / "a.json") == config


def test_overrides():
    path, value = parse_override("train.lr=3e-4")
    assert path == "train.lr" and RunConfig().replace({path: value}).train.lr == 3e-4
    config = RunConfig().replace(dict(parse_override(s) for s in ["model.config.hidden=128", "train.amsgrad=false",
                                                                  "data.cache_dir=/tmp/q", "train.threads=null"]))
    assert config.model.config["hidden"] == 128 and config.train.amsgrad is False
    assert config.data.cache_dir == "/tmp/q" and config.train.threads is None
    with pytest.raises(ValueError, match="section.field=value"):
        parse_override("train.lr")
    with pytest.raises(ValueError, match="unknown key.*'lrr'"):
        RunConfig().replace({"train.lrr": 1.0})


@pytest.mark.parametrize("values, field", [
    ({"train": {"lr": -1}}, "train.lr"),
    ({"train": {"lr": "fast"}}, "train.lr"),
    ({"train": {"ema_decays": [0.999, 1.0]}}, "train.ema_decays"),
    ({"train": {"ema_decays": [0.999, 0.999]}}, "train.ema_decays"),
    ({"train": {"warmup_steps": 10, "warmup_molecules": 640}}, "train.warmup_molecules"),
    ({"train": {"cooldown_molecules": 640, "min_lr": 1e-4, "lr": 1e-4}}, "train.min_lr"),
    ({"train": {"cooldown_molecules": -1}}, "train.cooldown_molecules"),
    ({"train": {"lr_decay": "linear"}}, "train.lr_decay"),
    ({"train": {"sample_sampler": "ddim"}}, "train.sample_sampler"),
    ({"train": {"device": "gpu"}}, "train.device"),
    ({"train": {"max_steps": 0}}, "train.max_steps"),
    ({"train": {"warmup_steps": 2.5}}, "train.warmup_steps"),
    ({"train": {"amsgrad": "yes"}}, "train.amsgrad"),
    ({"data": {"batch_size": 0}}, "data.batch_size"),
    ({"diffusion": {"normalization": "atom"}}, "diffusion.normalization"),
    ({"model": {"name": "transformer"}}, "model.name"),
    ({"model": {"config": {"hidden": 7}}}, "model.config"),
    ({"train": {"learning_rate": 1e-3}}, "learning_rate"),
    ({"optimizer": {}}, "optimizer"),
])
def test_invalid_values_name_the_field(values, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        RunConfig.from_dict(values)


def test_unknown_model_name_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="'ponita', 'egnn'"):
        ModelConfig(name="gnn")


def test_file_errors_name_the_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("train:\n  lr: [\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "bad.json").write_text(json.dumps({"train": {"foo": 1}}))
    with pytest.raises(ValueError, match=r"bad\.json.*unknown key.*foo"):
        load_config(tmp_path / "bad.json")


def test_shipped_configs_load():
    cpu = load_config(CONFIGS / "qm9_ponita_cpu.yaml")
    assert "autocast_bf16" not in cpu.model.config and cpu.train.precision == "auto" and cpu.train.lr == 3e-3 and cpu.train.lr_decay == "none"
    assert cpu.train.warmup_molecules == 500 * 64 and cpu.train.min_lr == 1e-5
    assert cpu.train.ema_decays == (0.999, 0.9995, 0.9999) and cpu.train.cooldown_molecules == 0
    gpu = load_config(CONFIGS / "qm9_ponita_gpu.yaml")
    assert PonitaConfig.from_dict(gpu.model.config) == PAPER_SCALE
    assert (gpu.train.lr, gpu.train.warmup_steps, gpu.train.lr_decay, gpu.train.ema_decays) == (1e-4, 0, "none", (0.9999,))
    assert gpu.train.amsgrad and gpu.train.weight_decay == 1e-12 and gpu.data.batch_size == 64
    egnn = load_config(CONFIGS / "qm9_egnn_gpu.yaml")
    assert egnn.model.name == "egnn" and egnn.train == gpu.train
    assert TrainConfig().lr == 1e-4  # the defaults are EDM's recipe


def test_override_errors_name_the_override_that_shows_them(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  batch_size: 16\n  max_train_molecules: 64\n")
    # each override alone would break the file's config; together they are valid, and valid in this order only
    config = load_config(path, {"data.max_train_molecules": 512, "data.batch_size": 128})
    assert (config.data.batch_size, config.data.max_train_molecules) == (128, 512)
    overrides = {"train.lr": 3e-4, "data.batch_size": 128, "train.seed": 2**64 - 1}
    with pytest.raises(ValueError) as caught:
        load_config(path, overrides, {"data.batch_size": "--set data.batch_size=128"})
    assert str(caught.value).startswith("--set data.batch_size=128: data.max_train_molecules must be >= ")
    with pytest.raises(ValueError, match=r"^the override train\.seed=-1: train\.seed must be an integer >= 0"):
        load_config(path, {"train.seed": -1})
    assert load_config(path, {"train.seed": 2**64 - 1}).train.seed == 2**64 - 1
    path.write_text("train:\n  lr: -1\n")
    with pytest.raises(ValueError, match=r"run\.yaml: train\.lr must be"):
        load_config(path, {"train.max_steps": 5})


def test_empty_and_binary_config_files_are_refused(tmp_path):
    for name, content in (("empty.yaml", b""), ("comments.yaml", b"# nothing yet\n"), ("empty.json", b"{}"),
                          ("binary.json", b"\x80\x00PK")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=name.replace(".", r"\.")) as caught:
            load_config(tmp_path / name)
        assert ("not a text file" if name.startswith("binary") else "holds no settings") in str(caught.value)
