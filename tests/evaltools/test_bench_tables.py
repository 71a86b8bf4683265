"""The pure parts of the profile and benchmark scripts (eval/profile_step.py, eval/bench_sampling.py,
eval/bench_sample_command.py, eval/code_versions.py): argument parsing and the markdown they print."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

EVAL = Path(__file__).resolve().parents[2] / "eval"


def load_script(name: str):
    """eval/NAME.py as a module (its `from code_versions import ...` finds eval/ on sys.path while it loads)."""
    sys.path.insert(0, str(EVAL))
    try:
        spec = importlib.util.spec_from_file_location(name, EVAL / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EVAL))
    return module


@pytest.fixture(scope="module")
def scripts():
    return SimpleNamespace(**{name: load_script(name) for name in
                              ("code_versions", "profile_step", "bench_sampling", "bench_sample_command")})


def event(key: str, microseconds: float, count: int = 1):
    return SimpleNamespace(key=key, count=count, self_cpu_time_total=microseconds)


def test_operator_table_ranks_by_self_time_and_shares_are_of_all_events(scripts):
    events = [event("aten::add", 1000.0, 3), event("aten::mm", 6000.0, 2), event("aten::copy_", 3000.0, 7)]
    lines = scripts.profile_step.operator_table(events, rows=2).splitlines()
    assert lines[2:] == ["| `aten::mm` | 2 | 6.0 | 60.0 |", "| `aten::copy_` | 7 | 3.0 | 30.0 |",
                         "| total | | 10.0 | 100 |"]


def test_parse_training(scripts):
    assert scripts.profile_step.parse_training("bf16:native,fp32:avx2") == [("bf16", "native"), ("fp32", "avx2")]
    assert scripts.profile_step.parse_training("") == []
    for bad in ("bf16", "fp16:native", "fp32:avx512"):
        with pytest.raises(argparse.ArgumentTypeError, match="PRECISION:CPU"):
            scripts.profile_step.parse_training(bad)


def test_parse_sizes(scripts):
    assert scripts.code_versions.parse_sizes("1, 10,30") == [1, 10, 30]
    assert scripts.code_versions.parse_sizes("") == []
    for bad in ("0", "10,x", "-1", "2.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive integers"):
            scripts.code_versions.parse_sizes(bad)


def test_code_at_refuses_what_is_no_commit(scripts, tmp_path):
    with pytest.raises(ValueError, match="not a commit"):
        scripts.code_versions.code_at("no-such-commit", cache=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_speedup_row_is_old_over_new(scripts):
    old = {"seconds": 3.0, "precision": "bf16", "cpu": "AVX-512 bf16"}
    new = {"seconds": 1.2, "precision": "fp32", "cpu": "AVX2 (emulated)"}
    assert (scripts.bench_sampling.speedup_row(30, "default", old, new)
            == "| AVX2 (emulated) | 30 | default | 3.00 (bf16) | 1.20 (fp32) | 2.50x |")


def test_command_table_puts_the_sampling_seconds_beside_the_whole_command(scripts):
    summary = {"compute": "cpu (AVX-512 bf16), 2 threads, bf16", "seconds": 52.3,
               "settings": {"num_molecules": 1000}}
    row = scripts.bench_sample_command.command_table(summary, wall_seconds=60.0, cpu_seconds=117.5).splitlines()[2]
    assert row == "| cpu (AVX-512 bf16), 2 threads, bf16 | 1000 | 52.3 | 60.0 | 7.7 | 117.5 |"
